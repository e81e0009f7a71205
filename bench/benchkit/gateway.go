package benchkit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// GatewayConfig says how to run the gateway.
type GatewayConfig struct {
	// Bin is the blockgate binary; required.
	Bin string
	// DataDir is its --data-dir; required. Its log goes to gateway.log
	// beside it.
	DataDir string
	// PostgresURL is its --postgres-url; required.
	PostgresURL string
	// NATSPort is the embedded NATS server's client port; 0 lets the
	// gateway pick one, which NATSURL then cannot name.
	NATSPort int
	// Args are more `serve` flags, after the defaults (a repeated flag's
	// last value wins), e.g. --pprof with a fixed --metrics-port.
	Args []string
}

// Gateway is a blockgate process started by a benchmark.
type Gateway struct {
	cmd      *exec.Cmd
	natsPort int
	logPath  string
	logFile  *os.File
	exited   chan struct{}
	waitErr  error // read only after exited is closed
	env      map[string]string
}

// StartGateway runs `blockgate serve --dev` on loopback ports over the
// Postgres at cfg.PostgresURL, with its data in cfg.DataDir, and waits
// until it answers. Its output goes to cfg.DataDir/../gateway.log.
func StartGateway(ctx context.Context, cfg GatewayConfig) (*Gateway, error) {
	bin, err := filepath.Abs(cfg.Bin)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	g := &Gateway{
		natsPort: cfg.NATSPort,
		logPath:  filepath.Join(filepath.Dir(cfg.DataDir), "gateway.log"),
		exited:   make(chan struct{}),
	}
	if g.logFile, err = os.Create(g.logPath); err != nil {
		return nil, err
	}
	// Not exec.CommandContext: the gateway is stopped with SIGTERM by Stop,
	// so that it drains and exits cleanly, never killed by a cancelled ctx.
	args := append([]string{"serve", "--dev",
		"--postgres-url", cfg.PostgresURL, "--data-dir", cfg.DataDir, "--host", "127.0.0.1",
		"--http-port", "0", "--grpc-port", "0", "--admin-port", "0", "--metrics-port", "0", "--xds-port", "0",
		"--nats-port", strconv.Itoa(cfg.NATSPort)}, cfg.Args...)
	g.cmd = exec.Command(bin, args...)
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
	if err := g.waitReady(ctx, filepath.Join(cfg.DataDir, "dev.env")); err != nil {
		g.kill()
		return nil, fmt.Errorf("%w\n\nlast lines of %s:\n%s", err, g.logPath, g.LogTail())
	}
	return g, nil
}

// waitReady waits for dev.env, then for /v1.0/healthz: dev.env is written
// before the servers start serving.
func (g *Gateway) waitReady(ctx context.Context, envPath string) error {
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

func (g *Gateway) healthy(ctx context.Context) bool {
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

// PID is the gateway's process id.
func (g *Gateway) PID() int { return g.cmd.Process.Pid }

// GRPCAddr is host:port of the gRPC API.
func (g *Gateway) GRPCAddr() string {
	return strings.TrimPrefix(g.env["DAPR_GRPC_ENDPOINT"], "http://")
}

// HTTPEndpoint is the base URL of the HTTP API (http://host:port).
func (g *Gateway) HTTPEndpoint() string { return g.env["DAPR_HTTP_ENDPOINT"] }

// Token is the dev app token.
func (g *Gateway) Token() string { return g.env["DAPR_API_TOKEN"] }

// NATSURL is the client URL of the embedded NATS server, or "" if the
// gateway picked its port.
func (g *Gateway) NATSURL() string {
	if g.natsPort == 0 {
		return ""
	}
	return "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(g.natsPort))
}

// LogPath is the file holding the gateway's output.
func (g *Gateway) LogPath() string { return g.logPath }

// Stop sends SIGTERM and waits for the gateway to exit, killing it if it
// does not within gatewayStopTimeout. It reports an unclean exit. Call it
// once.
func (g *Gateway) Stop() error {
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

func (g *Gateway) kill() {
	_ = g.cmd.Process.Kill()
	<-g.exited
}

// LogTail returns the end of the gateway's log.
func (g *Gateway) LogTail() string {
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

// FreePort returns a TCP port on loopback that was free a moment ago, for a
// server that cannot report the port it picked. Another process may take
// it meanwhile; the server then fails to start and says so.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// AdminURL is the base URL of the admin API (http://host:port).
func (g *Gateway) AdminURL() string { return g.env["BLOCKGATE_ADMIN_URL"] }

// AdminToken is the platform admin token.
func (g *Gateway) AdminToken() string { return g.env["BLOCKGATE_ADMIN_TOKEN"] }
