package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/blockgate/blockgate/tenants"
)

const (
	// maxNACKs is how many NACKs Status keeps per node, the latest.
	maxNACKs = 10
	// maxCheckInterval bounds the time between two checks of the SVIDs and
	// the trust bundle, so that a CA rotation reaches the sidecars even
	// when nobody calls RefreshAll.
	maxCheckInterval = 30 * time.Second
	// retryInterval is the wait before rebuilding a tenant whose
	// configuration could not be loaded.
	retryInterval = time.Second
	// stopGrace bounds the graceful stop of the gRPC server.
	stopGrace = 5 * time.Second
)

// Server is the xDS control plane: an ADS server (SotW and delta) over
// go-control-plane's snapshot cache, with one snapshot per connected node.
// Its methods are safe for concurrent use.
type Server struct {
	cfg    Config
	logger *slog.Logger
	b      *builder
	cache  cache.SnapshotCache

	running atomic.Bool
	wake    chan struct{}

	// mu guards the connection state: streams, nodes, dirty and the status
	// fields of each node. It is never held while building.
	mu      sync.Mutex
	streams map[streamKey]*stream
	nodes   map[string]*node
	// dirty holds the tenants to rebuild, each with the time from which
	// to do it (later than now after a failure).
	dirty map[tenants.ID]time.Time

	// buildMu serialises builds and every change to the cache's snapshots,
	// and guards tenants and the build fields of each node. Lock order:
	// buildMu, then mu.
	buildMu sync.Mutex
	tenants map[tenants.ID]*tenantState
}

// tenantState is what the server keeps of a tenant with connected nodes.
type tenantState struct {
	cfg TenantConfig
	// view and sets are built from cfg and the connected sidecars; nil
	// when either changed.
	view *view
	sets map[configKey]*configSet
	// valid is what the builds of the tenant validated, kept across
	// rebuilds.
	valid *validated
}

// configKey says which nodes share a configSet.
type configKey struct {
	app       string
	proxyless bool
	appPort   int
}

// node is a connected node: every stream with its node id.
type node struct {
	Node
	// Guarded by Server.mu.
	streams     int
	gone        bool
	connectedAt time.Time
	credential  string
	version     string
	secrets     string
	certExpiry  time.Time
	acked       map[string]string
	nacks       []NACK
	// Guarded by Server.buildMu.
	config *configSet
	svid   *issued
}

// New returns a server for cfg; Run serves it.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	b, err := newBuilder(cfg)
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger.With("component", "xds")
	return &Server{
		cfg:     cfg,
		logger:  logger,
		b:       b,
		cache:   cache.NewSnapshotCache(false, cache.IDHash{}, cpLogger{logger}),
		wake:    make(chan struct{}, 1),
		streams: map[streamKey]*stream{},
		nodes:   map[string]*node{},
		dirty:   map[tenants.ID]time.Time{},
		tenants: map[tenants.ID]*tenantState{},
	}, nil
}

// Run serves ADS on the configured listener until ctx is done, rebuilding
// the snapshots of refreshed tenants and renewing the SVIDs as it goes.
// It closes the listener and returns nil when ctx ends, or the error that
// stopped the gRPC server. It may be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("xds: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := []grpc.ServerOption{
		grpc.MaxConcurrentStreams(16),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if s.cfg.TLS != nil {
		// No read buffer of gRPC's own: the TLS connection already
		// reads whole records into its buffer, so gRPC's 32 KiB per
		// connection (a third of a node's memory, sitting idle between
		// the rare and small requests of xDS) only copies them again.
		// Without TLS, on a TCP connection, gRPC's default reads into
		// pooled buffers and holds none per connection. Writes already go through a
		// pooled buffer, released after each flush.
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.cfg.TLS)), grpc.ReadBufferSize(0))
	}
	gs := grpc.NewServer(opts...)
	discovery.RegisterAggregatedDiscoveryServiceServer(gs, &adsService{
		s:     s,
		inner: serverv3.NewServer(ctx, s.cache, callbacks{s}),
	})

	var wg sync.WaitGroup
	serveErr := make(chan error, 1)
	wg.Go(func() { serveErr <- gs.Serve(s.cfg.Listener) })
	wg.Go(func() { s.loop(ctx) })
	s.logger.Info("serving xDS", "addr", s.cfg.Listener.Addr().String(), "tls", s.cfg.TLS != nil)

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serving xDS: %w", err)
	}
	// Cancelling ctx ends every stream (go-control-plane watches it), so
	// that the graceful stop does not wait for the nodes to leave.
	cancel()
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(stopGrace):
		gs.Stop()
		<-stopped
	}
	wg.Wait()
	return err
}

