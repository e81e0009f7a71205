package xds

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/blockgate/blockgate/auth/authpolicy"
	"github.com/blockgate/blockgate/internal/pgtest"
	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
)

// TestRegistry runs the server on the Postgres registry: join tokens
// issued, expired and revoked there, and apps and instances read from it
// through NewRegistrySource.
func TestRegistry(t *testing.T) {
	ctx := t.Context()
	// The database first: its pool and the shared Postgres outlive the
	// leak check.
	reg := tenantspg.New(pgtest.New(t), testLogger(t))
	checkLeaks(t)
	for _, id := range []tenants.ID{"acme", "globex"} {
		if _, err := reg.CreateTenant(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := reg.CreateApp(ctx, tenants.App{Tenant: id, ID: "orders", Endpoint: "http://10.0.0.1:8080"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := reg.AddInstance(ctx, "acme", "orders", tenants.Instance{ID: "orders-2", Endpoint: "http://10.0.0.2:8080"}); err != nil {
		t.Fatal(err)
	}
	tok, text, err := reg.IssueJoinToken(ctx, "acme", "orders", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, globexText, err := reg.IssueJoinToken(ctx, "globex", "orders", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, shortText, err := reg.IssueJoinToken(ctx, "acme", "orders", time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the short token to expire", func() bool {
		_, err := reg.VerifyJoinToken(ctx, shortText)
		return errors.Is(err, tenantspg.ErrInvalidJoinToken)
	})

	ca := newCA(t, nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{
		Listener: lis, TLS: withTLSConfig(ca), CA: ca, JoinTokens: reg,
		Source:      NewRegistrySource(reg, authpolicy.NewCache(reg, testTD.Name(), time.Minute)),
		GatewayHTTP: "gateway.blockgate.test:3500", GatewayGRPC: "gateway.blockgate.test:50001",
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	ts := &testServer{Server: s, addr: lis.Addr().String(), ca: ca}
	conn := ts.dial(t, nil)

	refused := func(token string, node string, want codes.Code) {
		t.Helper()
		st := ads(t, conn, token)
		_ = st.Send(&discovery.DiscoveryRequest{Node: envoyNode(node, 0), TypeUrl: resource.ClusterType})
		if resp, err := st.Recv(); resp != nil || status.Code(err) != want {
			t.Errorf("token for %s: %v %v, want %v and no response", node, resp, err, want)
		}
	}
	refused(shortText, "acme/orders/o", codes.Unauthenticated)
	refused(globexText, "acme/orders/o", codes.PermissionDenied)

	st := ads(t, conn, text)
	if err := st.Send(&discovery.DiscoveryRequest{Node: envoyNode("acme/orders/o", 8080), TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range recvType(t, st, resource.ClusterType).GetResources() {
		c := &clusterv3.Cluster{}
		if err := r.UnmarshalTo(c); err != nil {
			t.Fatal(err)
		}
		names = append(names, c.GetName())
	}
	slices.Sort(names)
	if want := []string{"gateway|grpc", "gateway|http", "inbound|8080", "outbound|orders"}; !slices.Equal(names, want) {
		t.Fatalf("clusters %v, want %v", names, want)
	}
	if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: []string{targetCluster("orders")}}); err != nil {
		t.Fatal(err)
	}
	if n := endpointCount(t, recvType(t, st, resource.EndpointType)); n != 2 {
		t.Errorf("%d endpoints from the registry, want 2", n)
	}

	if _, err := reg.RevokeJoinToken(ctx, "acme", tok.ID); err != nil {
		t.Fatal(err)
	}
	if n := s.CloseTokenStreams(tok.ID); n != 1 {
		t.Errorf("closed %d streams", n)
	}
	for {
		if _, err := st.Recv(); err != nil {
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("the revoked token's stream ended with %v", err)
			}
			break
		}
	}
	refused(text, "acme/orders/o", codes.Unauthenticated)
	conn.Close()
}
