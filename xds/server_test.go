package xds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.uber.org/goleak"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
)

const (
	tokenOrders  = tenantspg.JoinTokenPrefix + "orders"
	tokenExpired = tenantspg.JoinTokenPrefix + "expired"
	tokenRevoked = tenantspg.JoinTokenPrefix + "revoked"
	tokenGhost   = tenantspg.JoinTokenPrefix + "ghost"
)

// authServer runs a TLS server for tenants acme (the small tenant) and
// globex, with join tokens for acme's orders.
func authServer(t *testing.T, opts ...serverOption) *testServer {
	t.Helper()
	ca := newCA(t, nil)
	src := newMemSource()
	src.set("acme", smallTenant(t))
	src.set("globex", TenantConfig{Apps: []tenants.App{{Tenant: "globex", ID: "orders", Endpoint: "http://10.1.0.1:8080"}}})
	ts := startServer(t, ca, src, append([]serverOption{withTLS(ca)}, opts...)...)
	now := time.Now()
	revoked := now
	ts.tokens.add(tokenOrders, tenantspg.JoinToken{ID: "jt_orders", Tenant: "acme", AppID: "orders", ExpiresAt: now.Add(time.Hour)})
	ts.tokens.add(tokenExpired, tenantspg.JoinToken{ID: "jt_expired", Tenant: "acme", AppID: "orders", ExpiresAt: now.Add(-time.Second)})
	ts.tokens.add(tokenRevoked, tenantspg.JoinToken{ID: "jt_revoked", Tenant: "acme", AppID: "orders", ExpiresAt: now.Add(time.Hour), RevokedAt: &revoked})
	ts.tokens.add(tokenGhost, tenantspg.JoinToken{ID: "jt_ghost", Tenant: "acme", AppID: "ghost", ExpiresAt: now.Add(time.Hour)})
	return ts
}