// Refresh rebuilds, soon, the snapshots of every node of tenant from the
// Source: the gateway calls it on a registry change of the tenant (apps,
// instances, access policies), after dropping its own caches of them. It
// does not block; refreshes of one tenant coalesce.
func (s *Server) Refresh(tenant tenants.ID) {
	s.mu.Lock()
	s.dirty[tenant] = time.Time{}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// RefreshAll refreshes every tenant with connected nodes, for a change
// that concerns all (a CA rotation, a resync after lost notifications).
func (s *Server) RefreshAll() {
	s.mu.Lock()
	for _, n := range s.nodes {
		s.dirty[n.Tenant] = time.Time{}
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// CloseTokenStreams ends, with Unauthenticated, every stream that the join
// token id opened, and returns how many: the gateway calls it when a
// token is revoked. A node that reconnects with its SVID instead is
// served.
func (s *Server) CloseTokenStreams(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, st := range s.streams {
		if st.cred.tokenID == id {
			st.end(status.Errorf(codes.Unauthenticated, "join token %s was revoked", id))
			n++
		}
	}
	return n
}

// loop rebuilds dirty tenants and renews SVIDs until ctx is done.
func (s *Server) loop(ctx context.Context) {
	timer := time.NewTimer(maxCheckInterval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
		s.safely("rebuilding snapshots", func() { s.rebuildDirty(ctx) })
		s.safely("renewing SVIDs", func() { s.renew(ctx) })
		timer.Reset(s.nextCheck())
	}
}

// safely runs fn, logging a panic instead of dying of it.
func (s *Server) safely(what string, fn func()) {
	defer func() {
		if p := recover(); p != nil {
			s.logger.Error("panic while "+what, "panic", p)
		}
	}()
	fn()
}

// rebuildDirty rebuilds the tenants that Refresh marked, and marks again
// those that failed, to be retried after retryInterval.
func (s *Server) rebuildDirty(ctx context.Context) {
	now := time.Now()
	var due []tenants.ID
	s.mu.Lock()
	for t, at := range s.dirty {
		if !at.After(now) {
			due = append(due, t)
			delete(s.dirty, t)
		}
	}
	s.mu.Unlock()
	for _, t := range due {
		if err := s.rebuildTenant(ctx, t); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.logger.Warn("rebuilding the snapshots of a tenant; keeping the current ones", "tenant", t, "err", err)
			s.mu.Lock()
			if _, again := s.dirty[t]; !again {
				s.dirty[t] = time.Now().Add(retryInterval)
			}
			s.mu.Unlock()
		}
	}
}

// nextCheck is when the loop should look again: the earliest renewal or
// retry, at most maxCheckInterval.
func (s *Server) nextCheck() time.Duration {
	now := s.cfg.Clock()
	next := maxCheckInterval
	s.buildMu.Lock()
	s.mu.Lock()
	for _, at := range s.dirty {
		next = min(next, time.Until(at))
	}
	for _, n := range s.nodes {
		if n.svid != nil {
			next = min(next, n.svid.renewAt.Sub(now))
		}
	}
	s.mu.Unlock()
	s.buildMu.Unlock()
	return max(next, 10*time.Millisecond)
}

// connected lists the nodes; s.mu must be held.
func (s *Server) connected() []*node {
	out := make([]*node, 0, len(s.nodes))
	for _, n := range s.nodes {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *node) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// nodesOf lists the nodes of tenant; s.mu must be held.
func (s *Server) nodesOf(tenant tenants.ID) []*node {
	var out []*node
	for _, n := range s.connected() {
		if n.Tenant == tenant {
			out = append(out, n)
		}
	}
	return out
}

// sidecarApps lists the apps of tenant with an Envoy node connected here,
// or none when Config.Presence makes the Source's list the only one; s.mu
// must be held.
func (s *Server) sidecarApps(tenant tenants.ID) []string {
	if s.cfg.Presence != nil {
		return nil
	}
	var out []string
	for _, n := range s.nodes {
		if n.Tenant == tenant && !n.Proxyless && !slices.Contains(out, n.App) {
			out = append(out, n.App)
		}
	}
	slices.Sort(out)
	return out
}

// tenantState returns the state of tenant, loading its configuration when
// the server has none. s.buildMu must be held.
func (s *Server) tenantState(ctx context.Context, tenant tenants.ID) (*tenantState, error) {
	ts := s.tenants[tenant]
	if ts == nil {
		cfg, err := s.cfg.Source.TenantConfig(ctx, tenant)
		if err != nil {
			return nil, fmt.Errorf("loading the configuration of tenant %s: %w", tenant, err)
		}
		ts = &tenantState{cfg: cfg, valid: newValidated()}
		s.tenants[tenant] = ts
	}
	if ts.view == nil {
		ts.valid.next()
		s.mu.Lock()
		local := s.sidecarApps(tenant)
		s.mu.Unlock()
		ts.view = newView(tenant, s.b.td, ts.cfg, local)
		ts.sets = map[configKey]*configSet{}
	}
	return ts, nil
}

// rebuildTenant reloads tenant's configuration and rebuilds the snapshot
// of each of its nodes. Nodes whose app is gone have their streams ended.
func (s *Server) rebuildTenant(ctx context.Context, tenant tenants.ID) error {
	s.buildMu.Lock()
	defer s.buildMu.Unlock()
	s.mu.Lock()
	nodes := s.nodesOf(tenant)
	s.mu.Unlock()
	if len(nodes) == 0 {
		delete(s.tenants, tenant)
		return nil
	}
	cfg, err := s.cfg.Source.TenantConfig(ctx, tenant)
	if err != nil {
		return fmt.Errorf("loading the configuration of tenant %s: %w", tenant, err)
	}
	valid := newValidated()
	if old := s.tenants[tenant]; old != nil {
		valid = old.valid
	}
	s.tenants[tenant] = &tenantState{cfg: cfg, valid: valid}
	ts, err := s.tenantState(ctx, tenant)
	if err != nil {
		return err
	}
	// Every node is rebuilt: what they did not use is no longer served.
	defer ts.valid.forget()
	var errs []error
	for _, n := range nodes {
		if _, ok := ts.view.apps[n.App]; !ok {
			s.endNode(n, status.Errorf(codes.PermissionDenied, "app %s of tenant %s is no longer registered", n.App, n.Tenant))
			continue
		}
		if err := s.build(ctx, ts, n, false); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n.ID, err))
		}
	}
	return errors.Join(errs...)
}

