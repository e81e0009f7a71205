package deploy_test

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/blockgate/blockgate/xds"
)

// parseEnvoy reads an Envoy bootstrap file as Envoy would: YAML to JSON to
// the bootstrap proto, unknown fields refused, then every message (and
// every typed config inside an Any) checked with its generated validation.
func parseEnvoy(t *testing.T, path string) (*bootstrapv3.Bootstrap, []byte) {
	t.Helper()
	y, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSONStrict(y)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, b); err != nil {
		t.Fatalf("%s is not an Envoy bootstrap: %v", path, err)
	}
	if err := xds.ValidateDeep(b); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b, js
}

// TestEnvoyExampleBootstrap keeps deploy/envoy's example what the gateway
// generates for the same sidecar, comments and placeholders aside.
func TestEnvoyExampleBootstrap(t *testing.T) {
	_, example := parseEnvoy(t, "envoy/bootstrap-orders.yaml")
	generated, err := xds.Bootstrap(xds.BootstrapConfig{
		Tenant: "demo", App: "orders", Instance: "orders-1", AppPort: 8080,
		JoinToken:      "bgjoin_PLACEHOLDER-written-by-blockgate-envoy-bootstrap",
		XDSAddress:     "blockgate:18000",
		XDSTrustBundle: []byte("-----BEGIN CERTIFICATE-----\nMIIB... (the gateway CA's trust bundle)\n-----END CERTIFICATE-----\n"),
		TrustDomain:    spiffeid.RequireTrustDomainFromString("blockgate.local"),
		AdminPort:      9901,
	})
	if err != nil {
		t.Fatal(err)
	}
	want, err := yaml.YAMLToJSON(generated)
	if err != nil {
		t.Fatal(err)
	}
	var got, exp any
	if err := json.Unmarshal(example, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &exp); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("envoy/bootstrap-orders.yaml differs from what blockgate envoy bootstrap writes; regenerate it:\n%s", generated)
	}
}

// TestComposeLoadBalancer checks the load balancer's Envoy configuration:
// valid for Envoy, and each of the gateway's public ports carried at L4
// (so that TLS, and the client certificates, end at the gateway) to that
// port of every gateway node, health-checked on the admin port's /readyz.
func TestComposeLoadBalancer(t *testing.T) {
	c := loadCompose(t)
	lb := c.services[c.publicHost(t)]
	b, _ := parseEnvoy(t, c.hostPath(t, lb, configFlag(t, lb)))
	gateways := c.gateways(t)

	clusters := map[string]map[string]bool{} // cluster → its endpoints host:port
	for _, cl := range b.GetStaticResources().GetClusters() {
		eps := map[string]bool{}
		for _, l := range cl.GetLoadAssignment().GetEndpoints() {
			for _, e := range l.GetLbEndpoints() {
				sa := e.GetEndpoint().GetAddress().GetSocketAddress()
				eps[joinHostPort(sa.GetAddress(), int(sa.GetPortValue()))] = true
				if hc := e.GetEndpoint().GetHealthCheckConfig(); hc.GetPortValue() != 8080 {
					t.Errorf("cluster %s: endpoint %s is health-checked on port %d, want the admin port 8080", cl.GetName(), sa.GetAddress(), hc.GetPortValue())
				}
			}
		}
		clusters[cl.GetName()] = eps
		hcs := cl.GetHealthChecks()
		if len(hcs) != 1 || hcs[0].GetHttpHealthCheck().GetPath() != "/readyz" {
			t.Errorf("cluster %s: want one HTTP health check of /readyz, have %v", cl.GetName(), hcs)
		}
	}
	ports := map[int]bool{}
	for _, l := range b.GetStaticResources().GetListeners() {
		port := int(l.GetAddress().GetSocketAddress().GetPortValue())
		ports[port] = true
		chains := l.GetFilterChains()
		if len(chains) != 1 || len(chains[0].GetFilters()) != 1 {
			t.Errorf("listener %s: want one filter chain with one filter", l.GetName())
			continue
		}
		tp := &tcpproxyv3.TcpProxy{}
		if err := chains[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(tp); err != nil {
			t.Errorf("listener %s is not a TCP proxy: %v", l.GetName(), err)
			continue
		}
		want := map[string]bool{}
		for _, g := range gateways {
			want[joinHostPort(g, port)] = true
		}
		if got := clusters[tp.GetCluster()]; !reflect.DeepEqual(got, want) {
			t.Errorf("listener %s (port %d) goes to %v, want every gateway node at that port %v", l.GetName(), port, keys(got), keys(want))
		}
	}
	for _, p := range []int{3500, 50001, 8080, 18000} {
		if !ports[p] {
			t.Errorf("the load balancer has no listener on %d", p)
		}
	}
}
