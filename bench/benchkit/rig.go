package benchkit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/blockgate/blockgate/gateway/gatewaypg"
)

// Rig is what a benchmark measures: a private Postgres cluster in a
// temporary directory and the gateway over it, with a CPUMeter on both.
type Rig struct {
	Postgres *gatewaypg.Server
	Gateway  *Gateway
	Meter    *CPUMeter
	Env      Environment

	root     string
	progress func(format string, args ...any)
}

// RigConfig configures StartRig.
type RigConfig struct {
	// Name prefixes the temporary directory; required.
	Name string
	// Bin is the gateway binary; required.
	Bin string
	// NATSPort is the embedded NATS server's port (GatewayConfig.NATSPort).
	NATSPort int
	// Args are more gateway flags (GatewayConfig.Args).
	Args []string
	// Progress prints progress lines; required.
	Progress func(format string, args ...any)
}

// StartRig starts Postgres (gatewaypg) and the gateway in dev mode over it,
// and finds their processes for the CPUMeter. Close stops and removes
// everything; on error StartRig has done so already.
func StartRig(ctx context.Context, cfg RigConfig) (_ *Rig, err error) {
	r := &Rig{progress: cfg.Progress}
	if r.root, err = os.MkdirTemp("", cfg.Name+"-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	// As root, gatewaypg runs postgres as nobody, which must be able to
	// reach its directory under root.
	if err := os.Chmod(r.root, 0o755); err != nil {
		return nil, err
	}
	r.progress("starting a private Postgres in %s", r.root)
	if r.Postgres, err = gatewaypg.Start(ctx, gatewaypg.Config{Dir: filepath.Join(r.root, "postgres")}); err != nil {
		return nil, err
	}
	r.progress("starting the gateway (%s serve --dev --postgres-url ...)", cfg.Bin)
	r.Gateway, err = StartGateway(ctx, GatewayConfig{
		Bin: cfg.Bin, DataDir: filepath.Join(r.root, "gateway"), PostgresURL: r.Postgres.URL(), NATSPort: cfg.NATSPort, Args: cfg.Args,
	})
	if err != nil {
		return nil, err
	}
	r.progress("gateway ready: gRPC %s, HTTP %s, pid %d", r.Gateway.GRPCAddr(), r.Gateway.HTTPEndpoint(), r.Gateway.PID())

	r.Env = Environment{
		CPUs: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, Go: runtime.Version(),
		Gateway: GatewayVersion(ctx, cfg.Bin),
	}
	r.Meter = &CPUMeter{GatewayPID: r.Gateway.PID()}
	backend, err := r.postgresInfo(ctx)
	if err != nil {
		return nil, err
	}
	if r.Meter.PostmasterPID, err = PostmasterOf(backend); err != nil {
		r.progress("not measuring Postgres' CPU time: %v", err)
	}
	return r, nil
}

// postgresInfo reads the server's version and a backend's pid.
func (r *Rig) postgresInfo(ctx context.Context) (backend int, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, r.Postgres.URL())
	if err != nil {
		return 0, fmt.Errorf("connecting to Postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version'), pg_backend_pid()`).Scan(&r.Env.Postgres, &backend); err != nil {
		return 0, err
	}
	return backend, nil
}

// Close stops the gateway (SIGTERM) and Postgres and removes the temporary
// directory, reporting problems as warnings. Call it once.
func (r *Rig) Close() {
	if r.Gateway != nil {
		if err := r.Gateway.Stop(); err != nil {
			r.progress("warning: stopping the gateway: %v\nlast lines of its log:\n%s", err, r.Gateway.LogTail())
		} else {
			r.progress("stopped the gateway")
		}
	}
	if r.Postgres != nil {
		if err := r.Postgres.Close(); err != nil {
			r.progress("warning: stopping Postgres: %v", err)
		} else {
			r.progress("stopped Postgres")
		}
	}
	if err := os.RemoveAll(r.root); err != nil {
		r.progress("warning: removing %s: %v", r.root, err)
	}
}