// endNode ends every stream of n with err.
func (s *Server) endNode(n *node, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.streams {
		if st.node == n {
			st.end(err)
		}
	}
}

// build sets the snapshot of n from ts, reusing the configSet of nodes
// like it and n's SVID unless renew is true or it is due. s.buildMu must
// be held.
func (s *Server) build(ctx context.Context, ts *tenantState, n *node, renew bool) error {
	key := configKey{app: n.App, proxyless: n.Proxyless, appPort: n.AppPort}
	set := ts.sets[key]
	if set == nil {
		b := s.b.fresh()
		if n.Proxyless {
			set = b.proxylessConfig(ts.view, n.App)
		} else {
			set = b.envoyConfig(ts.view, n.App, n.AppPort)
		}
		if b.err != nil {
			return b.err
		}
		if err := set.finish(ts.valid); err != nil {
			return fmt.Errorf("invalid configuration for app %s: %w", n.App, err)
		}
		ts.sets[key] = set
	}
	return s.setSnapshot(ctx, n, set, renew)
}

// setSnapshot puts set and n's secrets in the cache. s.buildMu must be
// held.
func (s *Server) setSnapshot(ctx context.Context, n *node, set *configSet, renew bool) error {
	var secrets []types.Resource
	secretsVersion := ""
	if !n.Proxyless {
		if renew || n.svid == nil || n.svid.due(s.cfg.Clock(), s.cfg.CA.BundlePEM()) {
			svid, err := s.issue(ctx, n)
			if err != nil {
				if n.svid == nil || !s.cfg.Clock().Before(n.svid.notAfter) {
					return err
				}
				s.logger.Warn("renewing a sidecar's SVID; serving the current one", "node", n.ID, "err", err)
			} else {
				n.svid = svid
			}
		}
		secrets, secretsVersion = n.svid.resources, n.svid.version
	}
	// set.finish checked that the snapshot is consistent.
	snap := set.snapshot(secrets, secretsVersion)
	s.mu.Lock()
	gone := n.gone
	if !gone {
		n.config = set
		n.version = set.version
		n.secrets = secretsVersion
		if n.svid != nil {
			n.certExpiry = n.svid.notAfter
		}
	}
	s.mu.Unlock()
	if gone {
		return nil
	}
	return s.cache.SetSnapshot(ctx, n.ID, snap)
}