// dial connects to the test server over TLS, presenting cert if given.
func (ts *testServer) dial(t *testing.T, cert *tls.Certificate) *grpc.ClientConn {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ts.ca.BundlePEM())
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient(ts.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// ads opens an ADS stream with token (if any) as bearer credential.
func ads(t *testing.T, conn *grpc.ClientConn, token string) discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	st, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func envoyNode(id string, appPort int) *core.Node {
	n := &core.Node{Id: id, UserAgentName: "envoy"}
	if appPort > 0 {
		n.Metadata, _ = structpb.NewStruct(map[string]any{MetaAppPort: appPort})
	}
	return n
}

// recvType reads responses until one of typeURL comes.
func recvType(t *testing.T, st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient, typeURL string) *discovery.DiscoveryResponse {
	t.Helper()
	for {
		resp, err := st.Recv()
		if err != nil {
			t.Fatalf("waiting for %s: %v", typeURL, err)
		}
		if resp.GetTypeUrl() == typeURL {
			return resp
		}
	}
}

// TestRefusedNodesGetNothing: a node without a valid credential, or whose
// node id names another app than its credential, gets no response at all;
// its stream ends with the code that says why.
func TestRefusedNodesGetNothing(t *testing.T) {
	checkLeaks(t)
	ts := authServer(t)
	globexCert := svidCert(t, ts.ca, "globex", "orders")
	acmeCert := svidCert(t, ts.ca, "acme", "orders")
	plain := ts.dial(t, nil)
	tests := []struct {
		name  string
		conn  *grpc.ClientConn
		token string
		node  *core.Node
		want  codes.Code
	}{
		{"no credential", plain, "", envoyNode("acme/orders/o", 0), codes.Unauthenticated},
		{"unknown join token", plain, tenantspg.JoinTokenPrefix + "nope", envoyNode("acme/orders/o", 0), codes.Unauthenticated},
		{"expired join token", plain, tokenExpired, envoyNode("acme/orders/o", 0), codes.Unauthenticated},
		{"revoked join token", plain, tokenRevoked, envoyNode("acme/orders/o", 0), codes.Unauthenticated},
		{"another tenant's app", plain, tokenOrders, envoyNode("globex/orders/o", 0), codes.PermissionDenied},
		{"another app of the tenant", plain, tokenOrders, envoyNode("acme/ledger/o", 0), codes.PermissionDenied},
		{"SVID of another tenant", ts.dial(t, &globexCert), "", envoyNode("acme/orders/o", 0), codes.PermissionDenied},
		{"token and SVID disagree", ts.dial(t, &globexCert), tokenOrders, envoyNode("acme/orders/o", 0), codes.PermissionDenied},
		{"app not registered", plain, tokenGhost, envoyNode("acme/ghost/o", 0), codes.PermissionDenied},
		{"malformed node id", plain, tokenOrders, envoyNode("acme/orders", 0), codes.InvalidArgument},
		{"no node", plain, tokenOrders, nil, codes.InvalidArgument},
		{"metadata names another app", plain, tokenOrders, &core.Node{Id: "acme/orders/o", Metadata: &structpb.Struct{
			Fields: map[string]*structpb.Value{MetaApp: structpb.NewStringValue("ledger")}}}, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := ads(t, tt.conn, tt.token)
			_ = st.Send(&discovery.DiscoveryRequest{Node: tt.node, TypeUrl: resource.ListenerType})
			resp, err := st.Recv()
			if resp != nil {
				t.Fatalf("got a response: %v", resp)
			}
			if status.Code(err) != tt.want {
				t.Fatalf("stream ended with %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("delta without credential", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := discovery.NewAggregatedDiscoveryServiceClient(plain).DeltaAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = st.Send(&discovery.DeltaDiscoveryRequest{Node: envoyNode("acme/orders/o", 0), TypeUrl: resource.ListenerType})
		if resp, err := st.Recv(); resp != nil || status.Code(err) != codes.Unauthenticated {
			t.Fatalf("delta stream: %v %v", resp, err)
		}
	})
	t.Run("node changes mid-stream", func(t *testing.T) {
		st := ads(t, plain, tokenOrders)
		if err := st.Send(&discovery.DiscoveryRequest{Node: envoyNode("acme/orders/o", 0), TypeUrl: resource.ListenerType}); err != nil {
			t.Fatal(err)
		}
		recvType(t, st, resource.ListenerType)
		_ = st.Send(&discovery.DiscoveryRequest{Node: envoyNode("acme/orders/other", 0), TypeUrl: resource.ClusterType})
		for {
			_, err := st.Recv()
			if err != nil {
				if status.Code(err) != codes.PermissionDenied {
					t.Fatalf("stream ended with %v, want PermissionDenied", err)
				}
				break
			}
		}
	})
	for _, cred := range []struct {
		name  string
		conn  *grpc.ClientConn
		token string
	}{{"join token", plain, tokenOrders}, {"svid", ts.dial(t, &acmeCert), ""}} {
		t.Run("served with "+cred.name, func(t *testing.T) {
			st := ads(t, cred.conn, cred.token)
			if err := st.Send(&discovery.DiscoveryRequest{Node: envoyNode("acme/orders/"+cred.name[:3], 0), TypeUrl: resource.ListenerType}); err != nil {
				t.Fatal(err)
			}
			if resp := recvType(t, st, resource.ListenerType); len(resp.GetResources()) == 0 {
				t.Fatal("no listeners")
			}
		})
	}
	t.Run("served over delta", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tokenOrders)
		st, err := discovery.NewAggregatedDiscoveryServiceClient(plain).DeltaAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&discovery.DeltaDiscoveryRequest{Node: envoyNode("acme/orders/delta", 0), TypeUrl: resource.ListenerType}); err != nil {
			t.Fatal(err)
		}
		resp, err := st.Recv()
		if err != nil || len(resp.GetResources()) != 2 {
			t.Fatalf("delta listeners: %v %v", resp, err)
		}
		if err := st.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.ListenerType, ResponseNonce: resp.GetNonce()}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the delta ACK in Status", func() bool {
			for _, n := range ts.Status() {
				if n.ID == "acme/orders/delta" && n.Acked["LDS"] == resp.GetSystemVersionInfo() {
					return true
				}
			}
			return false
		})
	})
	for _, n := range ts.Status() {
		if n.Tenant != "acme" || n.App != "orders" {
			t.Errorf("a refused node is in Status: %+v", n)
		}
	}
	ts.stop()
}

