package gatewaysidecars

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/auth/authca/authcatest"
	"github.com/blockgate/blockgate/gateway/gatewaynats"
	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
	"github.com/blockgate/blockgate/xds"
)

const testTTL = 1500 * time.Millisecond

// checkLeaks fails the test if goroutines it started outlive it and its
// cleanups.
func checkLeaks(t *testing.T) {
	t.Helper()
	opts := []goleak.Option{goleak.IgnoreCurrent()}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startNATS runs a lone JetStream server until the test ends.
func startNATS(t *testing.T) *gatewaynats.Server {
	t.Helper()
	srv, err := gatewaynats.Start(t.Context(), gatewaynats.Config{StoreDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

func connectJS(t *testing.T, srv *gatewaynats.Server) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func newCA(t *testing.T) *authca.CA {
	t.Helper()
	master := make([]byte, 32)
	if _, err := rand.Read(master); err != nil {
		t.Fatal(err)
	}
	ca, err := authca.New(authca.Config{TrustDomain: spiffeid.RequireTrustDomainFromString("blockgate.test"),
		Store: authcatest.NewMemStore(), MasterKey: master})
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	return ca
}

// tokens are the join tokens of the test: "bgjoin_<app>" for each app of
// tenant acme.
type tokens struct{}

func (tokens) VerifyJoinToken(_ context.Context, text string) (tenantspg.JoinToken, error) {
	app, ok := cutPrefix(text, tenantspg.JoinTokenPrefix)
	if !ok {
		return tenantspg.JoinToken{}, tenantspg.ErrInvalidJoinToken
	}
	return tenantspg.JoinToken{ID: "jt_" + app, Tenant: "acme", AppID: app, ExpiresAt: time.Now().Add(time.Hour)}, nil
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || s[:len(prefix)] != prefix {
		return "", false
	}
	return s[len(prefix):], true
}

// acme is the registry's view of the test tenant: orders and checkout.eu,
// both with instances, and no access policy.
var acme = xds.SourceFunc(func(_ context.Context, tenant tenants.ID) (xds.TenantConfig, error) {
	if tenant != "acme" {
		return xds.TenantConfig{}, errors.New("no such tenant")
	}
	return xds.TenantConfig{Apps: []tenants.App{
		{Tenant: "acme", ID: "orders", Endpoint: "http://10.0.0.1:8080"},
		{Tenant: "acme", ID: "checkout.eu", Endpoint: "http://10.0.0.3:8080", Instances: []tenants.Instance{{ID: "c-2", Endpoint: "http://10.0.0.4:8080"}}},
	}}, nil
})

// gateway is one gateway node's xDS server with its Presence, as the
// gateway wires them.
type gateway struct {
	name     string
	presence *Presence
	xds      *xds.Server
	addr     string
}

func startGateway(t *testing.T, srv *gatewaynats.Server, ca *authca.CA, name string) *gateway {
	t.Helper()
	g := &gateway{name: name}
	var err error
	g.presence, err = New(connectJS(t, srv), Config{
		Node: name, TTL: testTTL, Logger: testLogger(t).With("node", name),
		OnChange: func(tenant tenants.ID) { g.xds.Refresh(tenant) },
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr = lis.Addr().String()
	g.xds, err = xds.New(xds.Config{
		Listener: lis, CA: ca, Source: g.presence.Source(acme), Presence: g.presence, JoinTokens: tokens{},
		GatewayHTTP: "gateway.blockgate.test:3500", GatewayGRPC: "gateway.blockgate.test:50001",
		Logger: testLogger(t).With("node", name),
	})
	if err != nil {
		t.Fatal(err)
	}
	// As in the gateway: the xDS server stops first, then presence, which
	// deletes what is left of this node's keys.
	ctx, cancel := context.WithCancel(context.Background())
	xdsCtx, stopXDS := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := g.presence.Run(ctx); err != nil {
			t.Errorf("%s: presence: %v", name, err)
		}
	})
	xdsDone := make(chan struct{})
	wg.Go(func() {
		defer close(xdsDone)
		if err := g.xds.Run(xdsCtx); err != nil {
			t.Errorf("%s: xds: %v", name, err)
		}
	})
	t.Cleanup(func() {
		stopXDS()
		<-xdsDone
		cancel()
		wg.Wait()
	})
	return g
}

// nodeVersion is the configuration version g serves node id, "" when it
// is not connected.
func (g *gateway) nodeVersion(id string) string {
	for _, s := range g.xds.Status() {
		if s.ID == id {
			return s.Version
		}
	}
	return ""
}

// sidecar is an Envoy node's ADS stream asking for clusters, acknowledging
// every response, and recording the last.
type sidecar struct {
	id     string
	cancel func()
	done   chan struct{}

	mu       sync.Mutex
	clusters []string
	version  string
}

// connect opens the stream of node id (tenant acme) to g.
func connect(t *testing.T, g *gateway, id string) *sidecar {
	t.Helper()
	_, app, _, err := xds.ParseNodeID(id)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(g.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tenantspg.JoinTokenPrefix+app)
	st, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sc := &sidecar{id: id, done: make(chan struct{})}
	sc.cancel = func() {
		cancel()
		<-sc.done
		conn.Close()
	}
	t.Cleanup(sc.cancel)
	if err := st.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: id, UserAgentName: "envoy"}, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(sc.done)
		for {
			resp, err := st.Recv()
			if err != nil {
				return
			}
			var names []string
			for _, r := range resp.GetResources() {
				c := &clusterv3.Cluster{}
				if err := r.UnmarshalTo(c); err != nil {
					t.Errorf("%s: %v", id, err)
					return
				}
				names = append(names, c.GetName())
			}
			slices.Sort(names)
			sc.mu.Lock()
			sc.clusters, sc.version = names, resp.GetVersionInfo()
			sc.mu.Unlock()
			if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
				return
			}
		}
	}()
	return sc
}

func (sc *sidecar) state() ([]string, string) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.clusters, sc.version
}

