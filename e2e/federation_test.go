package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// oidcIssuer is a local OIDC provider: discovery and a JWKS over https,
// and tokens signed with its RSA key.
type oidcIssuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
	kid string
}

func newOIDCIssuer(t *testing.T) *oidcIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &oidcIssuer{key: key, kid: "k1"}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": is.srv.URL, "jwks_uri": is.srv.URL + "/keys"})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "kid": is.kid, "use": "sig", "alg": "RS256",
			"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})
	is.srv = httptest.NewTLSServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

// caFile writes the issuer's TLS certificate for --federation-ca-file.
func (is *oidcIssuer) caFile(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "issuer-ca.pem")
	der := is.srv.Certificate().Raw
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (is *oidcIssuer) token(t *testing.T, aud, sub string, ttl time.Duration) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": is.srv.URL, "aud": aud, "sub": sub, "iat": time.Now().Unix(), "exp": time.Now().Add(ttl).Unix(),
	})
	tok.Header["kid"] = is.kid
	s, err := tok.SignedString(is.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFederatedIdentity: a tenant trusts a local OIDC issuer; a token from
// it acts as the mapped app of that tenant only, over HTTP and gRPC, and
// is refused for any other audience, subject, tenant or when expired.
func TestFederatedIdentity(t *testing.T) {
	is := newOIDCIssuer(t)
	g, _ := privateGateway(t, "--federation-ca-file", is.caFile(t))
	ctx := t.Context()
	a := g.admin()
	native := newTenant(t, g, "fed-a", "ci", stateComponent)
	newTenant(t, g, "fed-b", "ci", stateComponent)

	fed := func(tenant, aud string) string {
		return `apiVersion: blockgate.io/v1alpha1
kind: FederatedIssuer
metadata: {name: ci-cluster}
spec:
  issuer: ` + is.srv.URL + `
  audience: ` + aud + `
  mapping:
    "system:serviceaccount:build:ci": ci
`
	}
	if _, err := a.ApplyFederation(ctx, "fed-a", []byte(fed("fed-a", "blockgate-fed-a"))); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ApplyFederation(ctx, "fed-b", []byte(fed("fed-b", "blockgate-fed-b"))); err != nil {
		t.Fatal(err)
	}
	// The same issuer and audience cannot be claimed by a second tenant.
	if _, err := a.ApplyFederation(ctx, "fed-b", []byte(strings.Replace(fed("fed-b", "blockgate-fed-a"), "ci-cluster", "steal", 1))); err == nil {
		t.Fatal("tenant fed-b claimed fed-a's audience")
	}

	tokA := is.token(t, "blockgate-fed-a", "system:serviceaccount:build:ci", time.Hour)
	waitUntil(t, "the federation reaches the gateway", func() bool {
		st, _, _ := do(t, g, tokA, "GET", "/v1.0/metadata", nil)
		return st == 200
	})
	// The federated token acts as app ci of fed-a: what it writes, fed-a's
	// own app token reads, and fed-b's does not.
	if st, _, body := do(t, g, tokA, "POST", "/v1.0/state/statestore", strings.NewReader(`[{"key":"who","value":"federated"}]`)); st != 204 {
		t.Fatalf("save with the federated token: %d %s", st, body)
	}
	if st, _, body := do(t, g, native, "GET", "/v1.0/state/statestore/who", nil); st != 200 || string(body) != `"federated"` {
		t.Fatalf("fed-a reads: %d %s", st, body)
	}
	tokB := is.token(t, "blockgate-fed-b", "system:serviceaccount:build:ci", time.Hour)
	if st, _, body := do(t, g, tokB, "GET", "/v1.0/state/statestore/who", nil); st != 204 {
		t.Fatalf("fed-b's ci saw fed-a's state: %d %s", st, body)
	}
	// Over gRPC with the Go SDK, too.
	if item, err := goClient(t, g, tokA).GetState(ctx, "statestore", "who", nil); err != nil || string(item.Value) != `"federated"` {
		t.Fatalf("SDK with the federated token: %v %v", item, err)
	}

	for name, tok := range map[string]string{
		"unknown audience": is.token(t, "someone-else", "system:serviceaccount:build:ci", time.Hour),
		"unmapped subject": is.token(t, "blockgate-fed-a", "system:serviceaccount:build:intruder", time.Hour),
		"expired":          is.token(t, "blockgate-fed-a", "system:serviceaccount:build:ci", -time.Hour),
	} {
		if st, _, body := do(t, g, tok, "GET", "/v1.0/metadata", nil); st != http.StatusUnauthorized {
			t.Errorf("%s: %d %s, want 401", name, st, body)
		}
	}
	// Deleting the federation stops its tokens.
	if err := a.DeleteFederation(ctx, "fed-a", "ci-cluster"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the deleted federation is refused", func() bool {
		st, _, _ := do(t, g, tokA, "GET", "/v1.0/metadata", nil)
		return st == http.StatusUnauthorized
	})
}
