package e2e

import (
	"bytes"
	"crypto/tls"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestRestartKeepsData stops a dev gateway with SIGTERM, checks it exits
// cleanly and leaves no Postgres behind, and starts it again on the same
// data dir: the token from the first run still works and the state is there.
func TestRestartKeepsData(t *testing.T) {
	g, dir := privateGateway(t)
	tok := g.token()
	if st, _, body := do(t, g, tok, "POST", "/v1.0/state/statestore", strings.NewReader(`[{"key":"survives","value":"yes"}]`)); st != 204 {
		t.Fatalf("save: %d %s", st, body)
	}
	pid := postmasterPID(t, dir)
	if err := g.stop(); err != nil {
		t.Fatalf("SIGTERM did not stop the gateway cleanly: %v\n%s", err, g.logs.String())
	}
	if pid > 0 && syscall.Kill(pid, 0) == nil {
		t.Fatalf("the private Postgres (pid %d) outlived the gateway", pid)
	}

	g2, err := startGateway(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer g2.stop()
	if g2.token() != tok {
		t.Fatal("the second dev run issued a new token instead of reusing the first")
	}
	st, _, body := do(t, g2, tok, "GET", "/v1.0/state/statestore/survives", nil)
	if st != http.StatusOK || string(body) != `"yes"` {
		t.Fatalf("after restart: %d %s", st, body)
	}
}

func postmasterPID(t *testing.T, dir string) int {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(dir, "postgres", "*", "postmaster.pid"))
	if len(matches) == 0 {
		return 0
	}
	b, err := os.ReadFile(matches[0])
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}

// TestCLI drives the admin CLI as a user would, with BLOCKGATE_ADMIN_URL
// and BLOCKGATE_ADMIN_TOKEN from dev.env.
func TestCLI(t *testing.T) {
	g := sharedGateway(t)
	cli := func(stdin string, args ...string) (string, error) {
		cmd := exec.CommandContext(t.Context(), filepath.Join(binDir, "blockgate"), args...)
		cmd.Env = append(cleanEnv(), "BLOCKGATE_ADMIN_URL="+g.env["BLOCKGATE_ADMIN_URL"], "BLOCKGATE_ADMIN_TOKEN="+g.env["BLOCKGATE_ADMIN_TOKEN"])
		cmd.Stdin = strings.NewReader(stdin)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return strings.TrimSpace(out.String()), err
	}
	must := func(stdin string, args ...string) string {
		t.Helper()
		out, err := cli(stdin, args...)
		if err != nil {
			t.Fatalf("blockgate %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	must("", "tenant", "create", "cli-co")
	must("", "app", "create", "--tenant", "cli-co", "orders", "--endpoint", "http://127.0.0.1:9999")
	must(stateComponent, "component", "apply", "--tenant", "cli-co", "-f", "-")
	tok := must("", "token", "issue", "--tenant", "cli-co", "--app", "orders", "--ttl", "1h")
	if strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \n") {
		t.Fatalf("token issue must print only the token, got %q", tok)
	}
	if st, _, body := do(t, g, tok, "POST", "/v1.0/state/statestore", strings.NewReader(`[{"key":"k","value":1}]`)); st != 204 {
		t.Fatalf("issued token cannot save: %d %s", st, body)
	}
	if out := must("", "component", "list", "--tenant", "cli-co"); !strings.Contains(out, "state.postgresql") {
		t.Fatalf("component list: %s", out)
	}
	must("", "token", "revoke", tokenID(t, tok))
	if st, _, _ := do(t, g, tok, "GET", "/v1.0/metadata", nil); st != http.StatusUnauthorized {
		t.Fatalf("revoked CLI token still works: %d", st)
	}

	// Identity, policies and quotas.
	dir := t.TempDir()
	out := must("", "svid", "issue", "--tenant", "cli-co", "--app", "orders", "--cert-out", filepath.Join(dir, "o.crt"),
		"--key-out", filepath.Join(dir, "o.key"), "--bundle-out", filepath.Join(dir, "b.pem"))
	if !strings.Contains(out, "spiffe://blockgate.local/tenant/cli-co/app/orders") {
		t.Fatalf("svid issue: %s", out)
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "o.crt"), filepath.Join(dir, "o.key")); err != nil {
		t.Fatalf("svid issue wrote an unusable key pair: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "o.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode: %v %v", fi, err)
	}
	must(`apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: acl}
spec: {accessControl: {defaultAction: deny}}
`, "policy", "apply", "--tenant", "cli-co", "--app", "orders", "-f", "-")
	if out := must("", "policy", "list", "--tenant", "cli-co"); !strings.Contains(out, "acl") || !strings.Contains(out, "orders") {
		t.Fatalf("policy list: %s", out)
	}
	must("", "policy", "deny-by-default", "--tenant", "cli-co", "on")
	must("", "policy", "deny-by-default", "--tenant", "cli-co", "off")
	must("", "policy", "delete", "--tenant", "cli-co", "acl")
	if out := must("", "tenant", "limits", "cli-co", "--rps", "100", "--max-apps", "10"); !strings.Contains(out, "requests/s (tenant)  100") {
		t.Fatalf("tenant limits: %s", out)
	}
	// Only the limits named change.
	if out := must("", "tenant", "limits", "cli-co", "--app-rps", "5"); !strings.Contains(out, "requests/s (tenant)  100") || !strings.Contains(out, "apps                 10") {
		t.Fatalf("tenant limits kept the others: %s", out)
	}

	// Mistakes get a clear message and a non-zero exit.
	for _, args := range [][]string{
		{"svid", "issue", "--tenant", "cli-co"},
		{"policy", "deny-by-default", "--tenant", "cli-co", "maybe"},
		{"tenant", "limits", "cli-co", "--rps", "fast"},
		{"tenant", "limits", "cli-co"},
		{"federation", "apply", "--tenant", "cli-co"},
		{"tenant", "create", "Bad_Name"},
		{"app", "create", "orders"},
		{"tenant", "create", "cli-co"},
		{"component", "apply", "--tenant", "cli-co", "-f", "/does/not/exist.yaml"},
		{"token", "revoke", "tok_unknown"},
	} {
		if out, err := cli("", args...); err == nil {
			t.Errorf("blockgate %s succeeded: %s", strings.Join(args, " "), out)
		} else if out == "" {
			t.Errorf("blockgate %s failed silently", strings.Join(args, " "))
		}
	}
}
