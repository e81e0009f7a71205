package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/blockgate/blockgate/admin/adminclient"
	"github.com/blockgate/blockgate/bench/benchkit"
)

// warmup is how long each side runs, unmeasured, before the first round.
const warmup = time.Second

// The apps the benchmark registers in tenant default.
const (
	devTenant  = "default"
	httpTarget = "target"
	grpcTarget = "gtarget"
)

// side is one way of making the call.
type side struct {
	proto string // "http" or "grpc"
	name  string // "direct" or "gateway"
	label string // for the tables
	newOp func(worker int) benchkit.Op
}

func run(ctx context.Context, cfg config) error {
	rig, err := benchkit.StartRig(ctx, benchkit.RigConfig{Name: "invokebench", Bin: cfg.bin, Progress: progress})
	if err != nil {
		return err
	}
	defer rig.Close()
	gw := rig.Gateway

	a, err := startApp()
	if err != nil {
		return fmt.Errorf("starting the target app: %w", err)
	}
	defer a.Close()
	progress("target app: HTTP %s, gRPC %s", a.httpAddr, a.grpcAddr)

	admin := adminclient.New(gw.AdminURL(), gw.AdminToken())
	if _, err := admin.CreateApp(ctx, devTenant, httpTarget, "http://"+a.httpAddr); err != nil {
		return fmt.Errorf("registering app %s: %w", httpTarget, err)
	}
	if _, err := admin.CreateApp(ctx, devTenant, grpcTarget, "grpc://"+a.grpcAddr); err != nil {
		return fmt.Errorf("registering app %s: %w", grpcTarget, err)
	}

	directHTTP, gatewayHTTP := httpClient(cfg.workers), httpClient(cfg.workers)
	defer directHTTP.CloseIdleConnections()
	defer gatewayHTTP.CloseIdleConnections()
	tokenHeader := http.Header{"Dapr-Api-Token": {gw.Token()}}
	directConn, err := grpcConn(a.grpcAddr)
	if err != nil {
		return err
	}
	defer directConn.Close()
	gatewayConn, err := grpcConn(gw.GRPCAddr())
	if err != nil {
		return err
	}
	defer gatewayConn.Close()
	md := metadata.Pairs("dapr-app-id", grpcTarget, "dapr-api-token", gw.Token())

	protos := [][2]side{
		{
			{"http", "direct", "HTTP direct, GET /ping", func(int) benchkit.Op {
				return httpOp(directHTTP, "http://"+a.httpAddr+"/ping", http.Header{})
			}},
			{"http", "gateway", "HTTP gateway, GET /v1.0/invoke/target/method/ping", func(int) benchkit.Op {
				return httpOp(gatewayHTTP, gw.HTTPEndpoint()+"/v1.0/invoke/"+httpTarget+"/method/ping", tokenHeader)
			}},
		},
		{
			{"grpc", "direct", "gRPC direct, Health/Check", func(int) benchkit.Op { return healthOp(directConn, nil) }},
			{"grpc", "gateway", "gRPC gateway, Health/Check proxied", func(int) benchkit.Op { return healthOp(gatewayConn, md) }},
		},
	}

	for _, p := range protos {
		for _, s := range p {
			progress("warming up %s", s.label)
			if _, err := benchkit.Open(ctx, cfg.rate, warmup, cfg.workers, nil, s.newOp); err != nil {
				return fmt.Errorf("warming up %s: %w", s.label, err)
			}
		}
	}

	res := newResults(cfg, rig.Env)
	phase, phases := 0, cfg.rounds*4
	for r := range cfg.rounds {
		for _, p := range protos {
			order := []side{p[0], p[1]}
			if r%2 == 1 {
				order[0], order[1] = order[1], order[0]
			}
			for _, s := range order {
				phase++
				smp, err := benchkit.Open(ctx, cfg.rate, cfg.duration, cfg.workers, rig.Meter, s.newOp)
				if err != nil {
					return fmt.Errorf("round %d, %s: %w", r+1, s.label, err)
				}
				st := benchkit.Summarize(smp)
				progress("[%2d/%d] round %d %-50s %6.0f req/s  p50 %s p90 %s p99 %s%s", phase, phases, r+1, s.label,
					st.OpsPerSec, benchkit.Ms(st.P50Ms), benchkit.Ms(st.P90Ms), benchkit.Ms(st.P99Ms), benchkit.CPUNote(st.CPU))
				res.add(s, st)
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
