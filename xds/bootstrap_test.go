package xds

import (
	"encoding/json"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/blockgate/blockgate/tenants/tenantspg"
)

// parseBootstrap reads an Envoy bootstrap as Envoy would: YAML to JSON to
// the bootstrap proto, strictly, then ValidateDeep.
func parseBootstrap(t *testing.T, y []byte) *bootstrapv3.Bootstrap {
	t.Helper()
	js, err := yaml.YAMLToJSONStrict(y)
	if err != nil {
		t.Fatal(err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, b); err != nil {
		t.Fatalf("not an Envoy bootstrap: %v", err)
	}
	if err := ValidateDeep(b); err != nil {
		t.Fatalf("invalid bootstrap: %v", err)
	}
	return b
}

func TestBootstrap(t *testing.T) {
	token := tenantspg.JoinTokenPrefix + strings.Repeat("ab", 32)
	base := BootstrapConfig{
		Tenant: "acme", App: "orders", Instance: "orders-1", AppPort: 8080, JoinToken: token,
		XDSAddress: "gateway.blockgate.test:18000", AdminPort: 9901,
	}
	t.Run("golden", func(t *testing.T) {
		c := base
		c.XDSTrustBundle = []byte("-----BEGIN CERTIFICATE-----\nMIIB (the trust bundle)\n-----END CERTIFICATE-----\n")
		c.TrustDomain = testTD
		y, err := Bootstrap(c)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "bootstrap-orders.yaml", y)
		b := parseBootstrap(t, y)
		if b.GetNode().GetId() != "acme/orders/orders-1" {
			t.Errorf("node id %q", b.GetNode().GetId())
		}
		md := b.GetDynamicResources().GetAdsConfig().GetGrpcServices()[0].GetInitialMetadata()
		if len(md) != 1 || md[0].GetKey() != "authorization" || md[0].GetValue() != "Bearer "+token {
			t.Errorf("initial metadata %v", md)
		}
		if n, err := ParseNode(b.GetNode()); err != nil || n.AppPort != 8080 || n.Proxyless {
			t.Errorf("the server reads the node as %+v, %v", n, err)
		}
		if b.GetStaticResources().GetClusters()[0].GetTransportSocket() == nil {
			t.Error("no TLS to the xDS server")
		}
	})
	t.Run("plaintext without admin", func(t *testing.T) {
		c := base
		c.AdminPort, c.AppPort = 0, 0
		y, err := Bootstrap(c)
		if err != nil {
			t.Fatal(err)
		}
		b := parseBootstrap(t, y)
		if b.GetAdmin() != nil || b.GetStaticResources().GetClusters()[0].GetTransportSocket() != nil {
			t.Errorf("admin %v, transport socket %v", b.GetAdmin(), b.GetStaticResources().GetClusters()[0].GetTransportSocket())
		}
		if n, err := ParseNode(b.GetNode()); err != nil || n.AppPort != 0 {
			t.Errorf("node %+v, %v", n, err)
		}
	})
	for _, tt := range []struct {
		name string
		edit func(*BootstrapConfig)
	}{
		{"no token", func(c *BootstrapConfig) { c.JoinToken = "" }},
		{"not a join token", func(c *BootstrapConfig) { c.JoinToken = "secret" }},
		{"bad tenant", func(c *BootstrapConfig) { c.Tenant = "Acme" }},
		{"no instance", func(c *BootstrapConfig) { c.Instance = "" }},
		{"instance with a slash", func(c *BootstrapConfig) { c.Instance = "a/b" }},
		{"bad address", func(c *BootstrapConfig) { c.XDSAddress = "gateway" }},
		{"bad app port", func(c *BootstrapConfig) { c.AppPort = 70000 }},
		{"bundle without trust domain", func(c *BootstrapConfig) { c.XDSTrustBundle = []byte("x") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.edit(&c)
			if _, err := Bootstrap(c); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestProxylessBootstrap(t *testing.T) {
	js, err := ProxylessBootstrap(ProxylessConfig{
		Tenant: "acme", App: "web", Instance: "web-1", XDSAddress: "gateway.blockgate.test:18000",
		CertificateFile: "/svid/cert.pem", PrivateKeyFile: "/svid/key.pem", CAFile: "/svid/bundle.pem",
	})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "proxyless-bootstrap-web.json", append(js, '\n'))
	var doc map[string]any
	if err := json.Unmarshal(js, &doc); err != nil {
		t.Fatal(err)
	}
	if _, err := ProxylessBootstrap(ProxylessConfig{Tenant: "acme", App: "web", Instance: "w", XDSAddress: "x:1"}); err == nil {
		t.Error("a proxyless bootstrap without SVID files was accepted")
	}
}
