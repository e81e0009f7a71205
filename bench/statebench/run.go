package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/blockgate/blockgate/gateway/gatewaypg"
)

// side is one side of the comparison.
type side struct {
	name string // baseline or gateway
	t    target
}

// run sets up Postgres, the gateway and both sides, measures, and reports.
// Everything it started is stopped and removed again before it returns.
func run(ctx context.Context, cfg config) error {
	began := time.Now()
	root, err := os.MkdirTemp("", "statebench-")
	if err != nil {
		return err
	}
	defer func() {
		if err := os.RemoveAll(root); err != nil {
			progress("warning: removing %s: %v", root, err)
		}
	}()
	// As root, gatewaypg runs postgres as nobody, which must be able to
	// reach its directory under root.
	if err := os.Chmod(root, 0o755); err != nil {
		return err
	}

	progress("starting a private Postgres in %s", root)
	pg, err := gatewaypg.Start(ctx, gatewaypg.Config{Dir: filepath.Join(root, "postgres")})
	if err != nil {
		return err
	}
	defer func() {
		if err := pg.Close(); err != nil {
			progress("warning: stopping Postgres: %v", err)
			return
		}
		progress("stopped Postgres")
	}()

	progress("starting the gateway (%s serve --dev --postgres-url ...)", cfg.bin)
	gw, err := startGateway(ctx, cfg.bin, filepath.Join(root, "gateway"), pg.URL())
	if err != nil {
		return err
	}
	defer func() {
		if err := gw.stop(); err != nil {
			progress("warning: stopping the gateway: %v\nlast lines of its log:\n%s", err, gw.logTail())
			return
		}
		progress("stopped the gateway")
	}()
	progress("gateway ready: gRPC %s, pid %d", gw.grpcAddr(), gw.pid())

	value := jsonValue(cfg.valueSize)
	raw, err := newRawTarget(ctx, pg.URL(), cfg.keys, value)
	if err != nil {
		return err
	}
	defer raw.close()
	conns := cfg.clients
	if cfg.sharedConn {
		conns = 1
	}
	var gwt target
	if cfg.client == "sdk" {
		gwt, err = newSDKTarget(ctx, gw.grpcAddr(), gw.token(), conns, cfg.keys, value)
	} else {
		gwt, err = newGRPCTarget(gw.grpcAddr(), gw.token(), conns, cfg.keys, value)
	}
	if err != nil {
		return err
	}
	defer gwt.close()

	env := environment{
		CPUs: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, Go: runtime.Version(),
		Gateway: gatewayVersion(ctx, cfg.bin),
	}
	if err := raw.pool.QueryRow(ctx, `SHOW server_version`).Scan(&env.Postgres); err != nil {
		return err
	}
	meter := &cpuMeter{gatewayPID: gw.pid()}
	var backend int
	if err := raw.pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		return err
	}
	if meter.postmasterPID, err = postmasterOf(backend); err != nil {
		progress("not measuring CPU time: %v", err)
	}
	progress("Postgres %s, gateway %s, %d CPUs; %d clients, %d keys, %d-byte values, %s per phase, %d rounds",
		env.Postgres, env.Gateway, env.CPUs, cfg.clients, cfg.keys, cfg.valueSize, cfg.duration, cfg.rounds)

	sides := []side{{"baseline", raw}, {"gateway", gwt}}
	for _, s := range sides {
		t0 := time.Now()
		progress("preloading %d keys through the %s (not measured)", cfg.keys, s.name)
		if err := preload(ctx, s.t.save, cfg.clients, cfg.keys); err != nil {
			return fmt.Errorf("preloading through the %s: %w", s.name, err)
		}
		progress("preloaded through the %s in %s", s.name, time.Since(t0).Round(time.Millisecond))
	}

	ops := []string{"save", "get"}
	rounds := make(map[string][]roundResult, len(ops))
	step, steps := 0, cfg.rounds*len(ops)*len(sides)
	for r := range cfg.rounds {
		for oi, op := range ops {
			order := sides
			if r%2 == 1 {
				order = []side{sides[1], sides[0]}
			}
			var rr roundResult
			for _, s := range order {
				step++
				fn := s.t.save
				if op == "get" {
					fn = s.t.get
				}
				smp, err := measure(ctx, fn, cfg.clients, cfg.keys, cfg.duration, uint64(r*len(ops)+oi), meter)
				if err != nil {
					return fmt.Errorf("round %d, %s through the %s: %w", r+1, op, s.name, err)
				}
				st := summarize(smp)
				if s.name == "baseline" {
					rr.Baseline = st
				} else {
					rr.Gateway = st
				}
				left := time.Duration(steps-step) * cfg.duration
				progress("[%2d/%d] round %d %-4s %-8s %9s ops/s  p50 %s  p99 %s%s  (%s left)",
					step, steps, r+1, op, s.name, thousands(st.OpsPerSec), ms(st.P50Ms), ms(st.P99Ms), cpuNote(st), left)
			}
			rr.Ratio = rr.Gateway.OpsPerSec / rr.Baseline.OpsPerSec
			rounds[op] = append(rounds[op], rr)
		}
	}

	rep := newReport(cfg, env, ops, rounds)
	rep.print(os.Stdout)
	if cfg.jsonPath != "" {
		if err := rep.write(cfg.jsonPath); err != nil {
			return err
		}
		progress("wrote %s", cfg.jsonPath)
	}
	progress("done in %s", time.Since(began).Round(time.Second))
	return nil
}

// cpuNote is the CPU split of a phase for a progress line.
func cpuNote(st stats) string {
	if st.CPU == nil {
		return ""
	}
	c := st.CPU
	return fmt.Sprintf("  cpu/op client %.0fµs gw %.0fµs pg %.0fµs other %.0fµs",
		c.ClientUsPerOp, c.GatewayUsPerOp, c.PostgresUsPerOp, c.OtherUsPerOp)
}

// gatewayVersion asks the binary for its version.
func gatewayVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
