package authoidc_test

import (
	"crypto/x509"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/blockgate/blockgate/auth/authoidc"
	"github.com/blockgate/blockgate/tenants"
)

// FuzzVerify feeds arbitrary strings to Verify: it must never panic, and it
// must refuse everything but the genuine tokens the test signed, with an
// error that matches ErrInvalid. The seeds are near misses of those tokens.
func FuzzVerify(f *testing.F) {
	e := newEnv(f, authoidc.Config{})
	genuine := map[string]bool{}
	for _, tok := range []string{
		e.token(f, "acme-gw", nil),
		sign(f, jwt.SigningMethodES256, ec1(), "ec-1", e.claims("acme-gw"), nil),
		e.token(f, "globex-gw", func(c jwt.MapClaims) { c["sub"] = "billing" }),
	} {
		genuine[tok] = true
		f.Add(tok)
	}
	good := e.token(f, "acme-gw", nil)
	parts := strings.Split(good, ".")
	enc := b64
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsa1().PublicKey)
	for _, s := range []string{
		"",
		".",
		"..",
		"a.b.c",
		parts[0] + "." + parts[1] + ".",
		parts[0] + "." + parts[1],
		parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1],
		good + ".",
		good + "=",
		enc([]byte(`{"alg":"none","kid":"rsa-1"}`)) + "." + parts[1] + ".",
		enc([]byte(`{"alg":"HS256","kid":"rsa-1"}`)) + "." + parts[1] + "." + parts[2],
		enc([]byte(`{"alg":"RS256"}`)) + "." + parts[1] + "." + parts[2],
		enc([]byte(`{"alg":"RS256","kid":["rsa-1"]}`)) + "." + parts[1] + "." + parts[2],
		enc([]byte(`{"alg":"RS256","kid":"rsa-1","crit":["b64"]}`)) + "." + parts[1] + "." + parts[2],
		parts[0] + "." + enc([]byte(`{"iss":"`+e.is.URL()+`","aud":"acme-gw","exp":1e300}`)) + "." + parts[2],
		parts[0] + "." + enc([]byte(`{"iss":"`+e.is.URL()+`","aud":["acme-gw","globex-gw"]}`)) + "." + parts[2],
		parts[0] + "." + enc([]byte(`{"iss":"`+e.is.URL()+`","aud":{"a":1},"exp":"x"}`)) + "." + parts[2],
		parts[0] + "." + enc([]byte(`[]`)) + "." + parts[2],
		sign(f, jwt.SigningMethodHS256, pubDER, "rsa-1", e.claims("acme-gw"), nil),
		sign(f, jwt.SigningMethodRS256, rsaForge(), "rsa-1", e.claims("acme-gw"), nil),
	} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, s string) {
		p, err := e.v.Verify(t.Context(), s)
		if err == nil {
			if !genuine[s] {
				t.Fatalf("Verify accepted %q as %+v", s, p)
			}
			return
		}
		if !errors.Is(err, authoidc.ErrInvalid) {
			t.Fatalf("Verify(%q) error %v does not match ErrInvalid", s, err)
		}
		if p != (tenants.Principal{}) {
			t.Fatalf("Verify(%q) returned %+v with an error", s, p)
		}
	})
}

// FuzzParseFederation feeds arbitrary documents to ParseFederation: it
// must never panic, whatever it accepts must validate, and the stored form
// of what it accepts must read back the same.
func FuzzParseFederation(f *testing.F) {
	f.Add([]byte(k8sDoc))
	for _, s := range []string{
		"",
		"{}",
		"null",
		"---\n---\n",
		`{"apiVersion":"blockgate.io/v1alpha1","kind":"FederatedIssuer","metadata":{"name":"a"},"spec":{"issuer":"https://x","audience":"b"}}`,
		"apiVersion: blockgate.io/v1alpha1\nkind: FederatedIssuer\nmetadata: {name: a}\nspec: {issuer: 'https://x/p', audience: b, appIDClaim: a.b, mapping: {x: y}, algorithms: [EdDSA]}\n",
		"apiVersion: blockgate.io/v1alpha1\nkind: FederatedIssuer\nmetadata: {name: a}\nspec: {issuer: 'https://[::1]:8443', audience: b, mapping: {1: 2}}\n",
		"spec: &a {issuer: *a}",
		"spec: {mapping: {a: b, a: c}}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		fed, err := authoidc.ParseFederation(doc)
		if err != nil {
			return
		}
		if err := fed.Validate(); err != nil {
			t.Fatalf("ParseFederation accepted a federation that does not validate: %v", err)
		}
		again, err := authoidc.ParseFederation(fed.Document())
		if err != nil {
			t.Fatalf("the stored form does not parse: %v\n%s", err, fed.Document())
		}
		if !reflect.DeepEqual(fed, again) {
			t.Fatalf("round trip changed the federation:\n%+v\n%+v", fed, again)
		}
	})
}