// TestEnvoyNode walks one sidecar through its life: the snapshot, ACKs
// and a NACK in Status, an instance added and seen over EDS, its SVID
// renewed, and its join token revoked.
func TestEnvoyNode(t *testing.T) {
	checkLeaks(t)
	clk := &testClock{now: time.Now()}
	ts := authServer(t, withClock(clk.Now))
	conn := ts.dial(t, nil)
	st := ads(t, conn, tokenOrders)
	node := envoyNode("acme/orders/o1", 8080)

	// Listeners, then the secrets they name, as Envoy asks.
	if err := st.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resource.ListenerType}); err != nil {
		t.Fatal(err)
	}
	lds := recvType(t, st, resource.ListenerType)
	var names []string
	for _, r := range lds.GetResources() {
		l := &listenerv3.Listener{}
		if err := r.UnmarshalTo(l); err != nil {
			t.Fatal(err)
		}
		if err := ValidateDeep(l); err != nil {
			t.Errorf("listener %s: %v", l.GetName(), err)
		}
		names = append(names, l.GetName())
	}
	slices.Sort(names)
	if want := []string{"inbound", "outbound_grpc", "outbound_http"}; !slices.Equal(names, want) {
		t.Fatalf("listeners %v, want %v", names, want)
	}
	if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.ListenerType, VersionInfo: lds.GetVersionInfo(), ResponseNonce: lds.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	self := "spiffe://blockgate.test/tenant/acme/app/orders"
	secretNames := []string{self, "spiffe://blockgate.test"}
	if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.SecretType, ResourceNames: secretNames}); err != nil {
		t.Fatal(err)
	}
	sds := recvType(t, st, resource.SecretType)
	serial := checkSVID(t, sds, self)
	if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.SecretType, ResourceNames: secretNames, VersionInfo: sds.GetVersionInfo(), ResponseNonce: sds.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	// A NACK of the endpoints.
	eds := []string{targetCluster("orders")}
	if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: eds}); err != nil {
		t.Fatal(err)
	}
	first := recvType(t, st, resource.EndpointType)
	if got := endpointCount(t, first); got != 2 {
		t.Fatalf("%d endpoints of orders, want 2", got)
	}
	if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: eds, ResponseNonce: first.GetNonce(),
		ErrorDetail: &statuspb.Status{Code: int32(codes.InvalidArgument), Message: "malformed IP address: nope"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ACKs and the NACK in Status", func() bool {
		s := ts.Status()
		return len(s) == 1 && s[0].Acked["LDS"] == lds.GetVersionInfo() && s[0].Acked["SDS"] == sds.GetVersionInfo() && len(s[0].NACKs) == 1
	})
	s := ts.Status()[0]
	if s.ID != "acme/orders/o1" || s.Credential != "join token jt_orders" || s.Proxyless || s.Version == "" || s.CertificateExpiresAt == nil {
		t.Errorf("status %+v", s)
	}
	if n := s.NACKs[0]; n.Type != "EDS" || n.Version != first.GetVersionInfo() || n.Error != "malformed IP address: nope" {
		t.Errorf("NACK %+v", n)
	}

	// A new instance reaches the node.
	ts.source.update("acme", func(c *TenantConfig) {
		c.Apps = slices.Clone(c.Apps)
		c.Apps[0].Instances = append(slices.Clone(c.Apps[0].Instances), tenants.Instance{ID: "orders-3", Endpoint: "http://10.0.0.3:8080"})
	})
	ts.Refresh("acme")
	// The NACK above may first bring the same endpoints again; each
	// response is ACKed, which opens the watch for the next.
	for {
		resp := recvType(t, st, resource.EndpointType)
		if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: eds,
			VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
			t.Fatal(err)
		}
		if endpointCount(t, resp) == 3 {
			break
		}
	}

	// Two thirds of the SVID's life later, a new one is pushed.
	clk.Add(41 * time.Minute)
	ts.renew(context.Background())
	renewed := recvType(t, st, resource.SecretType)
	if checkSVID(t, renewed, self) == serial {
		t.Error("the SVID was not renewed")
	}
	if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.SecretType, ResourceNames: secretNames,
		VersionInfo: renewed.GetVersionInfo(), ResponseNonce: renewed.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	// A CA rotation pushes a new bundle and an SVID under the new root.
	if _, err := ts.ca.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts.renew(context.Background())
	rotated := recvType(t, st, resource.SecretType)
	checkSVID(t, rotated, self)
	if !slices.Equal(bundleOf(t, rotated), ts.ca.BundlePEM()) {
		t.Error("the new trust bundle was not pushed")
	}

	// Revoking the join token ends the stream.
	if n := ts.CloseTokenStreams("jt_orders"); n != 1 {
		t.Fatalf("CloseTokenStreams closed %d streams", n)
	}
	for {
		if _, err := st.Recv(); err != nil {
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("stream ended with %v, want Unauthenticated", err)
			}
			break
		}
	}
	waitFor(t, "the node and its snapshot to go", func() bool {
		_, err := ts.cache.GetSnapshot("acme/orders/o1")
		return len(ts.Status()) == 0 && err != nil
	})
	ts.stop()
}

