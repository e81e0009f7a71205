package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGoSDKProgram runs an unchanged Go SDK program with exactly the
// environment dev mode prints.
func TestGoSDKProgram(t *testing.T) {
	g := sharedGateway(t)
	cmd := exec.CommandContext(t.Context(), filepath.Join(binDir, "gosdkapp"))
	cmd.Env = append(cleanEnv(),
		"DAPR_GRPC_ENDPOINT="+g.env["DAPR_GRPC_ENDPOINT"],
		"DAPR_API_TOKEN="+g.env["DAPR_API_TOKEN"],
	)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("Go SDK program failed (%v):\n%s", err, out)
	}
}

// TestJSSDK runs the @dapr/dapr (HTTP) test script against the gateway.
func TestJSSDK(t *testing.T) {
	g := sharedGateway(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed; `make test` needs Node.js for the JS SDK tests (apt-get install nodejs npm)")
	}
	if _, err := os.Stat("js/node_modules/@dapr/dapr"); err != nil {
		t.Fatal("the JS SDK is not installed; run `npm ci --prefix e2e/js` (make test does)")
	}
	cmd := exec.CommandContext(t.Context(), node, "--test", "state.test.mjs")
	cmd.Dir = "js"
	cmd.Env = append(cleanEnv(),
		"DAPR_HTTP_ENDPOINT="+g.env["DAPR_HTTP_ENDPOINT"],
		"DAPR_API_TOKEN="+g.env["DAPR_API_TOKEN"],
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("JS SDK tests failed (%v):\n%s", err, out)
	}
	t.Logf("JS SDK:\n%s", out)
}
