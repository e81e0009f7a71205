package main

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"time"

	"google.golang.org/grpc"
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

// The sides of each protocol, in the order of the tables.
const (
	sideDirect  = "direct"
	sideProxy   = "proxy"
	sideGateway = "gateway"
)

// side is one way of making the call.
type side struct {
	proto string // "http" or "grpc"
	name  string // sideDirect, sideProxy or sideGateway
	label string // for the tables
	newOp func(worker int) benchkit.Op
	// meter charges the CPU time of the process in the middle (the
	// gateway or the bare proxy) to the gateway column.
	meter *benchkit.CPUMeter
}

// interleave runs the sides of a protocol in turns of cfg.slice until each
// has run for cfg.duration, and returns each side's slices merged. Taking
// turns spreads the machine's own hiccups (a stalled virtual CPU, another
// process) over all sides alike instead of letting one burst land on one
// side's only phase.
func interleave(ctx context.Context, cfg config, sides []side) ([]benchkit.Sample, error) {
	parts := make([][]benchkit.Sample, len(sides))
	for done := time.Duration(0); done < cfg.duration; done += cfg.slice {
		for k, s := range sides {
			smp, err := benchkit.Open(ctx, cfg.rate, cfg.slice, cfg.workers, s.meter, s.newOp)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.label, err)
			}
			parts[k] = append(parts[k], smp)
		}
	}
	merged := make([]benchkit.Sample, len(sides))
	for k := range sides {
		merged[k] = benchkit.Merge(parts[k]...)
	}
	return merged, nil
}

func run(ctx context.Context, cfg config) error {
	prof, profArgs, err := newProfiler(cfg.profileDir)
	if err != nil {
		return err
	}
	rig, err := benchkit.StartRig(ctx, benchkit.RigConfig{Name: "invokebench", Bin: cfg.bin, Args: profArgs, Progress: progress})
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
	bare, err := startBareProxy(a.httpAddr, a.grpcAddr)
	if err != nil {
		return err
	}
	defer bare.Close()
	progress("bare proxy: HTTP %s, gRPC %s, pid %d", bare.httpAddr, bare.grpcAddr, bare.PID())
	proxyMeter := &benchkit.CPUMeter{GatewayPID: bare.PID(), PostmasterPID: rig.Meter.PostmasterPID}
	if cfg.keepAwake {
		sp, err := benchkit.KeepAwake(runtime.NumCPU())
		if err != nil {
			return err
		}
		defer sp.Stop()
		rig.Meter.ExcludePID, proxyMeter.ExcludePID = sp.PID(), sp.PID()
		progress("keeping %d CPUs awake with idle spinners (pid %d)", runtime.NumCPU(), sp.PID())
	}

	admin := adminclient.New(gw.AdminURL(), gw.AdminToken())
	if _, err := admin.CreateApp(ctx, devTenant, httpTarget, "http://"+a.httpAddr); err != nil {
		return fmt.Errorf("registering app %s: %w", httpTarget, err)
	}
	if _, err := admin.CreateApp(ctx, devTenant, grpcTarget, "grpc://"+a.grpcAddr); err != nil {
		return fmt.Errorf("registering app %s: %w", grpcTarget, err)
	}

	// One client (HTTP) or connection (gRPC) per side.
	var clients []*http.Client
	var conns []*grpc.ClientConn
	defer func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
		for _, c := range conns {
			c.Close()
		}
	}()
	httpSide := func(name, label, url string, h http.Header, m *benchkit.CPUMeter) side {
		c := httpClient(cfg.workers)
		clients = append(clients, c)
		return side{"http", name, label, func(int) benchkit.Op { return httpOp(c, url, h) }, m}
	}
	grpcSide := func(name, label, addr string, md metadata.MD, m *benchkit.CPUMeter) (side, error) {
		c, err := grpcConn(addr)
		if err != nil {
			return side{}, err
		}
		conns = append(conns, c)
		return side{"grpc", name, label, func(int) benchkit.Op { return healthOp(c, md) }, m}, nil
	}

	tokenHeader := http.Header{"Dapr-Api-Token": {gw.Token()}}
	md := metadata.Pairs("dapr-app-id", grpcTarget, "dapr-api-token", gw.Token())
	protos := [][]side{{
		httpSide(sideDirect, "HTTP direct, GET /ping", "http://"+a.httpAddr+"/ping", http.Header{}, rig.Meter),
		httpSide(sideProxy, "HTTP bare proxy, GET /ping", "http://"+bare.httpAddr+"/ping", http.Header{}, proxyMeter),
		httpSide(sideGateway, "HTTP gateway, GET /v1.0/invoke/target/method/ping",
			gw.HTTPEndpoint()+"/v1.0/invoke/"+httpTarget+"/method/ping", tokenHeader, rig.Meter),
	}}
	var grpcSides []side
	for _, s := range []struct {
		name, label, addr string
		md                metadata.MD
		meter             *benchkit.CPUMeter
	}{
		{sideDirect, "gRPC direct, Health/Check", a.grpcAddr, nil, rig.Meter},
		{sideProxy, "gRPC bare proxy, Health/Check", bare.grpcAddr, nil, proxyMeter},
		{sideGateway, "gRPC gateway, Health/Check proxied", gw.GRPCAddr(), md, rig.Meter},
	} {
		gs, err := grpcSide(s.name, s.label, s.addr, s.md, s.meter)
		if err != nil {
			return err
		}
		grpcSides = append(grpcSides, gs)
	}
	protos = append(protos, grpcSides)

	for _, p := range protos {
		for _, s := range p {
			progress("warming up %s", s.label)
			if _, err := benchkit.Open(ctx, cfg.rate, warmup, cfg.workers, nil, s.newOp); err != nil {
				return fmt.Errorf("warming up %s: %w", s.label, err)
			}
		}
	}

	res := newResults(cfg, rig.Env)
	step, steps := 0, cfg.rounds*len(protos)
	for r := range cfg.rounds {
		for _, p := range protos {
			// Each round starts with a different side.
			order := make([]side, len(p))
			for k := range p {
				order[k] = p[(k+r)%len(p)]
			}
			var got []benchkit.Sample
			measure := func() (err error) {
				got, err = interleave(ctx, cfg, order)
				return err
			}
			if r == 0 {
				err = prof.during(ctx, p[0].proto+"-gateway", time.Duration(len(p))*cfg.duration, measure)
			} else {
				err = measure()
			}
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, p[0].proto, err)
			}
			step++
			for k, s := range order {
				st := benchkit.Summarize(got[k])
				progress("[%2d/%d] round %d %-50s %6.0f req/s  p50 %s p90 %s p99 %s%s", step, steps, r+1, s.label,
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
