package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/auth/authca/authcatest"
	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
	"github.com/blockgate/blockgate/xds"
)

// childArg, as the only argument, makes the command the control plane
// child instead of the benchmark.
const childArg = "-xdsbench-control-plane"

// trustDomain is the CA's.
var trustDomain = spiffeid.RequireTrustDomainFromString("xdsbench.test")

// The child's commands (request.Op).
const (
	opStart  = "start"  // Apps: run the server; answers Addr and BundlePEM
	opMem    = "mem"    // answers Mem and Nodes
	opNodes  = "nodes"  // answers Nodes and Goroutines, without a GC
	opChange = "change" // adds an instance to the changed app and calls Refresh; answers RefreshAt and Endpoints
)

// request is a command to the child, one JSON object a line.
type request struct {
	Op   string `json:"op"`
	Apps int    `json:"apps,omitempty"`
}

// reply is the child's answer to a request.
type reply struct {
	Err       string    `json:"err,omitempty"`
	Addr      string    `json:"addr,omitempty"`
	BundlePEM []byte    `json:"bundle_pem,omitempty"`
	Mem       *memStats `json:"mem,omitempty"`
	// Nodes is how many nodes the server lists as connected.
	Nodes int `json:"nodes"`
	// Goroutines is the child's number of goroutines.
	Goroutines int `json:"goroutines,omitempty"`
	// RefreshAt is when Refresh was called, in Unix nanoseconds.
	RefreshAt int64 `json:"refresh_at,omitempty"`
	// Endpoints is how many endpoints the changed app has now.
	Endpoints int `json:"endpoints,omitempty"`
}

// memStats is the control plane's memory at one moment.
type memStats struct {
	// HeapAlloc is the live heap after a GC, in bytes.
	HeapAlloc uint64 `json:"heap_alloc"`
	// HeapSys is the heap's memory obtained from the OS, Sys all of it.
	HeapSys uint64 `json:"heap_sys"`
	Sys     uint64 `json:"sys"`
	// RSS and PeakRSS are VmRSS and VmHWM, in bytes, after the free memory
	// went back to the OS; 0 where /proc cannot say.
	RSS        uint64 `json:"rss"`
	PeakRSS    uint64 `json:"peak_rss"`
	Goroutines int    `json:"goroutines"`
}

// childMain is the control plane child's main: it serves the commands on
// stdin until stdin closes. Interrupts are left to the benchmark, which
// stops the child by closing its stdin.
func childMain() int {
	signal.Ignore(os.Interrupt)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("process", "xdsbench control plane")
	if err := serveControl(context.Background(), os.Stdin, os.Stdout, logger); err != nil {
		fmt.Fprintln(os.Stderr, "xdsbench control plane:", err)
		return 1
	}
	return 0
}

// serveControl runs the control plane as in's commands say, answering on
// out, until in ends. The first command must be opStart.
func serveControl(ctx context.Context, in io.Reader, out io.Writer, logger *slog.Logger) error {
	dec := json.NewDecoder(bufio.NewReader(in))
	enc := json.NewEncoder(out)
	var start request
	if err := dec.Decode(&start); err != nil {
		return fmt.Errorf("reading the start command: %w", err)
	}
	if start.Op != opStart || start.Apps < 1 || start.Apps > maxApps {
		return fmt.Errorf("the first command must be %q with 1 to %d apps, not %+v", opStart, maxApps, start)
	}
	cp, err := startServer(ctx, start.Apps, logger)
	if err != nil {
		_ = enc.Encode(reply{Err: err.Error()})
		return err
	}
	defer cp.stop()
	if err := enc.Encode(reply{Addr: cp.addr, BundlePEM: cp.ca.BundlePEM()}); err != nil {
		return err
	}
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return cp.stop()
			}
			return fmt.Errorf("reading a command: %w", err)
		}
		var rep reply
		switch req.Op {
		case opMem:
			rep.Nodes = len(cp.srv.Status())
			m := readMem()
			rep.Mem = &m
		case opNodes:
			rep.Nodes, rep.Goroutines = len(cp.srv.Status()), runtime.NumGoroutine()
		case opChange:
			endpoints, err := cp.source.change()
			if err != nil {
				rep.Err = err.Error()
				break
			}
			rep.RefreshAt = time.Now().UnixNano()
			cp.srv.Refresh(benchTenant)
			rep.Endpoints = endpoints
		default:
			rep.Err = fmt.Sprintf("unknown command %q", req.Op)
		}
		if err := enc.Encode(rep); err != nil {
			return err
		}
	}
}

// controlPlaneServer is the running xds.Server of the child.
type controlPlaneServer struct {
	srv    *xds.Server
	ca     *authca.CA
	source *source
	addr   string
	stop   func() error
}

