package xds

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/tenants"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const (
	ledgerACL = `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: ledger-acl}
spec:
  accessControl:
    defaultAction: deny
    policies:
    - appId: checkout
      defaultAction: allow
`
	auditACL = `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: audit-acl}
spec:
  accessControl:
    defaultAction: allow
    policies:
    - appId: orders
      defaultAction: allow
      operations:
      - name: /admin/**
        httpVerb: ['*']
        action: deny
`
)

// smallTenant is the tenant of the golden files: orders (HTTP, two
// instances) may call checkout (HTTP, a DNS name) and itself but only some
// methods of audit and nothing of ledger (gRPC, mTLS), which only checkout
// may call.
func smallTenant(t testing.TB) TenantConfig {
	return TenantConfig{
		Apps: []tenants.App{
			{Tenant: "acme", ID: "orders", Endpoint: "http://10.0.0.1:8080", Instances: []tenants.Instance{{ID: "orders-2", Endpoint: "http://10.0.0.2:8080"}}},
			{Tenant: "acme", ID: "checkout", Endpoint: "http://checkout.acme.internal:8080"},
			{Tenant: "acme", ID: "ledger", Endpoint: "grpcs://10.0.0.5:50051", Instances: []tenants.Instance{{ID: "ledger-2", Endpoint: "grpcs://10.0.0.6:50051"}}},
			{Tenant: "acme", ID: "audit", Endpoint: "http://10.0.0.9:8080"},
		},
		Policy:   policySet(t, "acme", false, map[string][]string{ledgerACL: {"ledger"}, auditACL: {"audit"}}),
		Sidecars: []string{"audit", "checkout", "ledger", "orders"},
	}
}

func testBuilder(t testing.TB, ca *authca.CA) *builder {
	t.Helper()
	b, err := newBuilder(Config{
		CA: ca, GatewayHTTP: "gateway.blockgate.test:3500", GatewayGRPC: "gateway.blockgate.test:50001",
		InboundPort: DefaultInboundPort,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// buildSnapshot builds the snapshot of node n of tenant cfg, as the
// server does, with a fresh SVID for an Envoy node.
func buildSnapshot(t testing.TB, ca *authca.CA, cfg TenantConfig, n Node) *cache.Snapshot {
	t.Helper()
	b := testBuilder(t, ca).fresh()
	v := newView(n.Tenant, testTD, cfg, nil)
	var set *configSet
	if n.Proxyless {
		set = b.proxylessConfig(v, n.App)
	} else {
		set = b.envoyConfig(v, n.App, n.AppPort)
	}
	if b.err != nil {
		t.Fatal(b.err)
	}
	if err := set.finish(nil); err != nil {
		t.Fatal(err)
	}
	var secrets []types.Resource
	if !n.Proxyless {
		s := &Server{cfg: Config{CA: ca, SVIDTTL: time.Hour}.withDefaults(), b: b}
		is, err := s.issue(context.Background(), &node{Node: n})
		if err != nil {
			t.Fatal(err)
		}
		secrets = is.resources
	}
	snap := set.snapshot(secrets, "secrets")
	checkSnapshot(t, snap)
	return snap
}

// TestGolden pins the configuration of a small tenant's nodes. Run with
// -update to rewrite testdata after a deliberate change, and read the diff
// against Envoy's API documentation.
func TestGolden(t *testing.T) {
	ca := newCA(t, nil)
	cfg := smallTenant(t)
	tests := []struct {
		file string
		node Node
	}{
		{"envoy-orders.yaml", Node{ID: "acme/orders/orders-1", Tenant: "acme", App: "orders", Instance: "orders-1", AppPort: 8080}},
		{"envoy-ledger.yaml", Node{ID: "acme/ledger/ledger-1", Tenant: "acme", App: "ledger", Instance: "ledger-1", AppPort: 50051}},
		{"envoy-outbound-only.yaml", Node{ID: "acme/audit/a", Tenant: "acme", App: "audit", Instance: "a"}},
		{"proxyless-checkout.yaml", Node{ID: "acme/checkout/c", Tenant: "acme", App: "checkout", Instance: "c", Proxyless: true}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			golden(t, tt.file, dumpSnapshot(t, buildSnapshot(t, ca, cfg, tt.node)))
		})
	}
}

// golden compares got with testdata/file, or writes it with -update.
func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the generated configuration (go test -update rewrites it); got:\n%s", path, got)
	}
}