func endpointCount(t *testing.T, resp *discovery.DiscoveryResponse) int {
	t.Helper()
	n := 0
	for _, r := range resp.GetResources() {
		cla := &endpointv3.ClusterLoadAssignment{}
		if err := r.UnmarshalTo(cla); err != nil {
			t.Fatal(err)
		}
		for _, l := range cla.GetEndpoints() {
			n += len(l.GetLbEndpoints())
		}
	}
	return n
}

// checkSVID checks that an SDS response holds an SVID for id that verifies
// with the bundle beside it, and returns its serial number.
func checkSVID(t *testing.T, resp *discovery.DiscoveryResponse, id string) string {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundleOf(t, resp)) {
		t.Fatal("no trust bundle in the SDS response")
	}
	for _, r := range resp.GetResources() {
		s := &tlsv3.Secret{}
		if err := r.UnmarshalTo(s); err != nil {
			t.Fatal(err)
		}
		if s.GetName() != id {
			continue
		}
		pair, err := tls.X509KeyPair(s.GetTlsCertificate().GetCertificateChain().GetInlineBytes(), s.GetTlsCertificate().GetPrivateKey().GetInlineBytes())
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		inter := x509.NewCertPool()
		for _, c := range pair.Certificate[1:] {
			ic, _ := x509.ParseCertificate(c)
			inter.AddCert(ic)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("the SVID does not verify with the bundle: %v", err)
		}
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id {
			t.Errorf("SVID for %v, want %s", leaf.URIs, id)
		}
		return leaf.SerialNumber.String()
	}
	t.Fatalf("no secret %s in the SDS response", id)
	return ""
}

func bundleOf(t *testing.T, resp *discovery.DiscoveryResponse) []byte {
	t.Helper()
	for _, r := range resp.GetResources() {
		s := &tlsv3.Secret{}
		if err := r.UnmarshalTo(s); err != nil {
			t.Fatal(err)
		}
		if vc := s.GetValidationContext(); vc != nil {
			return vc.GetTrustedCa().GetInlineBytes()
		}
	}
	return nil
}

