package xds

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/blockgate/blockgate/tenants"
)

// fakePresence records what a Server reports.
type fakePresence struct {
	mu     sync.Mutex
	events []string
}

func (f *fakePresence) SetSidecar(tenant tenants.ID, app, instance string, connected bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, fmt.Sprintf("%s/%s/%s %v", tenant, app, instance, connected))
}

func (f *fakePresence) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

// TestPresence: with Config.Presence the server reports its Envoy nodes
// as they come and go, and only TenantConfig.Sidecars decides which apps
// are reached directly: a sidecar connected here does not count by itself.
func TestPresence(t *testing.T) {
	checkLeaks(t)
	presence := &fakePresence{}
	ts := authServer(t, func(c *Config) { c.Presence = presence })
	ts.source.update("acme", func(c *TenantConfig) { c.Sidecars = nil })
	orders := ts.dial(t, nil)
	checkoutCert := svidCert(t, ts.ca, "acme", "checkout")
	checkout := ts.dial(t, &checkoutCert)

	clusters := func(st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient) []string {
		t.Helper()
		resp := recvType(t, st, resource.ClusterType)
		if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
			t.Fatal(err)
		}
		names := []string{}
		for _, r := range resp.GetResources() {
			c := &clusterv3.Cluster{}
			if err := r.UnmarshalTo(c); err != nil {
				t.Fatal(err)
			}
			names = append(names, c.GetName())
		}
		slices.Sort(names)
		return names
	}

	a := ads(t, orders, tokenOrders)
	if err := a.Send(&discovery.DiscoveryRequest{Node: envoyNode("acme/orders/o", 0), TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	// orders itself is not listed: no direct route to it either.
	if got, want := clusters(a), []string{"gateway|grpc", "gateway|http"}; !slices.Equal(got, want) {
		t.Fatalf("orders' clusters %v, want %v", got, want)
	}
	b := ads(t, checkout, "")
	if err := b.Send(&discovery.DiscoveryRequest{Node: envoyNode("acme/checkout/c", 0), TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	if got, want := clusters(b), []string{"gateway|grpc", "gateway|http"}; !slices.Equal(got, want) {
		t.Fatalf("checkout's clusters %v, want %v: local sidecars must not count", got, want)
	}
	if got, want := presence.list(), []string{"acme/orders/o true", "acme/checkout/c true"}; !slices.Equal(got, want) {
		t.Fatalf("presence %v, want %v", got, want)
	}

	// The cluster's view lists checkout: both nodes call it directly.
	ts.source.update("acme", func(c *TenantConfig) { c.Sidecars = []string{"checkout"} })
	ts.Refresh("acme")
	want := []string{"gateway|grpc", "gateway|http", "outbound|checkout"}
	for name, st := range map[string]discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient{"orders": a, "checkout": b} {
		if got := clusters(st); !slices.Equal(got, want) {
			t.Errorf("%s's clusters %v, want %v", name, got, want)
		}
	}

	// checkout leaves: reported, and nothing is rebuilt on the server's own
	// account (the Source has not changed).
	if err := b.CloseSend(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "checkout's disconnection", func() bool { return len(presence.list()) == 3 })
	if got := presence.list()[2]; got != "acme/checkout/c false" {
		t.Fatalf("presence event %q, want checkout's disconnection", got)
	}
	ts.stop()
	if got := presence.list(); got[len(got)-1] != "acme/orders/o false" {
		t.Fatalf("presence %v: orders' disconnection missing at stop", got)
	}
}
