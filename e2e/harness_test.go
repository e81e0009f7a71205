package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/blockgate/blockgate/internal/syncbuf"

	"github.com/blockgate/blockgate/admin/adminclient"
)

// binDir holds the binaries TestMain builds: blockgate and gosdkapp.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "blockgate-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	for _, b := range []struct{ out, pkg string }{
		{"blockgate", "github.com/blockgate/blockgate"},
		{"gosdkapp", "github.com/blockgate/blockgate/e2e/gosdkapp"},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", b.pkg, err)
			return 1
		}
	}
	code := m.Run()
	stopShared()
	stopClusterPostgres()
	return code
}

// gateway is a blockgate process started by a test, in dev mode.
type gateway struct {
	dataDir string
	env     map[string]string
	cmd     *exec.Cmd
	logs    *syncbuf.Buffer
	exited  chan struct{}
	waitErr error
}

// worldDir makes a temporary directory that the unprivileged user running
// the private Postgres can traverse.
func worldDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	return dir, os.Chmod(dir, 0o755)
}

// privateGateway starts a dev gateway of the test's own, with extra serve
// flags, in a data dir that is removed when the test ends, and stops it
// then if it still runs.
func privateGateway(t *testing.T, extra ...string) (*gateway, string) {
	t.Helper()
	dir, err := worldDir("blockgate-e2e-" + strings.ToLower(t.Name()) + "-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	g, err := startGateway(dir, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.stopIfRunning()
		if t.Failed() {
			logs := g.logs.String()
			t.Logf("log of the gateway in %s (last 8 KiB):\n%s", dir, logs[max(0, len(logs)-8<<10):])
		}
	})
	return g, dir
}

// stopIfRunning stops g unless it has exited already.
func (g *gateway) stopIfRunning() {
	select {
	case <-g.exited:
	default:
		_ = g.stop()
	}
}

// startGateway starts `blockgate serve --dev` on free loopback ports in
// dataDir and waits for dev.env.
func startGateway(dataDir string, extra ...string) (*gateway, error) {
	envPath := filepath.Join(dataDir, "dev.env")
	// A restart rewrites dev.env; wait for this run's copy.
	var before time.Time
	if fi, err := os.Stat(envPath); err == nil {
		before = fi.ModTime()
	}
	args := append([]string{"serve", "--dev", "--data-dir", dataDir, "--host", "127.0.0.1",
		"--http-port", "0", "--grpc-port", "0", "--admin-port", "0", "--metrics-port", "0", "--nats-port", "0", "--xds-port", "0"}, extra...)
	g := &gateway{dataDir: dataDir, logs: &syncbuf.Buffer{}, exited: make(chan struct{})}
	g.cmd = exec.Command(filepath.Join(binDir, "blockgate"), args...)
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	g.cmd.Env = cleanEnv()
	if err := g.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		g.waitErr = g.cmd.Wait()
		close(g.exited)
	}()
	deadline := time.After(90 * time.Second)
	for {
		if fi, err := os.Stat(envPath); err == nil && fi.ModTime().After(before) {
			if env, err := readEnv(envPath); err == nil && env["DAPR_API_TOKEN"] != "" && env["BLOCKGATE_ADMIN_TOKEN"] != "" {
				g.env = env
				break
			}
		}
		select {
		case <-g.exited:
			return nil, fmt.Errorf("gateway exited before it was ready (%v):\n%s", g.waitErr, g.logs.String())
		case <-deadline:
			g.kill()
			return nil, fmt.Errorf("gateway did not write dev.env within 90s:\n%s", g.logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	// dev.env is written before the servers start; wait until HTTP answers.
	client := http.DefaultClient
	if strings.HasPrefix(g.httpURL(), "https://") {
		client = g.tlsClient(nil)
	}
	for i := 0; ; i++ {
		resp, err := client.Get(g.httpURL() + "/v1.0/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return g, nil
			}
		}
		if i > 200 {
			g.kill()
			return nil, fmt.Errorf("gateway never became healthy (%v):\n%s", err, g.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// trustBundle is the gateway's CA roots, written by a dev gateway started
// with --tls.
func (g *gateway) trustBundle() *x509.CertPool {
	pool := x509.NewCertPool()
	if b, err := os.ReadFile(filepath.Join(g.dataDir, "trust-bundle.pem")); err == nil {
		pool.AppendCertsFromPEM(b)
	}
	return pool
}

// tlsClient is an HTTP client that trusts the gateway's CA and presents
// cert (nil for none).
func (g *gateway) tlsClient(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: g.trustBundle(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
}

// cleanEnv is the test's environment without BLOCKGATE_ and DAPR_
// variables that would change the gateway's configuration.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "BLOCKGATE_") || strings.HasPrefix(kv, "DAPR_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func readEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env, sc.Err()
}

func (g *gateway) httpURL() string { return g.env["DAPR_HTTP_ENDPOINT"] }
func (g *gateway) grpcAddr() string {
	ep := strings.TrimPrefix(g.env["DAPR_GRPC_ENDPOINT"], "http://")
	return strings.TrimPrefix(ep, "https://")
}
func (g *gateway) token() string { return g.env["DAPR_API_TOKEN"] }

func (g *gateway) admin() *adminclient.Client {
	return adminclient.New(g.env["BLOCKGATE_ADMIN_URL"], g.env["BLOCKGATE_ADMIN_TOKEN"])
}

// stop sends SIGTERM and waits for a clean exit.
func (g *gateway) stop() error {
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-g.exited:
		return g.waitErr
	case <-time.After(60 * time.Second):
		g.kill()
		return fmt.Errorf("gateway did not stop within 60s of SIGTERM:\n%s", g.logs.String())
	}
}

func (g *gateway) kill() {
	_ = g.cmd.Process.Kill()
	<-g.exited
}

var (
	sharedOnce sync.Once
	shared     *gateway
	sharedErr  error
)

// sharedGateway is one dev-mode gateway for the tests that only need a
// running gateway; it is stopped after all tests.
func sharedGateway(t *testing.T) *gateway {
	t.Helper()
	sharedOnce.Do(func() {
		dir, err := worldDir("blockgate-e2e-")
		if err != nil {
			sharedErr = err
			return
		}
		shared, sharedErr = startGateway(dir)
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func stopShared() {
	if shared == nil {
		return
	}
	if err := shared.stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the shared gateway:", err)
	}
	os.RemoveAll(shared.dataDir)
}

// newTenant creates a tenant with an app, the given components and a token,
// returning the token.
func newTenant(t *testing.T, g *gateway, name, app string, components ...string) string {
	t.Helper()
	ctx := t.Context()
	a := g.admin()
	if _, err := a.CreateTenant(ctx, name); err != nil {
		t.Fatalf("creating tenant %s: %v", name, err)
	}
	if _, err := a.CreateApp(ctx, name, app, ""); err != nil {
		t.Fatalf("creating app: %v", err)
	}
	for _, c := range components {
		if _, err := a.ApplyComponent(ctx, name, []byte(c)); err != nil {
			t.Fatalf("applying component: %v", err)
		}
	}
	tok, err := a.IssueToken(ctx, name, app, time.Hour)
	if err != nil {
		t.Fatalf("issuing token: %v", err)
	}
	return tok.Text
}

const stateComponent = `
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.postgresql
  version: v1
`

// do sends an HTTP request to the gateway's Dapr API with token.
func do(t *testing.T, g *gateway, token, method, path string, body io.Reader, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, g.httpURL()+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("dapr-api-token", token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// waitUntil polls cond until it holds, failing the test after 10 seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}
