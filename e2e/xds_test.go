package e2e

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/blockgate/blockgate/xds"
)

// TestEnvoySidecar: the CLI's bootstrap for an app's sidecar is a valid
// Envoy bootstrap; a client speaking ADS as Envoy does, with the bootstrap's
// node and join token, gets its listeners and clusters from the gateway
// process, its acknowledgements show in the admin API, and revoking the
// join token ends the stream. A forged token gets nothing.
func TestEnvoySidecar(t *testing.T) {
	g, _ := privateGateway(t, "--tls")
	ctx := t.Context()
	a := g.admin()
	newTenant(t, g, "mesh", "web")
	if _, err := a.CreateApp(ctx, "mesh", "orders", "http://127.0.0.1:9"); err != nil {
		t.Fatal(err)
	}

	y, err := a.EnvoyBootstrap(ctx, "mesh", "web", "web-1", 8081, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatal(err)
	}
	var boot bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &boot); err != nil {
		t.Fatalf("the bootstrap is not an Envoy v3 bootstrap: %v", err)
	}
	if err := xds.ValidateDeep(&boot); err != nil {
		t.Fatalf("the bootstrap does not validate: %v", err)
	}
	if boot.GetNode().GetId() != "mesh/web/web-1" {
		t.Fatalf("node id %q", boot.GetNode().GetId())
	}
	svc := boot.GetDynamicResources().GetAdsConfig().GetGrpcServices()[0]
	var token string
	for _, kv := range svc.GetInitialMetadata() {
		if kv.GetKey() == "authorization" {
			token = strings.TrimPrefix(kv.GetValue(), "Bearer ")
		}
	}
	sock := boot.GetStaticResources().GetClusters()[0].GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].
		GetEndpoint().GetAddress().GetSocketAddress()
	addr := net.JoinHostPort(sock.GetAddress(), fmt.Sprint(sock.GetPortValue()))
	if !strings.HasPrefix(token, "bgjoin_") {
		t.Fatalf("no join token in the bootstrap: %q", token)
	}

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: g.trustBundle(), ServerName: sock.GetAddress(), MinVersion: tls.VersionTLS12})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	open := func(tok string) discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
		sctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
		st, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open(token)
	ask := func(node *corev3.Node, typeURL, version, nonce string) *discovery.DiscoveryResponse {
		t.Helper()
		if err := st.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: typeURL, VersionInfo: version, ResponseNonce: nonce}); err != nil {
			t.Fatal(err)
		}
		resp, err := st.Recv()
		if err != nil {
			t.Fatalf("%s: %v", typeURL, err)
		}
		return resp
	}
	lds := ask(boot.GetNode(), resource.ListenerType, "", "")
	var names []string
	for _, r := range lds.GetResources() {
		names = append(names, r.GetTypeUrl())
	}
	if len(lds.GetResources()) < 3 { // outbound HTTP, outbound gRPC, inbound
		t.Fatalf("listeners: %d (%v)", len(lds.GetResources()), names)
	}
	// ACK the listeners, then ask for the clusters.
	if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.ListenerType, VersionInfo: lds.GetVersionInfo(), ResponseNonce: lds.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	cds := ask(nil, resource.ClusterType, "", "")
	if len(cds.GetResources()) == 0 {
		t.Fatal("no clusters")
	}
	waitUntil(t, "the admin API shows the sidecar and its acknowledged version", func() bool {
		ss, err := a.Sidecars(ctx, "mesh")
		if err != nil {
			t.Fatal(err)
		}
		return len(ss) == 1 && ss[0].ID == "mesh/web/web-1" && ss[0].Acked["LDS"] == lds.GetVersionInfo()
	})

	// Revoking the join token ends the stream.
	toks, err := a.JoinTokens(ctx, "mesh")
	if err != nil || len(toks) != 1 {
		t.Fatalf("join tokens: %v %v", toks, err)
	}
	if _, err := a.RevokeJoinToken(ctx, "mesh", toks[0].ID); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := st.Recv(); err != nil {
				ended <- err
				return
			}
		}
	}()
	select {
	case err := <-ended:
		t.Logf("stream ended after revocation: %v", status.Code(err))
	case <-time.After(10 * time.Second):
		t.Fatal("the stream survived the revocation of its join token")
	}

	// A forged token: refused before any configuration.
	forged := open("bgjoin_" + strings.Repeat("ab", 32))
	if err := forged.Send(&discovery.DiscoveryRequest{Node: boot.GetNode(), TypeUrl: resource.ListenerType}); err == nil {
		if resp, err := forged.Recv(); err == nil {
			t.Fatalf("a forged join token got configuration: %v", resp.GetVersionInfo())
		}
	}
}
