package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/blockgate/blockgate/admin/adminclient"
	"github.com/blockgate/blockgate/bench/benchkit"
	"github.com/blockgate/blockgate/tenants"
)

const (
	// warmup is how long each tenant's load runs, unmeasured, before the
	// first round.
	warmup = time.Second
	// noisyLead is how long the noisy tenant runs before the quiet load
	// starts: long enough to spend its burst at -noisy-rate.
	noisyLead = time.Second
	// noisySlack is how much longer than the quiet load the noisy one is
	// scheduled for; it is stopped as soon as the quiet load ends.
	noisySlack = 10 * time.Second
)

// proto is one protocol's way of making the two tenants' calls. Each
// newOp is given the counters of the phase it runs in.
type proto struct {
	name  string // "http" or "grpc", for -json
	label string // for the tables
	quiet func(errs *quietErrors) func(worker int) benchkit.Op
	noisy func(counts *noisyCounts) func(worker int) benchkit.Op
}

func run(ctx context.Context, cfg config) error {
	rig, err := benchkit.StartRig(ctx, benchkit.RigConfig{Name: "neighbourbench", Bin: cfg.bin, Progress: progress})
	if err != nil {
		return err
	}
	defer rig.Close()
	gw := rig.Gateway

	admin := adminclient.New(gw.AdminURL(), gw.AdminToken())
	limits := tenants.Limits{RequestsPerSecond: cfg.limitRPS, RequestBurst: cfg.limitBurst}
	// The tokens must outlive the run, whatever its flags.
	ttl := time.Hour + time.Duration(4*cfg.rounds)*(cfg.duration+noisyLead+noisySlack)
	quiet, err := createTenant(ctx, admin, gw, "quiet", "calm", limits, ttl)
	if err != nil {
		return err
	}
	noisy, err := createTenant(ctx, admin, gw, "noisy", "flood", limits, ttl)
	if err != nil {
		return err
	}
	progress("tenants quiet and noisy ready, each limited to %g req/s with a burst of %d", cfg.limitRPS, cfg.limitBurst)

	// Each tenant has its own clients, as two unrelated apps would.
	quietHTTP, noisyHTTP := httpClient(cfg.workers), httpClient(cfg.workers)
	defer quietHTTP.CloseIdleConnections()
	defer noisyHTTP.CloseIdleConnections()
	quietConn, err := grpcConn(gw.GRPCAddr())
	if err != nil {
		return err
	}
	defer quietConn.Close()
	noisyConn, err := grpcConn(gw.GRPCAddr())
	if err != nil {
		return err
	}
	defer noisyConn.Close()
	quietGRPC, noisyGRPC := runtimev1.NewDaprClient(quietConn), runtimev1.NewDaprClient(noisyConn)
	url := gw.HTTPEndpoint() + "/v1.0/state/" + storeName + "/" + key

	protos := []proto{
		{
			name: "http", label: "HTTP",
			quiet: func(errs *quietErrors) func(int) benchkit.Op {
				return func(int) benchkit.Op { return quietHTTPOp(quietHTTP, url, quiet.token, quiet.wantHTTP, errs) }
			},
			noisy: func(counts *noisyCounts) func(int) benchkit.Op {
				return func(int) benchkit.Op { return noisyHTTPOp(noisyHTTP, url, noisy.token, counts) }
			},
		},
		{
			name: "grpc", label: "gRPC",
			quiet: func(errs *quietErrors) func(int) benchkit.Op {
				return func(int) benchkit.Op { return quietGRPCOp(quietGRPC, quiet.token, quiet.wantGRPC, errs) }
			},
			noisy: func(counts *noisyCounts) func(int) benchkit.Op {
				return func(int) benchkit.Op { return noisyGRPCOp(noisyGRPC, noisy.token, counts) }
			},
		},
	}

	for _, p := range protos {
		progress("warming up %s", p.label)
		var errs quietErrors
		if _, err := benchkit.Open(ctx, cfg.rate, warmup, cfg.workers, nil, p.quiet(&errs)); err != nil {
			return fmt.Errorf("warming up the quiet tenant over %s: %w", p.label, err)
		}
		var counts noisyCounts
		if _, err := benchkit.Open(ctx, cfg.noisyRate, warmup, cfg.workers, nil, p.noisy(&counts)); err != nil {
			return fmt.Errorf("warming up the noisy tenant over %s: %w", p.label, err)
		}
		c := counts.snapshot()
		progress("warm-up over %s: quiet %d errors; noisy %d accepted, %d refused, %d other",
			p.label, errs.count(), c.Accepted, c.Refused, c.Other)
		if c.Refused == 0 {
			return errNoRefusal
		}
	}

	res := newResults(cfg, rig.Env)
	phase, phases := 0, cfg.rounds*2*len(protos)
	for r := range cfg.rounds {
		for _, p := range protos {
			order := []bool{false, true} // with the neighbour?
			if r%2 == 1 {
				order[0], order[1] = order[1], order[0]
			}
			for _, with := range order {
				phase++
				pr, err := runPhase(ctx, cfg, rig.Meter, p, with)
				if err != nil {
					return fmt.Errorf("round %d, %s %s: %w", r+1, p.label, sideName(with), err)
				}
				line := fmt.Sprintf("[%2d/%d] round %d %-4s %-14s quiet %4.0f req/s  p50 %s p90 %s p99 %s p99.9 %s  errors %d",
					phase, phases, r+1, p.label, sideName(with), pr.Quiet.OpsPerSec, benchkit.Ms(pr.Quiet.P50Ms),
					benchkit.Ms(pr.Quiet.P90Ms), benchkit.Ms(pr.Quiet.P99Ms), benchkit.Ms(pr.Quiet.P999Ms), pr.QuietErrors)
				if n := pr.Noisy; n != nil {
					line += fmt.Sprintf("; noisy sent %.0f/s, accepted %.0f/s, refused %.1f%%, other %d",
						n.SentPerSec, n.AcceptedPerSec, 100*n.RefusedShare, n.Counts.Other)
				}
				if pr.FirstError != "" {
					line += "; first error: " + pr.FirstError
				}
				progress("%s%s", line, benchkit.CPUNote(pr.CPU))
				res.add(p, with, pr)
			}
		}
	}
	res.finish()
	res.print()
	if cfg.jsonPath != "" {
		return benchkit.WriteJSON(cfg.jsonPath, res)
	}
	return nil
}

