package authpolicy

import (
	"strings"
	"testing"
)

// FuzzParseAccessControl: Parse never panics, and whatever it accepts can
// be evaluated, warned about and stored as a record.
func FuzzParseAccessControl(f *testing.F) {
	for _, ac := range invokeConfigs {
		f.Add(config("seed", ac))
	}
	f.Add([]byte(`{"apiVersion":"dapr.io/v1alpha1","kind":"Configuration","spec":{"accessControl":{"policies":[{"appId":"a","operations":[{"name":"/x/**","httpVerb":["*"],"action":"deny"}]}]}}}`))
	f.Add([]byte("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nspec:\n  accessControl:\n    policies:\n    - appId: a\n      operations:\n      - {name: '/v*/a*b*/*', action: allow}\n"))
	f.Add([]byte("---\n---\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := Parse(doc)
		if err != nil {
			return
		}
		c.Warnings(testTenant, testTD)
		rec := Record{Name: "fuzz", Document: doc}
		if c.Name != "" {
			rec.Name = c.Name
		}
		if _, err := rec.Validate(); err != nil && rec.Name == c.Name && c.Name != "" {
			// Only the name may make a parsed document an invalid record.
			if !strings.Contains(err.Error(), "name") {
				t.Fatalf("Parse accepted what Validate refuses: %v", err)
			}
		}
		s, err := NewSet(testTenant, testTD, false, []Record{{Name: "fuzz", Document: doc}})
		if err != nil {
			t.Fatalf("NewSet refused a parsed document: %v", err)
		}
		for _, op := range []string{"", "x", "/a/b/c", "v1/ab/x", "../x", "A%2Fb"} {
			for _, grpc := range []bool{false, true} {
				s.Invoke("a", "orders", op, "GET", grpc)
			}
		}
	})
}

// denyAllConfigs deny everything, each in its own way; whatever is
// invoked, no call may be allowed.
var denyAllConfigs = []string{
	`defaultAction: deny`,
	`
policies:
- appId: web
  operations:
  - {name: /**, httpVerb: ['*'], action: deny}
`,
	`
defaultAction: deny
policies:
- appId: web
  defaultAction: deny
  operations:
  - {name: /, httpVerb: ['*'], action: deny}
  - {name: /*, httpVerb: ['*'], action: deny}
  - {name: /**, httpVerb: ['*'], action: deny}
  - {name: /a*, httpVerb: [GET, POST], action: deny}
  - {name: /public, action: deny}
`,
}

// FuzzInvokeDecision: Invoke never panics; a deny-all configuration never
// allows; an allowed call under an allow-list for /public/** lies under
// /public once normalized, whatever the encoding.
func FuzzInvokeDecision(f *testing.F) {
	for _, s := range []string{"", "/", "public", "public/../admin", "public/..%2Fadmin", "%2e%2e/public", "PUBLIC/x", "public%2F..%2Fx", `public\..\x`, "public/\x00", "//public//x/../y", "/pkg.S/M"} {
		f.Add("web", s, "GET", false)
		f.Add("web", s, "", true)
	}
	f.Add("", "x", "post", false)
	denyAll := make([]*Set, len(denyAllConfigs))
	for i, ac := range denyAllConfigs {
		denyAll[i] = newSet(f, false, Record{Name: "deny-all", Apps: []string{"orders"}, Document: config("deny-all", ac)})
	}
	allowList := newSet(f, false, Record{Name: "public", Apps: []string{"orders"}, Document: config("public", `
defaultAction: deny
policies:
- appId: web
  operations:
  - {name: /public/**, httpVerb: ['*'], action: allow}
`)})
	nothing := newSet(f, true)
	f.Fuzz(func(t *testing.T, caller, op, verb string, grpc bool) {
		for i, s := range denyAll {
			if d := s.Invoke(caller, "orders", op, verb, grpc); d.Allowed {
				t.Fatalf("deny-all configuration %d allowed %q %q from %q (grpc=%v): %+v", i, verb, op, caller, grpc, d)
			}
		}
		if d := nothing.Invoke(caller, "orders", op, verb, grpc); d.Allowed {
			t.Fatalf("deny-by-default without configuration allowed %q: %+v", op, d)
		}
		d := allowList.Invoke(caller, "orders", op, verb, grpc)
		if !d.Allowed {
			return
		}
		norm, err := NormalizeOperation(op, grpc)
		if err != nil {
			t.Fatalf("allowed %q, which does not normalize: %v", op, err)
		}
		// HTTP methods match case-insensitively, gRPC ones exactly (and
		// the rule's verbs do not matter to gRPC calls).
		under := norm
		if !grpc {
			under = strings.ToLower(norm)
		}
		if under != "/public" && !strings.HasPrefix(under, "/public/") {
			t.Fatalf("allowed %q (normalized %q), which is not under /public", op, norm)
		}
		for _, seg := range strings.Split(norm, "/") {
			if seg == ".." || seg == "." {
				t.Fatalf("normalized %q still has a dot segment", norm)
			}
		}
		sent := norm
		if !grpc {
			sent = escapePath(norm)
		}
		if again, err := NormalizeOperation(sent, grpc); err != nil || again != norm {
			t.Fatalf("normalizing %q again (escaped) gives %q, %v", norm, again, err)
		}
	})
}

// escapePath escapes a normalized path as a transport would send it on.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = strings.NewReplacer("%", "%25", "/", "%2F", " ", "%20").Replace(s)
	}
	return strings.Join(segs, "/")
}
