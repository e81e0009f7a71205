package authpolicy

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the package free of transports and drivers: the request
// path of every block calls it, and the blocks may not import those.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := []string{"github.com/labstack/echo", "google.golang.org/grpc", "github.com/jackc/pgx", "github.com/nats-io/"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("authpolicy depends on %s", dep)
			}
		}
	}
}