// The clusters of an orders sidecar: orders runs sidecars (its own), so
// it calls itself directly; checkout.eu directly only while it has one.
var (
	viaGateway = []string{"gateway|grpc", "gateway|http", "outbound|orders"}
	direct     = []string{"gateway|grpc", "gateway|http", "outbound|checkout.eu", "outbound|orders"}
)

// waitSame waits until the same node's sidecars on gateways a and b have
// the clusters want, with the same versions of CDS and of the whole
// configuration on both, and returns how long it took.
func waitSame(t *testing.T, a, b *gateway, sa, sb *sidecar, want []string) time.Duration {
	t.Helper()
	start := time.Now()
	for deadline := start.Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		ca, va := sa.state()
		cb, vb := sb.state()
		na, nb := a.nodeVersion(sa.id), b.nodeVersion(sb.id)
		if slices.Equal(ca, want) && slices.Equal(cb, want) && va == vb && na != "" && na == nb {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("want clusters %v on both gateways with the same versions; %s has %v (CDS %s, config %s), %s has %v (CDS %s, config %s)",
				want, a.name, ca, va, na, b.name, cb, vb, nb)
		}
	}
}

// TestClusterWidePresence: two gateway nodes share the sidecars' bucket. A
// sidecar connected to one gives the sidecars of another app on both the
// direct route to it, with the same versions on both nodes; its leaving
// takes the route away on both; and the key of a node that died expires.
func TestClusterWidePresence(t *testing.T) {
	checkLeaks(t)
	srv := startNATS(t)
	ca := newCA(t)
	a := startGateway(t, srv, ca, "gw-a")
	b := startGateway(t, srv, ca, "gw-b")

	// The same orders sidecar, as if it were connected to each node.
	oa := connect(t, a, "acme/orders/o-1")
	ob := connect(t, b, "acme/orders/o-1")
	waitSame(t, a, b, oa, ob, viaGateway)

	c := connect(t, a, "acme/checkout.eu/c-1")
	d := waitSame(t, a, b, oa, ob, direct)
	t.Logf("a sidecar connected to %s: direct route on both nodes after %s", a.name, d)
	if got := b.presence.Apps("acme"); !slices.Equal(got, []string{"checkout.eu", "orders"}) {
		t.Fatalf("%s sees apps %v with sidecars", b.name, got)
	}

	c.cancel()
	d = waitSame(t, a, b, oa, ob, viaGateway)
	t.Logf("the sidecar left: route gone on both nodes after %s", d)

	// A node that died leaves its key behind; it expires after the TTL.
	js := connectJS(t, srv)
	kv, err := js.KeyValue(t.Context(), DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := Sidecar{Tenant: "acme", App: "checkout.eu", Node: "gw-dead", Instance: "c-9"}.Key()
	if _, err := kv.Put(t.Context(), key, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	put := time.Now()
	waitSame(t, a, b, oa, ob, direct)
	waitSame(t, a, b, oa, ob, viaGateway)
	since := time.Since(put)
	t.Logf("a dead node's key: gone from both nodes %s after it was put (TTL %s)", since, testTTL)
	if since < testTTL {
		t.Fatalf("a dead node's key was dropped after %s, before the TTL %s", since, testTTL)
	}
}

// TestRestartDeletesOwnKeys: a node that comes back under the same name
// deletes the keys its previous life left, and keeps those of its
// sidecars.
func TestRestartDeletesOwnKeys(t *testing.T) {
	checkLeaks(t)
	srv := startNATS(t)
	js := connectJS(t, srv)
	kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: DefaultBucket, History: 1, TTL: time.Minute, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	stale, _ := Sidecar{Tenant: "acme", App: "orders", Node: "gw-a", Instance: "old"}.Key()
	other, _ := Sidecar{Tenant: "acme", App: "orders", Node: "gw-b", Instance: "o-2"}.Key()
	for _, k := range []string{stale, other} {
		if _, err := kv.Put(t.Context(), k, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	g := startGateway(t, srv, newCA(t), "gw-a")
	connect(t, g, "acme/orders/o-1")
	mine, _ := Sidecar{Tenant: "acme", App: "orders", Node: "gw-a", Instance: "o-1"}.Key()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		keys, err := kv.Keys(t.Context())
		slices.Sort(keys)
		if err == nil && slices.Equal(keys, []string{mine, other}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keys %v (%v), want %v", keys, err, []string{mine, other})
		}
	}
}
