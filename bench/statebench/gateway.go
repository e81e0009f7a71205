package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	// gatewayStartTimeout bounds the wait for dev.env and a healthy node.
	gatewayStartTimeout = 90 * time.Second
	// gatewayStopTimeout bounds the wait after SIGTERM; the gateway's own
	// shutdown timeout is 15s.
	gatewayStopTimeout = 30 * time.Second
)

// gatewayProc is a blockgate process started by the benchmark.
type gatewayProc struct {
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	exited  chan struct{}
	waitErr error // read only after exited is closed
	env     map[string]string
}

// startGateway runs `blockgate serve --dev` on loopback ports over the
// Postgres at pgURL, with its data in dataDir, and waits until it answers.
// Its output goes to dataDir/../gateway.log.
func startGateway(ctx context.Context, bin, dataDir, pgURL string) (*gatewayProc, error) {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	g := &gatewayProc{logPath: filepath.Join(filepath.Dir(dataDir), "gateway.log"), exited: make(chan struct{})}
	if g.logFile, err = os.Create(g.logPath); err != nil {
		return nil, err
	}
	// Not exec.CommandContext: the gateway is stopped with SIGTERM by stop,
	// so that it drains and exits cleanly, never killed by a cancelled ctx.
	g.cmd = exec.Command(bin, "serve", "--dev",
		"--postgres-url", pgURL, "--data-dir", dataDir, "--host", "127.0.0.1",
		"--http-port", "0", "--grpc-port", "0", "--admin-port", "0", "--metrics-port", "0", "--nats-port", "0")
	g.cmd.Stdout, g.cmd.Stderr = g.logFile, g.logFile
	g.cmd.Env = cleanEnv()
	g.cmd.SysProcAttr = childProcAttr()
	if err := g.cmd.Start(); err != nil {
		g.logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		g.waitErr = g.cmd.Wait()
		close(g.exited)
	}()
	if err := g.waitReady(ctx, filepath.Join(dataDir, "dev.env")); err != nil {
		g.kill()
		return nil, fmt.Errorf("%w\n\nlast lines of %s:\n%s", err, g.logPath, g.logTail())
	}
	return g, nil
}

// waitReady waits for dev.env, then for /v1.0/healthz: dev.env is written
// before the servers start serving.
func (g *gatewayProc) waitReady(ctx context.Context, envPath string) error {
	ctx, cancel := context.WithTimeout(ctx, gatewayStartTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if g.env == nil {
			// BLOCKGATE_ADMIN_URL follows the token, so once it is there the
			// token line is complete even if the file is still being written.
			if env, err := readEnv(envPath); err == nil && env["DAPR_API_TOKEN"] != "" &&
				env["DAPR_GRPC_ENDPOINT"] != "" && env["DAPR_HTTP_ENDPOINT"] != "" && env["BLOCKGATE_ADMIN_URL"] != "" {
				g.env = env
			}
		}
		if g.env != nil && g.healthy(ctx) {
			return nil
		}
		select {
		case <-g.exited:
			return fmt.Errorf("the gateway exited before it was ready: %v", g.waitErr)
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("the gateway was not ready within %s", gatewayStartTimeout)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (g *gatewayProc) healthy(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.env["DAPR_HTTP_ENDPOINT"]+"/v1.0/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusNoContent
}

// pid is the gateway's process id.
func (g *gatewayProc) pid() int { return g.cmd.Process.Pid }

// grpcAddr is host:port of the gRPC API.
func (g *gatewayProc) grpcAddr() string {
	return strings.TrimPrefix(g.env["DAPR_GRPC_ENDPOINT"], "http://")
}

// token is the dev app token.
func (g *gatewayProc) token() string { return g.env["DAPR_API_TOKEN"] }

// stop sends SIGTERM and waits for the gateway to exit, killing it if it
// does not within gatewayStopTimeout. It reports an unclean exit.
func (g *gatewayProc) stop() error {
	defer g.logFile.Close()
	select {
	case <-g.exited:
		return fmt.Errorf("the gateway had already exited: %v", g.waitErr)
	default:
	}
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		g.kill()
		return fmt.Errorf("signalling the gateway: %w", err)
	}
	select {
	case <-g.exited:
		if g.waitErr != nil {
			return fmt.Errorf("the gateway exited with %v after SIGTERM", g.waitErr)
		}
		return nil
	case <-time.After(gatewayStopTimeout):
		g.kill()
		return fmt.Errorf("the gateway did not stop within %s of SIGTERM; killed it", gatewayStopTimeout)
	}
}

func (g *gatewayProc) kill() {
	_ = g.cmd.Process.Kill()
	<-g.exited
}

// logTail returns the end of the gateway's log.
func (g *gatewayProc) logTail() string {
	b, err := os.ReadFile(g.logPath)
	if err != nil {
		return err.Error()
	}
	const tailBytes = 4 << 10
	if len(b) > tailBytes {
		b = b[len(b)-tailBytes:]
		if i := strings.IndexByte(string(b), '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// cleanEnv is this process's environment without BLOCKGATE_ and DAPR_
// variables, which would change the gateway's configuration.
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

// readEnv parses a KEY=value file such as dev.env.
func readEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseEnv(f)
}

func parseEnv(r io.Reader) (map[string]string, error) {
	env := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env, sc.Err()
}
