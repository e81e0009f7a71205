package authpolicy

import (
	"strings"
	"testing"

	"github.com/blockgate/blockgate/tenants"
)

const (
	testTenant = tenants.ID("acme")
	testTD     = "blockgate.example"
)

func config(name, accessControl string) []byte {
	doc := "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: " + name + "\nspec:\n  tracing:\n    samplingRate: \"1\"\n"
	if accessControl != "" {
		doc += "  accessControl:\n" + indent(accessControl, "    ")
	}
	return []byte(doc)
}

func indent(s, by string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = by + l
	}
	return strings.Join(lines, "\n") + "\n"
}

func newSet(t testing.TB, deny bool, records ...Record) *Set {
	t.Helper()
	s, err := NewSet(testTenant, testTD, deny, records)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Access control documents for the table; each applies to the app "orders".
var invokeConfigs = map[string]string{
	// Dapr's documented scenarios, with namespace and trust domain this
	// tenant's and this gateway's.
	"scenario1": `
defaultAction: deny
trustDomain: blockgate.example
policies:
- appId: app1
  defaultAction: allow
  trustDomain: blockgate.example
  namespace: acme
`,
	"scenario2": `
defaultAction: deny
policies:
- appId: app1
  defaultAction: deny
  namespace: acme
  operations:
  - name: /op1
    httpVerb: ['*']
    action: allow
`,
	"scenario3": `
defaultAction: deny
policies:
- appId: app1
  defaultAction: deny
  operations:
  - name: /op1
    httpVerb: ['POST', 'PUT']
    action: allow
- appId: app2
  defaultAction: deny
  operations:
  - name: /op2
    action: allow
`,
	"scenario4": `
defaultAction: allow
policies:
- appId: app1
  defaultAction: allow
  operations:
  - name: /op1/*
    httpVerb: ['*']
    action: deny
`,
	// daprd's own unit test list (pkg/acl/acl_test.go), namespaces mapped
	// onto this tenant.
	"daprd": `
defaultAction: deny
policies:
- appId: app1
  defaultAction: allow
  operations:
  - {name: /op1, httpVerb: [POST, GET], action: allow}
  - {name: /op2, httpVerb: ['*'], action: deny}
- appId: app2
  defaultAction: deny
  operations:
  - {name: /op3/a/*, httpVerb: [PUT, GET], action: allow}
  - {name: /op4, httpVerb: [POST], action: allow}
- appId: app3
  operations:
  - {name: /op5, httpVerb: [POST], action: allow}
- appId: app4
  defaultAction: deny
  operations:
  - {name: /op6, action: allow}
  - {name: /op7/a/b/*, action: allow}
  - {name: /op7/a/b/c/f, action: allow}
  - {name: /op7/a/b*, action: allow}
  - {name: /op7/c/**, action: allow}
`,
	"mismatch": `
defaultAction: deny
policies:
- appId: app1
  defaultAction: allow
  namespace: default
- appId: app2
  defaultAction: allow
  trustDomain: public
- appId: app3
  defaultAction: allow
  namespace: acme
  trustDomain: BlockGate.Example
`,
	"specific": `
defaultAction: allow
policies:
- appId: web
  operations:
  - {name: /api, httpVerb: ['*'], action: allow}
  - {name: /api/internal, httpVerb: ['*'], action: deny}
  - {name: /a/**, httpVerb: ['*'], action: deny}
  - {name: /a/b, httpVerb: ['*'], action: allow}
  - {name: /c/b, httpVerb: ['*'], action: allow}
  - {name: /c/**, httpVerb: ['*'], action: deny}
  - {name: /d/*, httpVerb: ['*'], action: allow}
  - {name: /d/**, httpVerb: ['*'], action: deny}
  - {name: /e, httpVerb: ['*'], action: deny}
  - {name: /e/*, httpVerb: ['*'], action: allow}
  - {name: /f/x*, httpVerb: ['*'], action: deny}
  - {name: /f/*, httpVerb: ['*'], action: allow}
  - {name: /orders/**, httpVerb: [GET], action: allow}
  - {name: /orders/admin, httpVerb: [DELETE], action: deny}
  - {name: /, httpVerb: ['*'], action: deny}
`,
	"public": `
defaultAction: deny
policies:
- appId: web
  defaultAction: deny
  operations:
  - {name: /public/**, httpVerb: ['*'], action: allow}
  - {name: /pkg.Public/*, action: allow}
`,
	"nodefault": `
policies:
- appId: web
  operations:
  - {name: /x, httpVerb: [GET], action: allow}
`,
	"empty":           `{}`,
	"onlydefault":     `defaultAction: allow`,
	"onlydefaultdeny": `defaultAction: deny`,
}

func TestInvoke(t *testing.T) {
	type tc struct {
		name     string
		config   string // key of invokeConfigs; "" for none, "noac" for a Configuration without accessControl
		deny     bool   // the tenant's switch
		caller   string
		op, verb string
		grpc     bool
		want     bool
		rule     string // a substring of Decision.Rule, if set
	}
	tests := []tc{
		// No configuration, the switch.
		{name: "no configuration allows", caller: "web", op: "anything", verb: "GET", want: true},
		{name: "no configuration with deny by default", deny: true, caller: "web", op: "anything", verb: "GET", rule: "deny-by-default"},
		{name: "no accessControl allows", config: "noac", caller: "web", op: "x", want: true},
		{name: "no accessControl with deny by default", config: "noac", deny: true, caller: "web", op: "x"},
		{name: "empty accessControl allows", config: "empty", caller: "web", op: "x", want: true},
		{name: "empty accessControl with deny by default", config: "empty", deny: true, caller: "web", op: "x"},
		{name: "explicit allow beats deny by default", config: "onlydefault", deny: true, caller: "web", op: "x", want: true},
		{name: "explicit deny", config: "onlydefaultdeny", caller: "web", op: "x"},
		{name: "policies without defaultAction deny other callers", config: "nodefault", caller: "other", op: "x", verb: "GET", rule: "not given"},
		{name: "policies without defaultAction: operation allows", config: "nodefault", caller: "web", op: "x", verb: "GET", want: true},
		{name: "policies without defaultAction: other verb falls to global deny", config: "nodefault", caller: "web", op: "x", verb: "POST"},

		// Dapr's scenarios.
		{name: "scenario1 app1 any method", config: "scenario1", caller: "app1", op: "anything/at/all", verb: "DELETE", want: true},
		{name: "scenario1 other app", config: "scenario1", caller: "app9", op: "x", verb: "GET"},
		{name: "scenario2 op1 any verb", config: "scenario2", caller: "app1", op: "op1", verb: "PATCH", want: true},
		{name: "scenario2 other method", config: "scenario2", caller: "app1", op: "op2", verb: "GET"},
		{name: "scenario3 app1 POST op1", config: "scenario3", caller: "app1", op: "op1", verb: "POST", want: true},
		{name: "scenario3 app1 PUT op1", config: "scenario3", caller: "app1", op: "/op1", verb: "put", want: true},
		{name: "scenario3 app1 GET op1", config: "scenario3", caller: "app1", op: "op1", verb: "GET"},
		{name: "scenario3 app2 gRPC op2", config: "scenario3", caller: "app2", op: "op2", grpc: true, want: true},
		{name: "scenario3 app2 HTTP op2: no httpVerb never matches HTTP", config: "scenario3", caller: "app2", op: "op2", verb: "POST"},
		{name: "scenario3 app1 gRPC op1: verbs ignored", config: "scenario3", caller: "app1", op: "op1", grpc: true, want: true},
		{name: "scenario4 op1/x denied", config: "scenario4", caller: "app1", op: "op1/x", verb: "GET"},
		{name: "scenario4 op1 itself denied (zero segments)", config: "scenario4", caller: "app1", op: "op1", verb: "GET"},
		{name: "scenario4 op1/x/y allowed (one segment only)", config: "scenario4", caller: "app1", op: "op1/x/y", verb: "GET", want: true},
		{name: "scenario4 other app", config: "scenario4", caller: "app2", op: "op1/x", verb: "GET", want: true},

		// daprd's acl_test.go cases.
		{name: "daprd: no matching app", config: "daprd", caller: "appX", op: "op1", verb: "POST"},
		{name: "daprd: operation not in policy uses app default", config: "daprd", caller: "app1", op: "opX", verb: "POST", want: true},
		{name: "daprd: HTTP is case-insensitive", config: "daprd", caller: "app1", op: "Op2", verb: "POST"},
		{name: "daprd: verb not listed uses app default", config: "daprd", caller: "app2", op: "op4", verb: "PUT"},
		{name: "daprd: no app default and verb not listed uses global", config: "daprd", caller: "app3", op: "op5", verb: "PUT"},
		{name: "daprd: verb wildcard", config: "daprd", caller: "app1", op: "op2", verb: "PUT"},
		{name: "daprd: specific verb", config: "daprd", caller: "app2", op: "op4", verb: "POST", want: true},
		{name: "daprd: leading slash", config: "daprd", caller: "app2", op: "/op4", verb: "POST", want: true},
		{name: "daprd: /* matches its parent", config: "daprd", caller: "app2", op: "/op3/a", verb: "PUT", want: true},
		{name: "daprd: /* one segment", config: "daprd", caller: "app2", op: "/op3/a/b", verb: "PUT", want: true},
		{name: "daprd: /* non-matching prefix", config: "daprd", caller: "app2", op: "/op3/b/b", verb: "PUT"},
		{name: "daprd: gRPC is case-sensitive", config: "daprd", caller: "app2", op: "/OP4", grpc: true},
		{name: "daprd: gRPC ignores verbs", config: "daprd", caller: "app2", op: "op4", grpc: true, want: true},
		{name: "daprd: gRPC operation without verbs", config: "daprd", caller: "app4", op: "op6", grpc: true, want: true},
		{name: "daprd: /* full match", config: "daprd", caller: "app4", op: "op7/a/b/c", grpc: true, want: true},
		{name: "daprd: /* not two segments", config: "daprd", caller: "app2", op: "/op3/a/b/c", verb: "PUT", rule: "policies[1].defaultAction"},
		// daprd denies op7/a/b/c/d only because its matcher follows the
		// rule listed first ("/op7/a/b/*", a dead end) and never tries
		// "/op7/a/b*", which covers it; listed the other way round, daprd
		// allows it too. The most specific rule decides here, in any order.
		{name: "daprd: order-dependent in daprd, covered by b*", config: "daprd", caller: "app4", op: "op7/a/b/c/d", grpc: true, want: true, rule: "(/op7/a/b*)"},
		{name: "daprd: literal beside /*", config: "daprd", caller: "app4", op: "op7/a/b/c/f", grpc: true, want: true},
		{name: "daprd: segment glob", config: "daprd", caller: "app4", op: "op7/a/bc", grpc: true, want: true},
		{name: "daprd: ** any depth", config: "daprd", caller: "app4", op: "op7/c/d/e", grpc: true, want: true},
		{name: "daprd: ** zero segments", config: "daprd", caller: "app4", op: "op7/c", grpc: true, want: true},
		{name: "daprd: a plain name covers what is under it", config: "daprd", caller: "app4", op: "op6/x/y", grpc: true, want: true},
		{name: "daprd: a plain name is not a string prefix", config: "daprd", caller: "app4", op: "op6x", grpc: true},
		{name: "daprd: a segment glob covers what is under it", config: "daprd", caller: "app4", op: "op7/a/bc/d", grpc: true, want: true},

		// Namespace and trust domain.
		{name: "policy for another namespace never matches", config: "mismatch", caller: "app1", op: "x", verb: "GET", rule: "spec.accessControl.defaultAction"},
		{name: "policy for another trust domain never matches", config: "mismatch", caller: "app2", op: "x", verb: "GET"},
		{name: "policy naming this tenant and trust domain (any case)", config: "mismatch", caller: "app3", op: "x", verb: "GET", want: true},
		{name: "no verified caller gets the global default", config: "scenario1", caller: "", op: "x", verb: "GET"},
		{name: "no verified caller, global allow", config: "scenario4", caller: "", op: "op1/x", verb: "GET", want: true},

		// Most specific rule wins, whatever the order in the file.
		{name: "longer literal beats a covering name", config: "specific", caller: "web", op: "api/internal/x", verb: "GET", rule: "(/api/internal)"},
		{name: "covering name", config: "specific", caller: "web", op: "api/other", verb: "GET", want: true, rule: "(/api)"},
		{name: "literal beats ** listed before it", config: "specific", caller: "web", op: "a/b", verb: "GET", want: true, rule: "(/a/b)"},
		{name: "** below the literal", config: "specific", caller: "web", op: "a/c", verb: "GET", rule: "(/a/**)"},
		{name: "literal beats ** listed after it", config: "specific", caller: "web", op: "c/b", verb: "GET", want: true},
		{name: "a literal segment beats ** on it", config: "specific", caller: "web", op: "c/b/z", verb: "GET", want: true, rule: "(/c/b)"},
		{name: "** beats a covering name", config: "specific", caller: "web", op: "a/b/z", verb: "GET", want: true, rule: "(/a/b)"},
		{name: "** where nothing else matches", config: "specific", caller: "web", op: "c/x/z", verb: "GET", rule: "(/c/**)"},
		{name: "/* beats /**", config: "specific", caller: "web", op: "d/x", verb: "GET", want: true, rule: "(/d/*)"},
		{name: "/** takes what /* cannot", config: "specific", caller: "web", op: "d/x/y", verb: "GET"},
		{name: "exact name beats /* on the parent", config: "specific", caller: "web", op: "e", verb: "GET", rule: "(/e)"},
		{name: "/* beats a covering name below it", config: "specific", caller: "web", op: "e/x", verb: "GET", want: true},
		{name: "segment glob beats /*", config: "specific", caller: "web", op: "f/xy", verb: "GET", rule: "(/f/x*)"},
		{name: "/* where the glob does not match", config: "specific", caller: "web", op: "f/yy", verb: "GET", want: true},
		{name: "only rules naming the verb compete", config: "specific", caller: "web", op: "orders/admin", verb: "GET", want: true, rule: "(/orders/**)"},
		{name: "the verb-specific rule", config: "specific", caller: "web", op: "orders/admin", verb: "DELETE", rule: "(/orders/admin)"},
		{name: "root names the empty method only", config: "specific", caller: "web", op: "", verb: "GET", rule: "(/)"},
		{name: "root does not cover everything", config: "specific", caller: "web", op: "zzz", verb: "GET", want: true},

		// Normalization: nothing climbs out of an allowed prefix.
		{name: "inside the prefix", config: "public", caller: "web", op: "public/docs/a", verb: "GET", want: true},
		{name: "dot-dot out of the prefix", config: "public", caller: "web", op: "public/../admin", verb: "GET"},
		{name: "encoded slash and dot-dot", config: "public", caller: "web", op: "public/..%2Fadmin", verb: "GET"},
		{name: "all encoded", config: "public", caller: "web", op: "public%2F..%2F..%2Fadmin", verb: "GET"},
		{name: "encoded dots", config: "public", caller: "web", op: "public/%2e%2e/admin", verb: "GET"},
		{name: "dot-dot that stays inside", config: "public", caller: "web", op: "public/a/../b", verb: "GET", want: true},
		{name: "dot segments", config: "public", caller: "web", op: "./public/./x", verb: "GET", want: true},
		{name: "double slashes", config: "public", caller: "web", op: "//public//x", verb: "GET", want: true},
		{name: "climbing above the root", config: "public", caller: "web", op: "../../public/x", verb: "GET", want: true},
		{name: "a prefix of the name is not under it", config: "public", caller: "web", op: "publicity", verb: "GET"},
		{name: "HTTP case folding", config: "public", caller: "web", op: "PUBLIC/X", verb: "GET", want: true},
		{name: "double encoding stays one segment", config: "public", caller: "web", op: "public/a%252F..%252F..%252Fadmin", verb: "GET", want: true},
		{name: "double-encoded slash is not a separator", config: "public", caller: "web", op: "public%252Fx", verb: "GET"},
		{name: "backslash refused", config: "public", caller: "web", op: `public/..\admin`, verb: "GET", rule: "normalization"},
		{name: "encoded backslash refused", config: "public", caller: "web", op: "public/..%5Cadmin", verb: "GET"},
		{name: "NUL refused", config: "public", caller: "web", op: "public/%00", verb: "GET"},
		{name: "encoded question mark refused", config: "public", caller: "web", op: "public/a%3Fb", verb: "GET"},
		{name: "bad escape refused", config: "public", caller: "web", op: "public/%zz", verb: "GET"},
		{name: "invalid method refused even without configuration", caller: "web", op: "a\x01", verb: "GET"},
		{name: "gRPC full method", config: "public", caller: "web", op: "/pkg.Public/Get", grpc: true, want: true},
		{name: "gRPC dot-dot", config: "public", caller: "web", op: "/pkg.Public/../pkg.Admin/Get", grpc: true},
		{name: "gRPC is not percent-decoded", config: "public", caller: "web", op: "/pkg.Public/a%2Fb", grpc: true, want: true},
		{name: "gRPC case", config: "public", caller: "web", op: "/pkg.public/Get", grpc: true},
		{name: "empty verb is POST", config: "scenario3", caller: "app1", op: "op1", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var records []Record
			switch tt.config {
			case "":
			case "noac":
				records = append(records, Record{Name: "noac", Apps: []string{"orders"}, Document: config("noac", "")})
			default:
				ac, ok := invokeConfigs[tt.config]
				if !ok {
					t.Fatalf("no config %s", tt.config)
				}
				records = append(records, Record{Name: tt.config, Apps: []string{"orders"}, Document: config(tt.config, ac)})
			}
			s := newSet(t, tt.deny, records...)
			d := s.Invoke(tt.caller, "orders", tt.op, tt.verb, tt.grpc)
			if d.Allowed != tt.want {
				t.Errorf("Invoke(%q, %q %q grpc=%v) = %+v, want allowed=%v", tt.caller, tt.verb, tt.op, tt.grpc, d, tt.want)
			}
			if tt.rule != "" && !strings.Contains(d.Rule, tt.rule) {
				t.Errorf("Rule = %q, want it to contain %q", d.Rule, tt.rule)
			}
			if d.Reason == "" {
				t.Error("no reason")
			}
		})
	}
}