// dumpSnapshot renders a snapshot as YAML, resources by type and name,
// with key material and the secrets' version redacted.
func dumpSnapshot(t testing.TB, snap *cache.Snapshot) []byte {
	t.Helper()
	var doc []any
	for _, typ := range []types.ResponseType{types.Listener, types.Route, types.Cluster, types.Endpoint, types.Secret} {
		res := snap.Resources[typ]
		var names []string
		for name := range res.Items {
			names = append(names, name)
		}
		slices.Sort(names)
		items := []any{}
		for _, name := range names {
			m := proto.Clone(res.Items[name].Resource)
			if s, ok := m.(*tlsv3.Secret); ok {
				redact(s)
			}
			js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := json.Unmarshal(js, &v); err != nil {
				t.Fatal(err)
			}
			items = append(items, v)
		}
		version := res.Version
		if typ == types.Secret {
			version = "<per node>"
		}
		doc = append(doc, map[string]any{"type": typeName(typ), "version": version, "resources": items})
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func inlineString(s string) *core.DataSource {
	return &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: s}}
}

func redact(s *tlsv3.Secret) {
	switch k := s.Type.(type) {
	case *tlsv3.Secret_TlsCertificate:
		k.TlsCertificate.CertificateChain = inlineString("<redacted: the SVID and its intermediate, PEM>")
		k.TlsCertificate.PrivateKey = inlineString("<redacted: the SVID's private key, PEM>")
	case *tlsv3.Secret_ValidationContext:
		k.ValidationContext.TrustedCa = inlineString("<redacted: the trust bundle, PEM>")
	}
}

// TestVersionsAreStable: the same input gives the same versions (map
// fields included: RBAC policies), and a change of input another.
func TestVersionsAreStable(t *testing.T) {
	ca := newCA(t, nil)
	n := Node{ID: "acme/orders/o", Tenant: "acme", App: "orders", Instance: "o", AppPort: 8080}
	first := buildSnapshot(t, ca, smallTenant(t), n)
	for range 5 {
		again := buildSnapshot(t, ca, smallTenant(t), n)
		for _, typ := range configTypes {
			if first.Resources[typ].Version != again.Resources[typ].Version {
				t.Fatalf("%s version %s, then %s", typeName(typ), first.Resources[typ].Version, again.Resources[typ].Version)
			}
		}
	}
	changed := smallTenant(t)
	changed.Apps[0].Instances = nil
	other := buildSnapshot(t, ca, changed, n)
	if first.Resources[types.Endpoint].Version == other.Resources[types.Endpoint].Version {
		t.Error("removing an instance did not change the EDS version")
	}
	if first.Resources[types.Listener].Version != other.Resources[types.Listener].Version {
		t.Error("removing an instance changed the LDS version")
	}
}

