package authpolicy

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	c, err := Parse([]byte(`
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: appconfig
  namespace: default
  labels: {team: a}
spec:
  tracing:
    samplingRate: "1"
    zipkin: {endpointAddress: "http://zipkin:9411/api/v2/spans"}
  features:
  - {name: SomeFeature, enabled: true}
  mtls: {enabled: true}
  accessControl:
    defaultAction: DENY
    trustDomain: public
    policies:
    - appId: app1
      defaultAction: Allow
      trustDomain: public
      namespace: default
      operations:
      - name: op1
        httpVerb: [post, '*', POST]
        action: allow
      - name: /op2//x/
        action: deny
`))
	if err != nil {
		t.Fatal(err)
	}
	want := AccessControl{
		DefaultAction: Deny,
		TrustDomain:   "public",
		Policies: []Policy{{
			AppID: "app1", DefaultAction: Allow, TrustDomain: "public", Namespace: "default",
			Operations: []Operation{
				{Name: "/op1", HTTPVerbs: []string{"POST", "*"}, Action: Allow},
				{Name: "/op2/x", Action: Deny},
			},
		}},
	}
	ac := c.AccessControl
	if c.Name != "appconfig" || ac == nil || ac.DefaultAction != want.DefaultAction || ac.TrustDomain != want.TrustDomain ||
		len(ac.Policies) != 1 {
		t.Fatalf("parsed %+v", c)
	}
	p := ac.Policies[0]
	if p.AppID != "app1" || p.DefaultAction != Allow || p.Namespace != "default" || p.TrustDomain != "public" || len(p.Operations) != 2 ||
		p.Operations[0].Name != "/op1" || !slices.Equal(p.Operations[0].HTTPVerbs, []string{"POST", "*"}) ||
		p.Operations[1].Name != "/op2/x" || p.Operations[1].Action != Deny {
		t.Fatalf("parsed policy %+v", p)
	}

	// JSON is YAML.
	if _, err := Parse([]byte(`{"apiVersion":"dapr.io/v1alpha1","kind":"Configuration","metadata":{"name":"x"},"spec":{"accessControl":{"defaultAction":"allow"}}}`)); err != nil {
		t.Errorf("JSON: %v", err)
	}
	// No spec, or a null accessControl, is no access control.
	for _, doc := range []string{
		"apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: x}\n",
		"apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: x}\nspec:\n  accessControl:\n",
	} {
		c, err := Parse([]byte(doc))
		if err != nil || c.AccessControl != nil {
			t.Errorf("Parse(%q) = %+v, %v", doc, c, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	head := "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: cfg}\n"
	ac := func(s string) string { return head + "spec:\n  accessControl:\n" + indent(s, "    ") }
	tests := []struct {
		name, doc string
		want      string // a substring of the error
	}{
		{"not YAML", "{{{", "neither YAML nor JSON"},
		{"repeated key", head + "kind: Configuration\n", "repeats a key"},
		{"two documents", head + "---\n" + head, "more than one document"},
		{"wrong apiVersion", strings.Replace(head, "v1alpha1", "v1", 1), `apiVersion is "dapr.io/v1"`},
		{"wrong kind", strings.Replace(head, "Configuration", "Component", 1), `kind is "Component"`},
		{"unknown top-level field", head + "scopes: [a]\n", "unknown field scopes"},
		{"unknown metadata field", strings.Replace(head, "{name: cfg}", "{name: cfg, nme: x}", 1), "unknown field metadata.nme"},
		{"misspelt spec field", head + "spec:\n  acessControl: {}\n", "unknown field spec.acessControl"},
		{"field in the wrong case", head + "spec:\n  AccessControl: {}\n", "unknown field spec.AccessControl"},
		{"unknown accessControl field", ac("defaultActon: deny"), "unknown field spec.accessControl.defaultActon"},
		{"accessControl not an object", head + "spec:\n  accessControl: [a]\n", "spec.accessControl: want an object"},
		{"bad global action", ac("defaultAction: permit"), `spec.accessControl.defaultAction is "permit"; want allow or deny`},
		{"action not a string", ac("defaultAction: true"), "spec.accessControl.defaultAction: want a string"},
		{"policies not a list", ac("policies: {appId: a}"), "spec.accessControl.policies: want a list"},
		{"app instead of appId", ac("policies:\n- app: web"), "unknown field spec.accessControl.policies[0].app: did you mean appId?"},
		{"missing appId", ac("policies:\n- defaultAction: allow"), "spec.accessControl.policies[0].appId is required"},
		{"invalid appId", ac("policies:\n- appId: 'a b'"), "spec.accessControl.policies[0].appId"},
		{"bad policy action", ac("policies:\n- appId: web\n  defaultAction: nope"), `spec.accessControl.policies[0].defaultAction is "nope"`},
		{"duplicate policy", ac("policies:\n- appId: web\n- appId: x\n- appId: web"), "spec.accessControl.policies[2]: appId web with namespace \"\" repeats policies[0]"},
		{"unknown operation field", ac("policies:\n- appId: web\n  operations:\n  - {name: /a, verbs: [GET], action: allow}"), "unknown field spec.accessControl.policies[0].operations[0].verbs"},
		{"httpVerbs", ac("policies:\n- appId: web\n  operations:\n  - {name: /a, httpVerbs: [GET], action: allow}"), "did you mean httpVerb?"},
		{"missing name", ac("policies:\n- appId: web\n  operations:\n  - {action: allow}"), "operations[0].name is required"},
		{"missing action", ac("policies:\n- appId: web\n  operations:\n  - {name: /a}"), "spec.accessControl.policies[0].operations[0].action is required"},
		{"bad operation action", ac("policies:\n- appId: web\n  operations:\n  - {name: /a, action: yes}"), "operations[0].action: want a string"},
		{"bad verb", ac("policies:\n- appId: web\n  operations:\n  - {name: /a, httpVerb: [FETCH], action: allow}"), `operations[0].httpVerb[0] "FETCH" is not an HTTP verb`},
		{"verb not a list", ac("policies:\n- appId: web\n  operations:\n  - {name: /a, httpVerb: GET, action: allow}"), "operations[0].httpVerb: want a list"},
		{"duplicate operation", ac("policies:\n- appId: web\n  operations:\n  - {name: /a, action: allow}\n  - {name: /A/, action: deny}"), `operations[1].name "/A" repeats operations[0]`},
		{"star in the middle", ac("policies:\n- appId: web\n  operations:\n  - {name: /a/*/b, action: allow}"), `operations[0].name "/a/*/b" has "*" before its end`},
		{"double star in the middle", ac("policies:\n- appId: web\n  operations:\n  - {name: /a/**/b, action: allow}"), `has "**" before its end`},
		{"triple star", ac("policies:\n- appId: web\n  operations:\n  - {name: /a/***, action: allow}"), `has the segment "***"`},
		{"dot-dot in a name", ac("policies:\n- appId: web\n  operations:\n  - {name: /a/../b, action: allow}"), `has a ".." segment`},
		{"escaped name", ac("policies:\n- appId: web\n  operations:\n  - {name: /a%2Fb, action: allow}"), "write the name unescaped"},
		{"question mark in a name", ac("policies:\n- appId: web\n  operations:\n  - {name: '/a?b', action: allow}"), `contains '?'`},
		{"backslash in a name", ac("policies:\n- appId: web\n  operations:\n  - {name: '/a\\b', action: allow}"), "backslash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatalf("accepted:\n%s", tt.doc)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	c, err := Parse(config("cfg", `
defaultAction: deny
trustDomain: public
policies:
- appId: a
  namespace: default
  trustDomain: public
- appId: b
  namespace: acme
- appId: b
- appId: c
  operations:
  - {name: /x, action: allow}
  - {name: /y, httpVerb: [GET], action: allow}
`))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(c.Warnings(testTenant, testTD), "\n")
	for _, want := range []string{
		`spec.accessControl.trustDomain "public" is ignored`,
		`policies[0] never applies: namespace "default" is not this tenant (acme)`,
		`policies[0] never applies: trustDomain "public" is not the gateway's (blockgate.example)`,
		`policies[2] is shadowed by policies[1]`,
		`policies[3].operations[0] (/x) has no httpVerb: it applies to gRPC calls only`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "operations[1]") {
		t.Errorf("a warning about a fine operation:\n%s", got)
	}
	clean, _ := Parse(config("cfg", "defaultAction: deny\npolicies:\n- {appId: a, namespace: acme, trustDomain: blockgate.example}"))
	if w := clean.Warnings(testTenant, testTD); len(w) != 0 {
		t.Errorf("warnings for a clean configuration: %v", w)
	}
	noac, _ := Parse(config("cfg", ""))
	if w := noac.Warnings(testTenant, testTD); len(w) != 1 {
		t.Errorf("no warning for a configuration without accessControl: %v", w)
	}
}

func TestRecordValidate(t *testing.T) {
	doc := config("cfg", "defaultAction: deny")
	tests := []struct {
		name string
		rec  Record
		ok   bool
	}{
		{"default", Record{Name: "cfg", Document: doc}, true},
		{"for apps", Record{Name: "cfg", Apps: []string{"a", "b.c"}, Document: doc}, true},
		{"bad name", Record{Name: "Cfg", Document: doc}, false},
		{"name differs from metadata.name", Record{Name: "other", Document: doc}, false},
		{"no metadata.name", Record{Name: "other", Document: []byte("apiVersion: dapr.io/v1alpha1\nkind: Configuration\n")}, true},
		{"bad app", Record{Name: "cfg", Apps: []string{"a b"}, Document: doc}, false},
		{"app twice", Record{Name: "cfg", Apps: []string{"a", "a"}, Document: doc}, false},
		{"bad document", Record{Name: "cfg", Document: []byte("kind: Configuration")}, false},
	}
	for _, tt := range tests {
		_, err := tt.rec.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("%s: Validate = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v does not wrap ErrInvalid", tt.name, err)
		}
	}
	js, err := Record{Name: "cfg", Document: doc}.ToJSON()
	if err != nil || !strings.HasPrefix(string(js), `{"apiVersion":"dapr.io/v1alpha1"`) {
		t.Errorf("ToJSON = %s, %v", js, err)
	}
}