func TestInvokeReason(t *testing.T) {
	s := newSet(t, false, Record{Name: "cfg", Apps: []string{"orders"}, Document: config("cfg", `
defaultAction: allow
policies:
- appId: web
  operations:
  - {name: /admin/**, httpVerb: [POST], action: deny}
`)})
	d := s.Invoke("web", "orders", "admin/users", "post", false)
	if want := "access control policy of app orders denies POST /admin/users for app web"; d.Allowed || d.Reason != want {
		t.Errorf("got %+v, want reason %q", d, want)
	}
	if want := "cfg: spec.accessControl.policies[0].operations[0] (/admin/**)"; d.Rule != want {
		t.Errorf("Rule = %q, want %q", d.Rule, want)
	}
	d = s.Invoke("web", "orders", "/pkg.S/M", "", true)
	if want := "access control policy of app orders allows /pkg.S/M for app web"; !d.Allowed || d.Reason != want {
		t.Errorf("got %+v, want reason %q", d, want)
	}
}

// TestConfigurationApplies checks which Configuration a callee gets: its
// own, else the tenant's default, else none.
func TestConfigurationApplies(t *testing.T) {
	denyAll := config("deny-all", "defaultAction: deny")
	allowAll := config("allow-all", "defaultAction: allow")
	s := newSet(t, false,
		Record{Name: "deny-all", Document: denyAll},
		Record{Name: "allow-all", Apps: []string{"open", "public"}, Document: allowAll},
	)
	for app, want := range map[string]bool{"open": true, "public": true, "orders": false, "anyone": false} {
		if d := s.Invoke("web", app, "x", "GET", false); d.Allowed != want {
			t.Errorf("invoking %s: %+v, want allowed=%v", app, d, want)
		}
	}
	if s.For("open").compiled.config != "allow-all" || s.For("orders").compiled.config != "deny-all" {
		t.Error("For picked the wrong configuration")
	}

	s = newSet(t, false, Record{Name: "allow-all", Apps: []string{"open"}, Document: allowAll})
	if d := s.Invoke("web", "orders", "x", "GET", false); !d.Allowed {
		t.Errorf("an app without configuration and no default: %+v", d)
	}

	conflicts := map[string][]Record{
		"two defaults": {{Name: "a", Document: denyAll}, {Name: "b", Document: allowAll}},
		"one app twice": {
			{Name: "a", Apps: []string{"x", "orders"}, Document: denyAll},
			{Name: "b", Apps: []string{"orders"}, Document: allowAll},
		},
		"bad document": {{Name: "a", Document: []byte("kind: Nope")}},
	}
	for name, records := range conflicts {
		if _, err := NewSet(testTenant, testTD, false, records); err == nil {
			t.Errorf("%s: NewSet accepted it", name)
		}
	}
}