// runPhase runs the quiet tenant's load for cfg.duration, beside the noisy
// tenant's if with is set.
func runPhase(ctx context.Context, cfg config, meter *benchkit.CPUMeter, p proto, with bool) (phaseResult, error) {
	var errs quietErrors
	if !with {
		smp, err := benchkit.Open(ctx, cfg.rate, cfg.duration, cfg.workers, meter, p.quiet(&errs))
		if err != nil {
			return phaseResult{}, err
		}
		return newPhaseResult(smp, errs.count(), errs.firstError(), nil, 0), nil
	}

	noisyCtx, stopNoisy := context.WithCancel(ctx)
	defer stopNoisy()
	var counts noisyCounts
	noisyDone := make(chan error, 1)
	go func() {
		_, err := benchkit.Open(noisyCtx, cfg.noisyRate, noisyLead+cfg.duration+noisySlack, cfg.workers, nil, p.noisy(&counts))
		noisyDone <- err
	}()
	select {
	case <-ctx.Done():
		return phaseResult{}, ctx.Err()
	case err := <-noisyDone:
		return phaseResult{}, fmt.Errorf("the noisy tenant's load ended early: %v", err)
	case <-time.After(noisyLead):
	}

	before, begin := counts.snapshot(), time.Now()
	smp, err := benchkit.Open(ctx, cfg.rate, cfg.duration, cfg.workers, meter, p.quiet(&errs))
	window := counts.snapshot().minus(before)
	elapsed := time.Since(begin)
	stopNoisy()
	noisyErr := <-noisyDone
	if err != nil {
		return phaseResult{}, err
	}
	if ctx.Err() != nil {
		return phaseResult{}, ctx.Err()
	}
	if noisyErr != nil && !errors.Is(noisyErr, context.Canceled) {
		return phaseResult{}, fmt.Errorf("the noisy tenant's load: %w", noisyErr)
	}
	return newPhaseResult(smp, errs.count(), errs.firstError(), &window, elapsed), nil
}

func sideName(with bool) string {
	if with {
		return "with neighbour"
	}
	return "alone"
}
