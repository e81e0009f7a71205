package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/blockgate/blockgate/bench/benchkit"
)

const (
	// quietConnect and quietChange are how long no response must come for
	// the connect phase and a change to count as over.
	quietConnect = time.Second
	quietChange  = 500 * time.Millisecond
	// leaveWait bounds the wait for the server to forget the nodes.
	leaveWait = 30 * time.Second
)

func run(ctx context.Context, cfg config) error {
	res := newResults(cfg)
	progress("starting the control plane (a child process) for %d apps", cfg.apps)
	cp, err := launchControlPlane(cfg.apps)
	if err != nil {
		return err
	}
	defer cp.Close()
	var meter *benchkit.CPUMeter
	if cp.pid != 0 {
		meter = &benchkit.CPUMeter{GatewayPID: cp.pid}
	}
	if err := measure(ctx, cfg, cp, meter, res); err != nil {
		return err
	}
	if err := cp.Close(); err != nil {
		return fmt.Errorf("stopping the control plane: %w", err)
	}
	res.LoadAfter = loadAvg()
	res.print(os.Stdout)
	if cfg.jsonPath != "" {
		return benchkit.WriteJSON(cfg.jsonPath, res)
	}
	return nil
}

// measure runs the phases against cp and fills res.
func measure(ctx context.Context, cfg config, cp *controlPlane, meter *benchkit.CPUMeter, res *results) error {
	var err error
	if res.Memory.Before, _, err = cp.mem(); err != nil {
		return err
	}
	conns, err := dial(cp.addr, cp.bundle, cfg.conns())
	if err != nil {
		return err
	}
	closeConns := sync.OnceFunc(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	defer closeConns()

	// connect
	tr := newTracker(cfg.nodes)
	nodeCtx, stopNodes := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopNodes(); wg.Wait() }()
	progress("connecting %d nodes over %d connections", cfg.nodes, len(conns))
	cpu0 := meter.Sample()
	start := time.Now()
	for k, spec := range nodeSpecs(cfg.nodes, cfg.apps) {
		n := &simNode{k: k, spec: spec, tr: tr}
		conn := conns[k/cfg.streamsPerConn]
		wg.Go(func() {
			// run ends only with an error; once the nodes are told to
			// leave, that is their leaving.
			if err := n.run(nodeCtx, conn); nodeCtx.Err() == nil {
				tr.fail(fmt.Errorf("node %s: %w", spec.id, err))
			}
		})
	}
	if err := tr.waitConfigured(ctx, cfg.timeout); err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	configured := time.Now()
	progress("every node has its first full configuration after %s; waiting for a quiet second", time.Since(start).Round(time.Millisecond))
	settled, err := tr.waitQuiet(ctx, quietConnect, cfg.timeout)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	cpu1 := meter.Sample()
	responses, _ := tr.counts()
	res.Connect = summarizeConnect(tr, start, configured, settled, responses, cfg.nodes)
	if u, ok := cpu0.Until(cpu1); ok {
		res.Connect.CPU = cpuOf(u)
	}
	progress("connect: all configured in %s, p50 %s p99 %s per node, settled after %s",
		benchkit.Ms(res.Connect.AllConfiguredMs), benchkit.Ms(res.Connect.PerNode.P50Ms), benchkit.Ms(res.Connect.PerNode.P99Ms),
		benchkit.Ms(res.Connect.SettledMs))

	var nodes int
	if res.Memory.Connected, nodes, err = cp.mem(); err != nil {
		return err
	}
	if nodes != cfg.nodes {
		return fmt.Errorf("the control plane lists %d connected nodes, not %d", nodes, cfg.nodes)
	}

	// fan-out
	for c := 1; c <= cfg.changes; c++ {
		ch, err := fanOut(ctx, cfg, cp, tr, meter, c)
		if err != nil {
			return fmt.Errorf("change %d: %w", c, err)
		}
		progress("[%d/%d] change: every node acked in %s; p50 %s p90 %s p99 %s%s", c, cfg.changes,
			benchkit.Ms(ch.MaxMs), benchkit.Ms(ch.P50Ms), benchkit.Ms(ch.P90Ms), benchkit.Ms(ch.P99Ms), cpuNote(ch.CPU))
		res.Changes = append(res.Changes, ch)
	}

	// The nodes leave, and close their connections.
	stopNodes()
	wg.Wait()
	closeConns()
	// The server forgets a node as soon as its stream ends, and then
	// rebuilds the tenant as each app's last sidecar leaves, while the
	// connections' goroutines wind down: wait for that too.
	deadline := time.Now().Add(leaveWait)
	for {
		n, goroutines, err := cp.nodes()
		if err != nil {
			return err
		}
		if n == 0 && goroutines <= res.Memory.Before.Goroutines {
			break
		}
		if time.Now().After(deadline) {
			if n > 0 {
				return fmt.Errorf("the control plane still lists %d nodes %s after they left", n, leaveWait)
			}
			progress("the control plane still has %d goroutines (%d before the nodes came) %s after they left",
				goroutines, res.Memory.Before.Goroutines, leaveWait)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if res.Memory.After, _, err = cp.mem(); err != nil {
		return err
	}
	res.finish()
	return nil
}

// fanOut makes change c and waits until every node has ACKed it.
func fanOut(ctx context.Context, cfg config, cp *controlPlane, tr *tracker, meter *benchkit.CPUMeter, c int) (changeResult, error) {
	want := endpointsAfter(c)
	before, _ := tr.counts()
	tr.beginChange(want)
	cpu0 := meter.Sample()
	refreshAt, endpoints, err := cp.change()
	if err != nil {
		return changeResult{}, err
	}
	if endpoints != want {
		return changeResult{}, fmt.Errorf("the changed app has %d endpoints, not %d", endpoints, want)
	}
	if err := tr.waitChanged(ctx, cfg.timeout); err != nil {
		return changeResult{}, err
	}
	cpu1 := meter.Sample()
	// Other responses that the change brings, if any, come meanwhile.
	if _, err := tr.waitQuiet(ctx, quietChange, cfg.timeout); err != nil {
		return changeResult{}, err
	}
	after, _ := tr.counts()
	ch := summarizeChange(c, want, refreshAt, tr.changeAcks(), before, after, cfg.nodes)
	if u, ok := cpu0.Until(cpu1); ok {
		ch.CPU = cpuOf(u)
	}
	return ch, nil
}

// dial makes n connections to the control plane at addr over TLS, trusting
// bundle, as the sidecars' bootstrap does (ServerName localhost, the name
// the child's certificate carries).
func dial(addr string, bundle []byte, n int) ([]*grpc.ClientConn, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		return nil, errors.New("the control plane's trust bundle has no certificate")
	}
	creds := credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	conns := make([]*grpc.ClientConn, 0, n)
	for range n {
		c, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}