func TestNormalizeOperation(t *testing.T) {
	tests := []struct {
		in   string
		grpc bool
		want string // "" for an error
	}{
		{"", false, "/"},
		{"a/b", false, "/a/b"},
		{"/a//b/", false, "/a/b"},
		{"a/./b/../c", false, "/a/c"},
		{"../../x", false, "/x"},
		{"a%2Fb", false, "/a/b"},
		{"a%20b", false, "/a b"},
		{"a+b", false, "/a+b"},
		{"a%252F", false, "/a%2F"},
		{"a%2", false, ""},
		{"a%3Fb", false, ""},
		{"a%23b", false, ""},
		{"a%00", false, ""},
		{"a\x7f", false, ""},
		{`a\b`, false, ""},
		{"/pkg.Svc/Method", true, "/pkg.Svc/Method"},
		{"/pkg.Svc/a%2Fb", true, "/pkg.Svc/a%2Fb"},
		{"/pkg.Svc/../x", true, "/x"},
	}
	for _, tt := range tests {
		got, err := NormalizeOperation(tt.in, tt.grpc)
		if (err != nil) != (tt.want == "") || got != tt.want {
			t.Errorf("NormalizeOperation(%q, %v) = %q, %v; want %q", tt.in, tt.grpc, got, err, tt.want)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"b*", "bc", true},
		{"b*", "b", true},
		{"b*", "ab", false},
		{"*c", "abc", true},
		{"a*d", "abcd", true},
		{"a*d", "abce", false},
		{"ab*.a", "abc.a", true},
		{"*a*b*", "xxaxxbxx", true},
		{"*a*b*", "xxbxxaxx", false},
		{"a**b", "ab", true},
		{"*", "", true},
	}
	for _, tt := range tests {
		if got := globMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}