// startServer runs an xds.Server as the gateway makes it, for the bench
// tenant of apps apps.
func startServer(ctx context.Context, apps int, logger *slog.Logger) (*controlPlaneServer, error) {
	master := make([]byte, 32)
	if _, err := rand.Read(master); err != nil {
		return nil, err
	}
	ca, err := authca.New(authca.Config{TrustDomain: trustDomain, Store: authcatest.NewMemStore(), MasterKey: master, Logger: logger})
	if err != nil {
		return nil, err
	}
	if err := ca.Load(ctx); err != nil {
		return nil, fmt.Errorf("loading the CA: %w", err)
	}
	pres := newPresence()
	src, err := newSource(apps, trustDomain.Name(), pres)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv, err := xds.New(xds.Config{
		Listener:    lis,
		TLS:         ca.ServerTLSConfig([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}),
		CA:          ca,
		Source:      src,
		Presence:    pres,
		JoinTokens:  newTokens(apps),
		GatewayHTTP: "gateway.xdsbench.test:3500",
		GatewayGRPC: "gateway.xdsbench.test:50001",
		Logger:      logger,
	})
	if err != nil {
		lis.Close()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	presenceDone := make(chan struct{})
	go func() {
		defer close(presenceDone)
		pres.run(runCtx, srv.Refresh)
	}()
	var once sync.Once
	var runErr error
	return &controlPlaneServer{
		srv: srv, ca: ca, source: src, addr: lis.Addr().String(),
		stop: func() error {
			once.Do(func() {
				cancel()
				runErr = <-done
				<-presenceDone
			})
			return runErr
		},
	}, nil
}

// readMem collects the garbage, returns the free memory to the OS, and
// reads the memory statistics.
func readMem() memStats {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := memStats{HeapAlloc: ms.HeapAlloc, HeapSys: ms.HeapSys, Sys: ms.Sys, Goroutines: runtime.NumGoroutine()}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		m.RSS, m.PeakRSS = parseStatus(b)
	}
	return m
}

// source is the tenant's configuration, which change alters, with the
// apps that run sidecars from the presence. It is safe for concurrent use.
type source struct {
	apps     int
	td       string
	presence *presence
	mu       sync.Mutex
	// added counts the changes; cfg is never changed once returned.
	added int
	cfg   xds.TenantConfig
}

var _ xds.Source = (*source)(nil)

func newSource(apps int, td string, p *presence) (*source, error) {
	cfg, err := tenantConfig(apps, 0, td)
	if err != nil {
		return nil, err
	}
	return &source{apps: apps, td: td, presence: p, cfg: cfg}, nil
}

// TenantConfig implements xds.Source.
func (s *source) TenantConfig(_ context.Context, tenant tenants.ID) (xds.TenantConfig, error) {
	if tenant != benchTenant {
		return xds.TenantConfig{}, fmt.Errorf("no tenant %s", tenant)
	}
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	cfg.Sidecars = s.presence.sidecars()
	return cfg, nil
}

// change adds an instance to the changed app and returns its endpoints.
func (s *source) change() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.added >= maxChanges {
		return 0, fmt.Errorf("no more than %d changes", maxChanges)
	}
	cfg, err := tenantConfig(s.apps, s.added+1, s.td)
	if err != nil {
		return 0, err
	}
	s.added++
	s.cfg = cfg
	return endpointsAfter(s.added), nil
}

// tokens is a join token verifier over the apps' tokens, read-only once
// made: the registry keeps their hashes in Postgres instead.
type tokens map[string]tenantspg.JoinToken

var _ xds.TokenVerifier = tokens(nil)

func newTokens(apps int) tokens {
	now := time.Now()
	t := make(tokens, apps)
	for i := range apps {
		t[joinToken(i)] = tenantspg.JoinToken{
			ID: fmt.Sprintf("jt_%d", i), Tenant: benchTenant, AppID: appName(i),
			IssuedAt: now, ExpiresAt: now.Add(24 * time.Hour),
		}
	}
	return t
}

// VerifyJoinToken implements xds.TokenVerifier.
func (t tokens) VerifyJoinToken(_ context.Context, text string) (tenantspg.JoinToken, error) {
	tok, ok := t[text]
	switch {
	case !ok:
		return tenantspg.JoinToken{}, tenantspg.ErrInvalidJoinToken
	case !time.Now().Before(tok.ExpiresAt):
		return tok, fmt.Errorf("%w: expired", tenantspg.ErrInvalidJoinToken)
	}
	return tok, nil
}

// presenceDebounce is how long the presence waits after a change of the
// apps with sidecars before it refreshes the tenant, for the changes that
// come meanwhile: gatewaysidecars' default debounce.
const presenceDebounce = 100 * time.Millisecond

// presence is the gateway's view of which apps run sidecars
// (gateway/gatewaysidecars) without its JetStream bucket: the server tells
// it of every Envoy node that comes and goes (xds.Presence), the Source
// takes the apps with sidecars from it, and when that list changes it
// refreshes the tenant, once for the changes within presenceDebounce of
// the first. The gateway sees its own sidecars only once their keys come
// back from the bucket, a round trip later; that is left out. Its methods
// are safe for concurrent use.
type presence struct {
	mu   sync.Mutex
	apps map[string]int // Envoy nodes connected, by app
	wake chan struct{}
}

var _ xds.Presence = (*presence)(nil)

func newPresence() *presence {
	return &presence{apps: map[string]int{}, wake: make(chan struct{}, 1)}
}

// SetSidecar implements xds.Presence. It does not block.
func (p *presence) SetSidecar(_ tenants.ID, app, _ string, connected bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	before := p.apps[app] > 0
	if connected {
		p.apps[app]++
	} else if p.apps[app]--; p.apps[app] <= 0 {
		delete(p.apps, app)
	}
	if before != (p.apps[app] > 0) {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// sidecars lists the apps with sidecars, sorted; the slice is the
// caller's.
func (p *presence) sidecars() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.apps))
	for app := range p.apps {
		out = append(out, app)
	}
	slices.Sort(out)
	return out
}

// run refreshes the tenant after each debounced change until ctx ends.
func (p *presence) run(ctx context.Context, refresh func(tenants.ID)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(presenceDebounce):
		}
		refresh(benchTenant)
	}
}