// TestFanOut: a policy change reaches every node of the tenant, and a
// sidecar that connects opens the direct path to its app for the others.
func TestFanOut(t *testing.T) {
	checkLeaks(t)
	ts := authServer(t)
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
	if got, want := clusters(a), []string{"gateway|grpc", "gateway|http", "outbound|orders"}; !slices.Equal(got, want) {
		t.Fatalf("orders' clusters %v, want %v", got, want)
	}
	// checkout's sidecar connects: orders may call it, so it gets a
	// cluster for it.
	b := ads(t, checkout, "")
	if err := b.Send(&discovery.DiscoveryRequest{Node: envoyNode("acme/checkout/c", 0), TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	if got, want := clusters(b), []string{"gateway|grpc", "gateway|http", "outbound|checkout", "outbound|orders"}; !slices.Equal(got, want) {
		t.Fatalf("checkout's clusters %v, want %v", got, want)
	}
	if got, want := clusters(a), []string{"gateway|grpc", "gateway|http", "outbound|checkout", "outbound|orders"}; !slices.Equal(got, want) {
		t.Fatalf("orders' clusters after checkout connected %v, want %v", got, want)
	}
	// A rebuild of the same configuration validates nothing again.
	runs := func() int {
		ts.buildMu.Lock()
		defer ts.buildMu.Unlock()
		return ts.tenants["acme"].valid.runs
	}
	before := runs()
	if err := ts.rebuildTenant(t.Context(), "acme"); err != nil {
		t.Fatal(err)
	}
	if got := runs(); before == 0 || got != before {
		t.Errorf("ValidateDeep ran %d times, then %d after a rebuild of the same configuration", before, got)
	}
	// A policy that denies every caller of checkout reaches both nodes.
	ts.source.update("acme", func(c *TenantConfig) {
		c.Policy = policySet(t, "acme", true, map[string][]string{ledgerACL: {"ledger"}})
	})
	ts.Refresh("acme")
	for name, st := range map[string]discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient{"orders": a, "checkout": b} {
		if got, want := clusters(st), []string{"gateway|grpc", "gateway|http"}; !slices.Equal(got, want) {
			t.Errorf("%s's clusters after deny-by-default %v, want %v", name, got, want)
		}
	}
	// Removing the app ends its node's streams.
	ts.source.update("acme", func(c *TenantConfig) {
		c.Apps = slices.DeleteFunc(slices.Clone(c.Apps), func(a tenants.App) bool { return a.ID == "checkout" })
	})
	ts.Refresh("acme")
	for {
		if _, err := b.Recv(); err != nil {
			if status.Code(err) != codes.PermissionDenied {
				t.Fatalf("checkout's stream ended with %v, want PermissionDenied", err)
			}
			break
		}
	}
	ts.stop()
}

// TestManyApps: a node of a tenant of many apps, over TLS, gets responses
// and sends requests far larger than a TLS record, an HTTP/2 frame and
// the flow control window.
func TestManyApps(t *testing.T) {
	checkLeaks(t)
	const apps = 1000
	ts := authServer(t)
	ts.source.update("acme", func(c *TenantConfig) {
		for i := range apps {
			id := fmt.Sprintf("app-%03d", i)
			c.Apps = append(c.Apps, tenants.App{Tenant: "acme", ID: id, Endpoint: fmt.Sprintf("http://10.2.%d.%d:8080", i/200, i%200+1),
				Instances: []tenants.Instance{{ID: id + "-2", Endpoint: fmt.Sprintf("http://10.3.%d.%d:8080", i/200, i%200+1)}}})
			c.Sidecars = append(c.Sidecars, id)
		}
	})
	st := ads(t, ts.dial(t, nil), tokenOrders)
	size := 0
	get := func(req *discovery.DiscoveryRequest) *discovery.DiscoveryResponse {
		t.Helper()
		if err := st.Send(req); err != nil {
			t.Fatal(err)
		}
		resp := recvType(t, st, req.GetTypeUrl())
		size += proto.Size(resp)
		ack := &discovery.DiscoveryRequest{TypeUrl: req.GetTypeUrl(), ResourceNames: req.GetResourceNames(), VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}
		if err := st.Send(ack); err != nil {
			t.Fatal(err)
		}
		return resp
	}

	cds := get(&discovery.DiscoveryRequest{Node: envoyNode("acme/orders/o", 8080), TypeUrl: resource.ClusterType})
	var eds []string
	for _, r := range cds.GetResources() {
		c := &clusterv3.Cluster{}
		if err := r.UnmarshalTo(c); err != nil {
			t.Fatal(err)
		}
		if c.GetEdsClusterConfig() != nil {
			eds = append(eds, c.GetName())
		}
	}
	if len(eds) < apps {
		t.Fatalf("%d EDS clusters, want at least %d", len(eds), apps)
	}
	req := &discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: eds}
	if proto.Size(req) < 16<<10 {
		t.Fatalf("the EDS request is %d bytes, want more than a TLS record", proto.Size(req))
	}
	if got := len(get(req).GetResources()); got != len(eds) {
		t.Errorf("%d endpoint resources, want %d", got, len(eds))
	}
	rds := get(&discovery.DiscoveryRequest{TypeUrl: resource.RouteType, ResourceNames: []string{routeOutboundHTTP, routeOutboundGRPC}})
	if got := len(rds.GetResources()); got != 2 {
		t.Errorf("%d route configurations, want 2", got)
	}
	if size < 256<<10 {
		t.Errorf("the responses came to %d bytes, want more than the flow control window", size)
	}
	t.Logf("%d EDS clusters, responses of %d KiB", len(eds), size>>10)
	ts.stop()
}

// checkLeaks fails the test if goroutines it started outlive it and its
// cleanups.
func checkLeaks(t *testing.T, more ...goleak.Option) {
	t.Helper()
	opts := append([]goleak.Option{goleak.IgnoreCurrent()}, more...)
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}