// TestSnapshotShapes checks what the golden files show, in code.
func TestSnapshotShapes(t *testing.T) {
	ca := newCA(t, nil)
	cfg := smallTenant(t)
	orders := buildSnapshot(t, ca, cfg, Node{ID: "acme/orders/o", Tenant: "acme", App: "orders", Instance: "o", AppPort: 8080})
	names := func(snap *cache.Snapshot, typ types.ResponseType) []string {
		var out []string
		for n := range snap.Resources[typ].Items {
			out = append(out, n)
		}
		slices.Sort(out)
		return out
	}
	if got, want := names(orders, types.Listener), []string{"inbound", "outbound_grpc", "outbound_http"}; !slices.Equal(got, want) {
		t.Errorf("listeners %v, want %v", got, want)
	}
	// audit allows orders only some methods, ledger none: both through
	// the gateway.
	if got, want := names(orders, types.Cluster), []string{"gateway|grpc", "gateway|http", "inbound|8080", "outbound|checkout", "outbound|orders"}; !slices.Equal(got, want) {
		t.Errorf("clusters %v, want %v", got, want)
	}
	if got, want := names(orders, types.Endpoint), []string{"outbound|orders"}; !slices.Equal(got, want) {
		t.Errorf("endpoints %v, want %v (checkout has a DNS name: STRICT_DNS)", got, want)
	}
	if got, want := names(orders, types.Secret), []string{"spiffe://blockgate.test", "spiffe://blockgate.test/tenant/acme/app/orders"}; !slices.Equal(got, want) {
		t.Errorf("secrets %v, want %v", got, want)
	}

	// Without sidecars elsewhere, everything goes through the gateway.
	alone := smallTenant(t)
	alone.Sidecars = nil
	snap := buildSnapshot(t, ca, alone, Node{ID: "acme/orders/o", Tenant: "acme", App: "orders", Instance: "o"})
	if got, want := names(snap, types.Cluster), []string{"gateway|grpc", "gateway|http"}; !slices.Equal(got, want) {
		t.Errorf("clusters without sidecars %v, want %v", got, want)
	}
	if got := names(snap, types.Listener); slices.Contains(got, "inbound") {
		t.Errorf("a node without APP_PORT got an inbound listener: %v", got)
	}

	// The proxyless flavour: one client listener per gRPC app it may call.
	px := buildSnapshot(t, ca, cfg, Node{ID: "acme/checkout/c", Tenant: "acme", App: "checkout", Instance: "c", Proxyless: true})
	if got, want := names(px, types.Listener), []string{"ledger"}; !slices.Equal(got, want) {
		t.Errorf("proxyless listeners %v, want %v", got, want)
	}
	if got := names(px, types.Secret); len(got) != 0 {
		t.Errorf("proxyless secrets %v, want none", got)
	}
	px = buildSnapshot(t, ca, cfg, Node{ID: "acme/orders/o", Tenant: "acme", App: "orders", Instance: "o", Proxyless: true})
	if got := names(px, types.Listener); len(got) != 0 {
		t.Errorf("orders may not call ledger, yet its proxyless snapshot has %v", got)
	}
}

// TestValidateDeep: an invalid config inside an Any is found, with its
// path, and an Any of an unknown type is an error.
func TestValidateDeep(t *testing.T) {
	b := &builder{}
	bad := &listenerv3.Listener{
		Name:    "l",
		Address: socketAddress("127.0.0.1", 1),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{b.hcmFilter(&hcm.HttpConnectionManager{
			RouteSpecifier: rds("r"), // no stat_prefix
		})}}},
	}
	if err := bad.ValidateAll(); err != nil {
		t.Fatalf("the listener itself should pass ValidateAll: %v", err)
	}
	err := ValidateDeep(bad)
	if err == nil || !strings.Contains(err.Error(), "filter_chains[0].filters[0].typed_config(envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager)") ||
		!strings.Contains(err.Error(), "StatPrefix") {
		t.Errorf("err = %v, want the HttpConnectionManager's missing stat_prefix with its path", err)
	}
	unknown := &listenerv3.Listener{Name: "l", ApiListener: &listenerv3.ApiListener{ApiListener: &anypb.Any{TypeUrl: "type.googleapis.com/no.such.Type"}}}
	if err := ValidateDeep(unknown); err == nil {
		t.Error("an Any of an unknown type passed")
	}
}

