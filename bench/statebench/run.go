package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/blockgate/blockgate/bench/benchkit"
)

// side is one side of the comparison.
type side struct {
	name string // baseline or gateway
	t    target
}

// opFunc is a target's save or get.
type opFunc func(ctx context.Context, worker, key int) error

// run sets up Postgres, the gateway and both sides, measures, and reports.
// Everything it started is stopped and removed again before it returns.
func run(ctx context.Context, cfg config) error {
	began := time.Now()
	rig, err := benchkit.StartRig(ctx, benchkit.RigConfig{Name: "statebench", Bin: cfg.bin, Progress: progress})
	if err != nil {
		return err
	}
	defer rig.Close()
	gw := rig.Gateway

	value := benchkit.JSONValue(cfg.valueSize)
	raw, err := newRawTarget(ctx, rig.Postgres.URL(), cfg.keys, value)
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
		gwt, err = newSDKTarget(ctx, gw.GRPCAddr(), gw.Token(), conns, cfg.keys, value)
	} else {
		gwt, err = newGRPCTarget(gw.GRPCAddr(), gw.Token(), conns, cfg.keys, value)
	}
	if err != nil {
		return err
	}
	defer gwt.close()

	env := rig.Env
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
				smp, err := measure(ctx, fn, cfg.clients, cfg.keys, cfg.duration, uint64(r*len(ops)+oi), rig.Meter)
				if err != nil {
					return fmt.Errorf("round %d, %s through the %s: %w", r+1, op, s.name, err)
				}
				st := benchkit.Summarize(smp)
				if s.name == "baseline" {
					rr.Baseline = st
				} else {
					rr.Gateway = st
				}
				left := time.Duration(steps-step) * cfg.duration
				progress("[%2d/%d] round %d %-4s %-8s %9s ops/s  p50 %s  p99 %s%s  (%s left)",
					step, steps, r+1, op, s.name, benchkit.Thousands(st.OpsPerSec), benchkit.Ms(st.P50Ms), benchkit.Ms(st.P99Ms),
					benchkit.CPUNote(st.CPU), left)
			}
			rr.Ratio = rr.Gateway.OpsPerSec / rr.Baseline.OpsPerSec
			rounds[op] = append(rounds[op], rr)
		}
	}

	rep := newReport(cfg, env, ops, rounds)
	rep.print(os.Stdout)
	if cfg.jsonPath != "" {
		if err := benchkit.WriteJSON(cfg.jsonPath, rep); err != nil {
			return err
		}
		progress("wrote %s", cfg.jsonPath)
	}
	progress("done in %s", time.Since(began).Round(time.Second))
	return nil
}

// measure runs op from clients workers for d, each picking keys uniformly
// at random from [0, keys) with a generator seeded by seed and its index, so
// that both sides of a comparison see the same keys in the same order.
func measure(ctx context.Context, op opFunc, clients, keys int, d time.Duration, seed uint64, meter *benchkit.CPUMeter) (benchkit.Sample, error) {
	return benchkit.Closed(ctx, clients, d, meter, func(w int) benchkit.Op {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		return func(ctx context.Context) (int, error) {
			return 1, op(ctx, w, rng.IntN(keys))
		}
	})
}

// preload writes every key once with save, from clients workers, unmeasured.
func preload(ctx context.Context, save opFunc, clients, keys int) error {
	var next atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for w := range clients {
		g.Go(func() error {
			for {
				k := int(next.Add(1) - 1)
				if k >= keys {
					return nil
				}
				if err := save(ctx, w, k); err != nil {
					return fmt.Errorf("client %d: %w", w, err)
				}
			}
		})
	}
	return g.Wait()
}