// renew reissues the SVIDs that are due (two thirds of their life, or a
// new trust bundle) and pushes them.
func (s *Server) renew(ctx context.Context) {
	s.buildMu.Lock()
	defer s.buildMu.Unlock()
	s.mu.Lock()
	nodes := s.connected()
	s.mu.Unlock()
	now := s.cfg.Clock()
	bundle := s.cfg.CA.BundlePEM()
	for _, n := range nodes {
		if n.Proxyless || n.config == nil || n.svid == nil || !n.svid.due(now, bundle) {
			continue
		}
		if err := s.setSnapshot(ctx, n, n.config, true); err != nil {
			s.logger.Warn("renewing a sidecar's SVID", "node", n.ID, "err", err)
		}
	}
}

// attach binds a stream to its node at its first request, and builds the
// node's snapshot when it is the node's first stream.
func (s *Server) attach(st *stream, nd Node) error {
	s.mu.Lock()
	n := s.nodes[nd.ID]
	wasSidecar := n != nil && !n.Proxyless
	changed := false
	if n == nil {
		n = &node{Node: nd, connectedAt: s.cfg.Clock(), acked: map[string]string{}}
		s.nodes[nd.ID] = n
		changed = true
	} else if n.Node != nd {
		// A node restarted with other options while its old stream
		// lingers: the newest wins.
		n.Node = nd
		changed = true
	}
	n.streams++
	n.credential = st.cred.String()
	st.node = n
	if isSidecar := !nd.Proxyless; isSidecar != wasSidecar {
		s.presence(nd, isSidecar)
	}
	firstSidecar := s.cfg.Presence == nil && changed && !nd.Proxyless && sidecarCount(s.nodes, nd.Tenant, nd.App) == 1
	s.mu.Unlock()

	s.buildMu.Lock()
	err := s.attachLocked(st.ctx, n, changed, firstSidecar)
	s.buildMu.Unlock()
	if err != nil {
		return err
	}
	if firstSidecar {
		// The other nodes of the tenant may now call this app directly.
		s.Refresh(nd.Tenant)
	}
	return nil
}

func (s *Server) attachLocked(ctx context.Context, n *node, changed, firstSidecar bool) error {
	if n.config != nil && !changed {
		return nil
	}
	if ts := s.tenants[n.Tenant]; ts != nil && firstSidecar {
		ts.view = nil
	}
	ts, err := s.tenantState(ctx, n.Tenant)
	if err != nil {
		return status.Errorf(codes.Unavailable, "%v", err)
	}
	if _, ok := ts.view.apps[n.App]; !ok {
		return status.Errorf(codes.PermissionDenied, "app %s is not registered in tenant %s", n.App, n.Tenant)
	}
	if err := s.build(ctx, ts, n, false); err != nil {
		s.logger.Error("building a node's snapshot", "node", n.ID, "err", err)
		return status.Errorf(codes.Internal, "building the configuration of node %s failed", n.ID)
	}
	return nil
}

// presence tells Config.Presence, if any, that the Envoy node nd came or
// went. s.mu must be held: it keeps the calls in the order of the events.
func (s *Server) presence(nd Node, connected bool) {
	if s.cfg.Presence != nil {
		s.cfg.Presence.SetSidecar(nd.Tenant, nd.App, nd.Instance, connected)
	}
}

func sidecarCount(nodes map[string]*node, tenant tenants.ID, app string) int {
	c := 0
	for _, n := range nodes {
		if n.Tenant == tenant && n.App == app && !n.Proxyless {
			c++
		}
	}
	return c
}

// detach forgets a stream, and its node with its snapshot when it was the
// node's last.
func (s *Server) detach(key streamKey) {
	s.mu.Lock()
	st := s.streams[key]
	delete(s.streams, key)
	if st == nil || st.node == nil {
		s.mu.Unlock()
		return
	}
	n := st.node
	n.streams--
	if n.streams > 0 {
		s.mu.Unlock()
		return
	}
	n.gone = true
	delete(s.nodes, n.ID)
	if !n.Proxyless {
		s.presence(n.Node, false)
	}
	lastSidecar := s.cfg.Presence == nil && !n.Proxyless && sidecarCount(s.nodes, n.Tenant, n.App) == 0
	s.mu.Unlock()

	s.buildMu.Lock()
	s.mu.Lock()
	_, back := s.nodes[n.ID]
	empty := len(s.nodesOf(n.Tenant)) == 0
	s.mu.Unlock()
	if !back {
		s.cache.ClearSnapshot(n.ID)
	}
	switch ts := s.tenants[n.Tenant]; {
	case empty:
		delete(s.tenants, n.Tenant)
	case lastSidecar && ts != nil:
		ts.view = nil
	}
	s.buildMu.Unlock()
	if lastSidecar && !empty {
		s.Refresh(n.Tenant)
	}
}