// TestValidatedOnce: across rebuilds, an unchanged resource is validated
// once and a changed one again, what a rebuild no longer uses is
// forgotten, and an invalid resource is refused at every build.
func TestValidatedOnce(t *testing.T) {
	ca := newCA(t, nil)
	b := testBuilder(t, ca)
	build := func(cfg TenantConfig, known *validated) *configSet {
		t.Helper()
		bb := b.fresh()
		set := bb.envoyConfig(newView("acme", testTD, cfg, nil), "orders", 8080)
		if bb.err != nil {
			t.Fatal(bb.err)
		}
		if err := set.finish(known); err != nil {
			t.Fatal(err)
		}
		return set
	}
	count := func(set *configSet) int {
		n := 0
		for _, typ := range configTypes {
			n += len(set.items[typ])
		}
		return n
	}

	known := newValidated()
	first := build(smallTenant(t), known)
	if known.runs != count(first) {
		t.Fatalf("the first build validated %d resources, want all %d", known.runs, count(first))
	}
	for range 3 {
		known.next()
		again := build(smallTenant(t), known)
		known.forget()
		if known.runs != count(first) {
			t.Fatalf("a rebuild of the same configuration validated %d more resources, want none", known.runs-count(first))
		}
		if again.version != first.version {
			t.Fatalf("version %s, then %s", first.version, again.version)
		}
		if known.size() != count(first) {
			t.Fatalf("%d resources remembered, want %d", known.size(), count(first))
		}
	}

	// A new instance of orders changes some resources (its endpoints):
	// those, and only those, are validated again.
	cfg := smallTenant(t)
	cfg.Apps[0].Instances = append(cfg.Apps[0].Instances, tenants.Instance{ID: "orders-3", Endpoint: "http://10.0.0.3:8080"})
	known.next()
	changed := build(cfg, known)
	known.forget()
	var diff []string
	for _, typ := range configTypes {
		before := map[string]types.Resource{}
		for _, r := range first.items[typ] {
			before[cache.GetResourceName(r)] = r
		}
		for _, r := range changed.items[typ] {
			if old, ok := before[cache.GetResourceName(r)]; !ok || !proto.Equal(old, r) {
				diff = append(diff, typeName(typ)+" "+cache.GetResourceName(r))
			}
		}
	}
	if len(diff) == 0 {
		t.Fatal("a new instance changed no resource")
	}
	if got := known.runs - count(first); got != len(diff) {
		t.Errorf("the change validated %d resources, want the %d that changed: %v", got, len(diff), diff)
	}
	if known.size() != count(changed) {
		t.Errorf("%d resources remembered after the change, want the %d in use", known.size(), count(changed))
	}

	// An invalid listener is refused, every time.
	bad := &configSet{}
	bad.add(&listenerv3.Listener{
		Name:    "l",
		Address: socketAddress("127.0.0.1", 1),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{b.hcmFilter(&hcm.HttpConnectionManager{
			RouteSpecifier: rds("r"), // no stat_prefix
		})}}},
	})
	for i := range 2 {
		known.next()
		if err := bad.finish(known); err == nil || !strings.Contains(err.Error(), "LDS l: ") || !strings.Contains(err.Error(), "StatPrefix") {
			t.Errorf("build %d of an invalid listener: err = %v, want the missing stat_prefix", i+1, err)
		}
	}
}

// TestReachMatchesInvoke checks the classification of callers against
// authpolicy's own decisions on sample methods.
func TestReachMatchesInvoke(t *testing.T) {
	docs := []string{ledgerACL, auditACL, `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: mixed}
spec:
  accessControl:
    policies:
    - appId: orders
      defaultAction: deny
    - appId: audit
      defaultAction: allow
      namespace: other
    - appId: checkout
      operations:
      - {name: /orders/**, httpVerb: [GET], action: allow}
`, `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: empty}
spec: {accessControl: {}}
`}
	apps := []string{"orders", "checkout", "ledger", "audit", "nobody"}
	methods := []string{"/", "/x", "/admin/users", "/orders/1", "/v1/a/b"}
	for _, deny := range []bool{false, true} {
		for _, doc := range docs {
			set := policySet(t, "acme", deny, map[string][]string{doc: {"ledger"}})
			for _, caller := range apps {
				for _, target := range apps {
					r := reachOf(set, "acme", testTD.Name(), caller, target)
					if r == reachSome {
						continue
					}
					for _, m := range methods {
						for _, verb := range []string{"GET", "POST", "DELETE"} {
							for _, grpc := range []bool{false, true} {
								d := set.Invoke(caller, target, m, verb, grpc)
								if d.Allowed != (r == reachAll) {
									t.Errorf("deny-by-default %v, %s → %s %s %s grpc=%v: Invoke says %v (%s), reach %d",
										deny, caller, target, verb, m, grpc, d.Allowed, d.Reason, r)
								}
							}
						}
					}
				}
			}
		}
	}
	set := policySet(t, "acme", false, map[string][]string{ledgerACL: {"ledger"}, auditACL: {"audit"}})
	for _, tt := range []struct {
		caller, target string
		want           reach
	}{
		{"checkout", "ledger", reachAll},
		{"orders", "ledger", reachNone},
		{"orders", "audit", reachSome},
		{"checkout", "audit", reachAll},
		{"orders", "checkout", reachAll},
	} {
		if got := reachOf(set, "acme", testTD.Name(), tt.caller, tt.target); got != tt.want {
			t.Errorf("%s → %s: reach %d, want %d", tt.caller, tt.target, got, tt.want)
		}
	}
	if got := reachOf(nil, "acme", testTD.Name(), "a", "b"); got != reachAll {
		t.Errorf("no policy: reach %d", got)
	}
}
