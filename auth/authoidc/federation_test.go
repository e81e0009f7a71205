package authoidc_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/blockgate/blockgate/auth/authoidc"
)

const k8sDoc = `apiVersion: blockgate.io/v1alpha1
kind: FederatedIssuer
metadata: {name: k8s-prod}
spec:
  issuer: https://kubernetes.default.svc
  jwksURL: https://kubernetes.default.svc/openid/v1/jwks
  audience: blockgate
  appIDClaim: kubernetes.io.serviceaccount.name
  mapping: {orders-sa: orders}
`

func TestParseFederation(t *testing.T) {
	f, err := authoidc.ParseFederation([]byte(k8sDoc))
	if err != nil {
		t.Fatal(err)
	}
	want := authoidc.Federation{
		Name:       "k8s-prod",
		Issuer:     "https://kubernetes.default.svc",
		JWKSURL:    "https://kubernetes.default.svc/openid/v1/jwks",
		Audience:   "blockgate",
		AppIDClaim: "kubernetes.io.serviceaccount.name",
		Mapping:    map[string]string{"orders-sa": "orders"},
	}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("ParseFederation = %+v, want %+v", f, want)
	}
	if f.ClaimPath() != "kubernetes.io.serviceaccount.name" || len(f.AllowedAlgorithms()) != len(authoidc.DefaultAlgorithms) {
		t.Errorf("defaults: %q %v", f.ClaimPath(), f.AllowedAlgorithms())
	}
	// The stored form reads back the same.
	again, err := authoidc.ParseFederation(f.Document())
	if err != nil || !reflect.DeepEqual(again, want) {
		t.Fatalf("round trip: %+v, %v", again, err)
	}

	minimal, err := authoidc.ParseFederation([]byte(`{"apiVersion":"blockgate.io/v1alpha1","kind":"FederatedIssuer",
		"metadata":{"name":"gh"},"spec":{"issuer":"https://token.actions.githubusercontent.com","audience":"blockgate:acme",
		"algorithms":["RS256"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if minimal.ClaimPath() != "sub" || minimal.JWKSURL != "" || !reflect.DeepEqual(minimal.AllowedAlgorithms(), []string{"RS256"}) {
		t.Errorf("minimal = %+v", minimal)
	}
}

func TestParseFederationRefuses(t *testing.T) {
	edit := func(old, new string) string {
		if !strings.Contains(k8sDoc, old) {
			panic("test edit does not apply: " + old)
		}
		return strings.Replace(k8sDoc, old, new, 1)
	}
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"not YAML", "{", "neither YAML nor JSON"},
		{"unknown field", edit("audience: blockgate", "audience: blockgate\n  audiences: [x]"), "unknown field"},
		{"unknown metadata field", edit("metadata: {name: k8s-prod}", "metadata: {name: k8s-prod, namespace: x}"), "unknown field"},
		{"field name in another case", edit("audience: blockgate", "Audience: blockgate"), "case-sensitive"},
		{"field name twice in two cases", edit("audience: blockgate", "audience: blockgate\n  Audience: other"), "case-sensitive"},
		{"kind in another case", edit("kind:", "Kind:"), "case-sensitive"},
		{"repeated key", edit("audience: blockgate", "audience: blockgate\n  audience: other"), "repeats a key"},
		{"repeated mapping key", edit("mapping: {orders-sa: orders}", "mapping: {orders-sa: orders, orders-sa: payments}"), "repeats a key"},
		{"two documents", k8sDoc + "---\n" + k8sDoc, "more than one document"},
		{"wrong apiVersion", edit("blockgate.io/v1alpha1", "dapr.io/v1alpha1"), "apiVersion"},
		{"wrong kind", edit("kind: FederatedIssuer", "kind: Component"), "kind"},
		{"bad name", edit("name: k8s-prod", "name: K8s_Prod"), "metadata.name"},
		{"no issuer", edit("  issuer: https://kubernetes.default.svc\n", ""), "spec.issuer: is required"},
		{"http issuer", edit("issuer: https://", "issuer: http://"), "https"},
		{"issuer with a query", edit("issuer: https://kubernetes.default.svc", "issuer: https://kubernetes.default.svc?x=1"), "query"},
		{"issuer with a fragment", edit("issuer: https://kubernetes.default.svc", "issuer: https://kubernetes.default.svc#x"), "fragment"},
		{"issuer with credentials", edit("issuer: https://", "issuer: https://u:p@"), "credentials"},
		{"issuer without host", edit("issuer: https://kubernetes.default.svc", "issuer: https:///x"), "host"},
		{"relative issuer", edit("issuer: https://kubernetes.default.svc", "issuer: /x"), "https"},
		{"http JWKS URL", edit("jwksURL: https://", "jwksURL: http://"), "spec.jwksURL"},
		{"no audience", edit("  audience: blockgate\n", ""), "spec.audience is required"},
		{"unprintable audience", edit("audience: blockgate", `audience: "a\u0000b"`), "printable"},
		{"empty claim segment", edit("kubernetes.io.serviceaccount.name", "kubernetes..name"), "empty segment"},
		{"claim ending in a dot", edit("kubernetes.io.serviceaccount.name", "sub."), "empty segment"},
		{"claim with too many dots", edit("kubernetes.io.serviceaccount.name", "a.b.c.d.e.f.g.h.i.j"), "dots"},
		{"invalid mapped app id", edit("{orders-sa: orders}", "{orders-sa: 'or ders'}"), "invalid app id"},
		{"empty mapping key", edit("{orders-sa: orders}", "{'': orders}"), "claim value"},
		{"alg none", edit("  mapping:", "  algorithms: [none]\n  mapping:"), "not allowed"},
		{"HS256", edit("  mapping:", "  algorithms: [RS256, HS256]\n  mapping:"), "not allowed"},
		{"unknown alg", edit("  mapping:", "  algorithms: [RS1]\n  mapping:"), "not supported"},
		{"repeated alg", edit("  mapping:", "  algorithms: [RS256, RS256]\n  mapping:"), "twice"},
		{"too large", k8sDoc + "#" + strings.Repeat("x", 2<<20), "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := authoidc.ParseFederation([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseFederation: %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}