// NodeStatus is a connected node as Status reports it.
type NodeStatus struct {
	ID        string     `json:"id"`
	Tenant    tenants.ID `json:"tenant"`
	App       string     `json:"appId"`
	Instance  string     `json:"instance"`
	Proxyless bool       `json:"proxyless"`
	// Credential is how the node authenticated: "join token <id>" or
	// "svid".
	Credential  string    `json:"credential"`
	Streams     int       `json:"streams"`
	ConnectedAt time.Time `json:"connectedAt"`
	// Version is the configuration version served to the node; the same
	// configuration has the same version on every gateway node.
	Version string `json:"version"`
	// SecretsVersion is the version of the node's SDS secrets, and
	// CertificateExpiresAt the end of its SVID; empty for proxyless nodes.
	SecretsVersion       string     `json:"secretsVersion,omitempty"`
	CertificateExpiresAt *time.Time `json:"certificateExpiresAt,omitempty"`
	// Acked is the version the node last acknowledged, by resource type
	// (LDS, RDS, CDS, EDS, SDS).
	Acked map[string]string `json:"acked"`
	// NACKs are the node's latest rejections, oldest first.
	NACKs []NACK `json:"nacks,omitempty"`
}

// NACK is a response a node rejected.
type NACK struct {
	Type    string    `json:"type"`
	Version string    `json:"version"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
}

// Status lists the connected nodes by id. The result belongs to the
// caller.
func (s *Server) Status() []NodeStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]NodeStatus, 0, len(s.nodes))
	for _, n := range s.connected() {
		ns := NodeStatus{
			ID: n.ID, Tenant: n.Tenant, App: n.App, Instance: n.Instance, Proxyless: n.Proxyless,
			Credential: n.credential, Streams: n.streams, ConnectedAt: n.connectedAt,
			Version: n.version, SecretsVersion: n.secrets,
			Acked: make(map[string]string, len(n.acked)),
			NACKs: slices.Clone(n.nacks),
		}
		for k, v := range n.acked {
			ns.Acked[k] = v
		}
		if !n.certExpiry.IsZero() {
			t := n.certExpiry
			ns.CertificateExpiresAt = &t
		}
		out = append(out, ns)
	}
	return out
}

// callbacks connect go-control-plane's server to the Server.
type callbacks struct{ s *Server }

var _ serverv3.Callbacks = callbacks{}

func (c callbacks) OnStreamOpen(ctx context.Context, id int64, _ string) error {
	return c.s.open(ctx, streamKey{id: id})
}

func (c callbacks) OnStreamClosed(id int64, _ *core.Node) { c.s.detach(streamKey{id: id}) }

// OnStreamRequest checks the request's node. A NACK is then made to read
// as if the node had the version it rejected: go-control-plane would
// otherwise answer it at once with that same version (the node's last
// accepted one differs), which the node rejects again, in a loop. The
// node keeps its last good configuration until the next version.
func (c callbacks) OnStreamRequest(id int64, req *discovery.DiscoveryRequest) error {
	rejected, err := c.s.request(streamKey{id: id}, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetVersionInfo(), req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil)
	if err == nil && rejected != "" {
		req.VersionInfo = rejected
	}
	return err
}

func (c callbacks) OnStreamResponse(_ context.Context, id int64, _ *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
	c.s.sent(streamKey{id: id}, resp.GetTypeUrl(), resp.GetNonce(), resp.GetVersionInfo())
}

func (c callbacks) OnDeltaStreamOpen(ctx context.Context, id int64, _ string) error {
	return c.s.open(ctx, streamKey{delta: true, id: id})
}

func (c callbacks) OnDeltaStreamClosed(id int64, _ *core.Node) {
	c.s.detach(streamKey{delta: true, id: id})
}

// OnStreamDeltaRequest checks the request's node. Delta needs no help
// with NACKs: it sends only resources whose version changed.
func (c callbacks) OnStreamDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	_, err := c.s.request(streamKey{delta: true, id: id}, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), "", req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil)
	return err
}

func (c callbacks) OnStreamDeltaResponse(id int64, _ *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
	c.s.sent(streamKey{delta: true, id: id}, resp.GetTypeUrl(), resp.GetNonce(), resp.GetSystemVersionInfo())
}

// OnFetchRequest refuses REST: only ADS is registered, so this is not
// reached.
func (c callbacks) OnFetchRequest(context.Context, *discovery.DiscoveryRequest) error {
	return status.Error(codes.Unimplemented, "xDS over REST is not served")
}

func (c callbacks) OnFetchResponse(*discovery.DiscoveryRequest, *discovery.DiscoveryResponse) {}

// request checks the node of a request against the stream's credential
// (and binds the stream at its first request), and records ACKs and
// NACKs; for a NACK of the last response it returns the version
// rejected. An error ends the stream.
func (s *Server) request(key streamKey, cn *core.Node, typeURL, nonce, version, errMsg string, nack bool) (string, error) {
	s.mu.Lock()
	st := s.streams[key]
	var n *node
	if st != nil {
		n = st.node
	}
	s.mu.Unlock()
	if st == nil {
		return "", status.Error(codes.Unauthenticated, "the stream is not authenticated")
	}
	if n == nil {
		if cn.GetId() == "" {
			return "", status.Error(codes.InvalidArgument, "the first request of a stream must name the node: set node.id to <tenant>/<app-id>/<instance>")
		}
		nd, err := ParseNode(cn)
		if err != nil {
			return "", status.Error(codes.InvalidArgument, err.Error())
		}
		if nd.Tenant != st.cred.tenant || nd.App != st.cred.app {
			s.logger.Warn("refused an xDS node that its credential does not cover", "node", nd.ID, "credential", st.cred.String(),
				"credential_tenant", st.cred.tenant, "credential_app", st.cred.app)
			return "", status.Errorf(codes.PermissionDenied, "node %s is not of the app the credential is for", nd.ID)
		}
		if err := s.attach(st, nd); err != nil {
			return "", err
		}
		s.logger.Info("xDS node connected", "node", nd.ID, "proxyless", nd.Proxyless, "credential", st.cred.String())
		return "", nil
	}
	if cn.GetId() != "" && cn.GetId() != n.ID {
		return "", status.Errorf(codes.PermissionDenied, "the stream of node %s cannot speak for node %s", n.ID, cn.GetId())
	}
	if nonce == "" {
		return "", nil
	}
	s.mu.Lock()
	last := st.sent[typeURL]
	rejected := ""
	if nack {
		if last.nonce == nonce {
			rejected = last.version
		}
		n.nacks = append(n.nacks, NACK{Type: typeNameOf(typeURL), Version: rejected, Error: errMsg, At: s.cfg.Clock()})
		if len(n.nacks) > maxNACKs {
			n.nacks = slices.Delete(n.nacks, 0, len(n.nacks)-maxNACKs)
		}
	} else if version != "" {
		n.acked[typeNameOf(typeURL)] = version
	} else if last.nonce == nonce {
		n.acked[typeNameOf(typeURL)] = last.version
	}
	s.mu.Unlock()
	if nack {
		s.logger.Warn("xDS node rejected a configuration", "node", n.ID, "type", typeNameOf(typeURL), "version", rejected, "err", errMsg)
	}
	return rejected, nil
}

// sent records the last response of each type on a stream, to tell which
// version a later ACK or NACK is about.
func (s *Server) sent(key streamKey, typeURL, nonce, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[key]; st != nil {
		st.sent[typeURL] = sentResponse{nonce: nonce, version: version}
	}
}

// cpLogger adapts slog to go-control-plane's logger. Its Info is about
// routine protocol events, so it logs at debug level.
type cpLogger struct{ l *slog.Logger }

func (c cpLogger) log(level slog.Level, format string, args []any) {
	if c.l.Enabled(context.Background(), level) {
		c.l.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (c cpLogger) Debugf(format string, args ...any) { c.log(slog.LevelDebug, format, args) }
func (c cpLogger) Infof(format string, args ...any)  { c.log(slog.LevelDebug, format, args) }
func (c cpLogger) Warnf(format string, args ...any)  { c.log(slog.LevelWarn, format, args) }
func (c cpLogger) Errorf(format string, args ...any) { c.log(slog.LevelError, format, args) }
