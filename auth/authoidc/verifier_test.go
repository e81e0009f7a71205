package authoidc_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/blockgate/blockgate/auth/authoidc"
	"github.com/blockgate/blockgate/tenants"
)

func TestVerifyAccepts(t *testing.T) {
	e := newEnv(t, authoidc.Config{VerifiedCacheSize: -1})
	orders := tenants.Principal{Tenant: "acme", AppID: "orders", TokenID: "oidc:j-1"}
	tests := []struct {
		name string
		tok  func(t *testing.T) string
		want tenants.Principal
	}{
		{"RS256 mapped through the Kubernetes claim", func(t *testing.T) string {
			return e.token(t, "acme-gw", nil)
		}, orders},
		{"aud as a list holding the audience", func(t *testing.T) string {
			return e.token(t, []string{"acme-gw", "someone-else"}, nil)
		}, orders},
		{"PS256 with the RSA key", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodPS256, rsa1(), "rsa-1", e.claims("acme-gw"), nil)
		}, orders},
		{"ES256", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, ec1(), "ec-1", e.claims("acme-gw"), nil)
		}, orders},
		{"EdDSA", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodEdDSA, ed1(), "ed-1", e.claims("acme-gw"), nil)
		}, orders},
		{"no kid, one key fits the algorithm", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, ec1(), "", e.claims("acme-gw"), nil)
		}, orders},
		{"expired within the leeway", func(t *testing.T) string {
			return e.token(t, "acme-gw", func(c jwt.MapClaims) { c["exp"] = e.clock.Now().Unix() - 10 })
		}, orders},
		{"no jti", func(t *testing.T) string {
			return e.token(t, "acme-gw", func(c jwt.MapClaims) { delete(c, "jti") })
		}, tenants.Principal{Tenant: "acme", AppID: "orders"}},
		{"another tenant: sub as the app id, explicit JWKS URL", func(t *testing.T) string {
			return e.token(t, "globex-gw", func(c jwt.MapClaims) { c["sub"] = "billing" })
		}, tenants.Principal{Tenant: "globex", AppID: "billing", TokenID: "oidc:j-1"}},
		{"pinned to ES256", func(t *testing.T) string {
			c := e.claims("initech-gw")
			c["sub"] = "payroll"
			return sign(t, jwt.SigningMethodES256, ec1(), "ec-1", c, nil)
		}, tenants.Principal{Tenant: "initech", AppID: "payroll", TokenID: "oidc:j-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantPrincipal(t, e, tt.tok(t), tt.want)
		})
	}

	c := wantPrincipal(t, e, e.token(t, "acme-gw", nil), orders)
	if c.Federation != "k8s-prod" || c.Issuer != e.is.URL() || c.Subject != "system:serviceaccount:shop:orders-sa" ||
		!c.ExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
		t.Errorf("claims = %+v", c)
	}
	p, err := e.v.Verify(t.Context(), e.token(t, "acme-gw", nil))
	if err != nil || p != orders {
		t.Errorf("Verify = %+v, %v", p, err)
	}
}

// TestTenantIsolation: one issuer trusted by several tenants, each token
// acts only in the tenant whose audience it carries.
func TestTenantIsolation(t *testing.T) {
	e := newEnv(t, authoidc.Config{})
	// The same workload identity, minted for each audience.
	edit := func(c jwt.MapClaims) { c["sub"] = "orders" }
	wantPrincipal(t, e, e.token(t, "acme-gw", edit), tenants.Principal{Tenant: "acme", AppID: "orders", TokenID: "oidc:j-1"})
	wantPrincipal(t, e, e.token(t, "globex-gw", edit), tenants.Principal{Tenant: "globex", AppID: "orders", TokenID: "oidc:j-1"})

	tests := []struct {
		name string
		aud  any
		want error
	}{
		{"audiences of two tenants", []string{"acme-gw", "globex-gw"}, authoidc.ErrAudience},
		{"audiences of two tenants, reversed", []string{"globex-gw", "acme-gw"}, authoidc.ErrAudience},
		{"an audience nobody federated", "initech", authoidc.ErrAudience},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.v.Verify(t.Context(), e.token(t, tt.aud, edit))
			if !errors.Is(err, tt.want) || !errors.Is(err, authoidc.ErrInvalid) {
				t.Fatalf("Verify: %v, want %v", err, tt.want)
			}
		})
	}

	// Tenant acme's token carries acme's mapping: it never reaches globex,
	// whose federation knows nothing of acme's service accounts.
	c, err := e.v.VerifyClaims(t.Context(), e.token(t, "acme-gw", nil))
	if err != nil || c.Tenant != "acme" {
		t.Fatalf("acme token: %+v, %v", c, err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	e := newEnv(t, authoidc.Config{})
	now := e.clock.Now().Unix()
	pubDER, err := x509.MarshalPKIXPublicKey(&rsa1().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := e.claims("acme-gw")
		if edit != nil {
			edit(c)
		}
		return c
	}
	rs := func(edit func(jwt.MapClaims)) func(t *testing.T) string {
		return func(t *testing.T) string { return e.token(t, "acme-gw", edit) }
	}

	tests := []struct {
		name string
		tok  func(t *testing.T) string
		want error
	}{
		{"malformed", func(*testing.T) string { return "a.b.c" }, authoidc.ErrInvalid},
		{"empty", func(*testing.T) string { return "" }, authoidc.ErrInvalid},
		{"too long", func(*testing.T) string { return strings.Repeat("a", 20000) }, authoidc.ErrInvalid},
		{"no iss", rs(func(c jwt.MapClaims) { delete(c, "iss") }), authoidc.ErrInvalid},
		{"wrong issuer", rs(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }), authoidc.ErrUnknownIssuer},
		{"issuer with a trailing slash", rs(func(c jwt.MapClaims) { c["iss"] = e.is.URL() + "/" }), authoidc.ErrUnknownIssuer},
		{"wrong audience", rs(func(c jwt.MapClaims) { c["aud"] = "blockgate" }), authoidc.ErrAudience},
		{"no audience", rs(func(c jwt.MapClaims) { delete(c, "aud") }), authoidc.ErrAudience},
		{"expired", rs(func(c jwt.MapClaims) { c["exp"] = now - 3600 }), authoidc.ErrExpired},
		{"no exp", rs(func(c jwt.MapClaims) { delete(c, "exp") }), authoidc.ErrInvalid},
		{"nbf in the future", rs(func(c jwt.MapClaims) { c["nbf"] = now + 3600 }), authoidc.ErrNotYetValid},
		{"iat in the future", rs(func(c jwt.MapClaims) { c["iat"] = now + 3600 }), authoidc.ErrNotYetValid},
		{"exp not a number", rs(func(c jwt.MapClaims) { c["exp"] = "tomorrow" }), authoidc.ErrInvalid},
		{"alg none", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "rsa-1", claims(nil), nil)
		}, authoidc.ErrInvalid},
		{"HS256 keyed with the public key PEM", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, pubPEM, "rsa-1", claims(nil), nil)
		}, authoidc.ErrInvalid},
		{"HS256 keyed with the public key DER", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, pubDER, "rsa-1", claims(nil), nil)
		}, authoidc.ErrInvalid},
		{"RS256 where only ES256 is allowed", func(t *testing.T) string {
			c := e.claims("initech-gw")
			c["sub"] = "payroll"
			return sign(t, jwt.SigningMethodRS256, rsa1(), "rsa-1", c, nil)
		}, authoidc.ErrInvalid},
		{"signed by another key under a published kid", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodRS256, rsaForge(), "rsa-1", claims(nil), nil)
		}, authoidc.ErrInvalid},
		{"signature of another token", func(t *testing.T) string {
			good := strings.Split(e.token(t, "acme-gw", nil), ".")
			other := strings.Split(e.token(t, "acme-gw", func(c jwt.MapClaims) { c["jti"] = "j-2" }), ".")
			return good[0] + "." + good[1] + "." + other[2]
		}, authoidc.ErrInvalid},
		{"ES256 naming the RSA key", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, ec1(), "rsa-1", claims(nil), nil)
		}, authoidc.ErrUnknownKey},
		{"kid not a string", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodRS256, rsa1(), "", claims(nil), map[string]any{"kid": 7})
		}, authoidc.ErrInvalid},
		{"crit header", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodRS256, rsa1(), "rsa-1", claims(nil), map[string]any{"crit": []string{"exp"}})
		}, authoidc.ErrInvalid},
		{"unmapped claim value", rs(func(c jwt.MapClaims) {
			c["kubernetes.io"].(map[string]any)["serviceaccount"] = map[string]any{"name": "payments-sa"}
		}), authoidc.ErrUnmapped},
		{"claim missing", rs(func(c jwt.MapClaims) { delete(c, "kubernetes.io") }), authoidc.ErrMissingClaim},
		{"claim not a string", rs(func(c jwt.MapClaims) {
			c["kubernetes.io"].(map[string]any)["serviceaccount"] = map[string]any{"name": 5}
		}), authoidc.ErrMissingClaim},
		{"invalid app id from the claim", func(t *testing.T) string {
			return e.token(t, "globex-gw", nil) // sub system:serviceaccount:shop:orders-sa
		}, authoidc.ErrInvalidAppID},
		{"empty app id claim", func(t *testing.T) string {
			return e.token(t, "globex-gw", func(c jwt.MapClaims) { c["sub"] = "" })
		}, authoidc.ErrMissingClaim},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tt.tok(t)
			p, err := e.v.Verify(t.Context(), tok)
			if err == nil {
				t.Fatalf("Verify accepted the token as %+v", p)
			}
			if !errors.Is(err, tt.want) || !errors.Is(err, authoidc.ErrInvalid) {
				t.Fatalf("Verify: %v, want %v", err, tt.want)
			}
			if p != (tenants.Principal{}) {
				t.Fatalf("Verify returned %+v with an error", p)
			}
			checkSafe(t, err)
		})
	}
}

// TestNoKID: a token without kid is accepted while exactly one of the
// issuer's keys fits its algorithm, and refused once several do.
func TestNoKID(t *testing.T) {
	e := newEnv(t, authoidc.Config{VerifiedCacheSize: -1})
	tok := sign(t, jwt.SigningMethodRS256, rsa1(), "", e.claims("acme-gw"), nil)
	wantPrincipal(t, e, tok, tenants.Principal{Tenant: "acme", AppID: "orders", TokenID: "oidc:j-1"})
	e.is.publish("rsa-2", &rsa2().PublicKey, "")
	if err := e.v.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.v.Verify(t.Context(), tok); !errors.Is(err, authoidc.ErrUnknownKey) ||
		!strings.Contains(err.Error(), "kid header is required") {
		t.Fatalf("no kid among two RSA keys: %v", err)
	}
}

// checkSafe fails if an error message shows key material, where keys are
// fetched from or how fetching them failed. (The token's own iss may
// appear: the client wrote it.)
func checkSafe(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	for _, secret := range []string{b64(rsa1().N.Bytes())[:16], "/jwks", "well-known", "BEGIN", "503", "status", "deadline"} {
		if strings.Contains(msg, secret) {
			t.Errorf("error message %q shows %q", msg, secret)
		}
	}
}

// TestKeyRotation: a key the issuer adds is found by the refetch an unknown
// kid causes, once the rate limit allows; a key it withdraws stops
// verifying at the next fetch, cached or not.
func TestKeyRotation(t *testing.T) {
	e := newEnv(t, authoidc.Config{})
	old := e.token(t, "acme-gw", nil)
	wantPrincipal(t, e, old, tenants.Principal{Tenant: "acme", AppID: "orders", TokenID: "oidc:j-1"})
	if n := e.is.jwksHits.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches after the first token, want 1", n)
	}

	// The issuer rotates: it publishes rsa-2 and signs with it.
	e.is.publish("rsa-2", &rsa2().PublicKey, "RS256")
	rotated := sign(t, jwt.SigningMethodRS256, rsa2(), "rsa-2", e.claims("acme-gw"), nil)
	// Within MinFetchInterval of the last fetch the new kid is unknown.
	if _, err := e.v.Verify(t.Context(), rotated); !errors.Is(err, authoidc.ErrUnknownKey) {
		t.Fatalf("new kid right after a fetch: %v, want ErrUnknownKey", err)
	}
	if n := e.is.jwksHits.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches, want 1: the rate limit must hold", n)
	}
	e.clock.Advance(31 * time.Second)
	wantPrincipal(t, e, rotated, tenants.Principal{Tenant: "acme", AppID: "orders", TokenID: "oidc:j-1"})
	if n := e.is.jwksHits.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches, want 2", n)
	}
	// The old token still verifies (and is cached as verified).
	wantPrincipal(t, e, old, tenants.Principal{Tenant: "acme", AppID: "orders", TokenID: "oidc:j-1"})

	// The issuer withdraws rsa-1: after a refresh its tokens are refused,
	// though the cache held one.
	e.is.withdraw("rsa-1")
	if err := e.v.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.v.Verify(t.Context(), old); !errors.Is(err, authoidc.ErrUnknownKey) {
		t.Fatalf("withdrawn key: %v, want ErrUnknownKey", err)
	}
	wantPrincipal(t, e, rotated, tenants.Principal{Tenant: "acme", AppID: "orders", TokenID: "oidc:j-1"})
}

// TestUnknownKIDFlood: forged kids arriving together cost one fetch, and no
// more until MinFetchInterval has passed.
func TestUnknownKIDFlood(t *testing.T) {
	e := newEnv(t, authoidc.Config{})
	wantPrincipal(t, e, e.token(t, "acme-gw", nil), tenants.Principal{Tenant: "acme", AppID: "orders", TokenID: "oidc:j-1"})
	e.clock.Advance(time.Minute)
	e.is.delay.Store(int64(50 * time.Millisecond)) // so that the flood overlaps the fetch
	before := e.is.jwksHits.Load()

	flood := func(n int) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				tok := sign(t, jwt.SigningMethodRS256, rsaForge(), fmt.Sprintf("forged-%d", i), e.claims("acme-gw"), nil)
				if _, err := e.v.Verify(t.Context(), tok); !errors.Is(err, authoidc.ErrUnknownKey) {
					t.Errorf("forged kid %d: %v, want ErrUnknownKey", i, err)
				}
			})
		}
		wg.Wait()
	}
	flood(200)
	if n := e.is.jwksHits.Load() - before; n != 1 {
		t.Fatalf("a flood of forged kids caused %d JWKS fetches, want 1", n)
	}
	e.clock.Advance(10 * time.Second)
	flood(50)
	if n := e.is.jwksHits.Load() - before; n != 1 {
		t.Fatalf("a second flood within the interval caused %d more JWKS fetches", n-1)
	}
	e.clock.Advance(30 * time.Second)
	flood(50)
	if n := e.is.jwksHits.Load() - before; n != 2 {
		t.Fatalf("after the interval: %d JWKS fetches, want 2", n)
	}
	// Unknown issuers never cause a fetch.
	e.clock.Advance(time.Minute)
	tok := sign(t, jwt.SigningMethodRS256, rsaForge(), "x", jwt.MapClaims{"iss": "https://evil.example", "aud": "acme-gw"}, nil)
	if _, err := e.v.Verify(t.Context(), tok); !errors.Is(err, authoidc.ErrUnknownIssuer) {
		t.Fatalf("unknown issuer: %v", err)
	}
	if n := e.is.jwksHits.Load() - before; n != 2 {
		t.Fatalf("an unknown issuer caused a fetch")
	}
}

// TestIssuerDown: cached keys keep working while the issuer is down, and a
// verifier that never got them says so clearly.
func TestIssuerDown(t *testing.T) {
	e := newEnv(t, authoidc.Config{VerifiedCacheSize: -1})
	tok := e.token(t, "acme-gw", nil)
	wantPrincipal(t, e, tok, tenants.Principal{Tenant: "acme", AppID: "orders", TokenID: "oidc:j-1"})

	e.is.down.Store(true)
	err := e.v.Refresh(t.Context())
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Refresh with the issuer down: %v, want an error naming the status", err)
	}
	// Cached keys keep verifying.
	wantPrincipal(t, e, tok, tenants.Principal{Tenant: "acme", AppID: "orders", TokenID: "oidc:j-1"})
	e.clock.Advance(time.Minute)
	wantPrincipal(t, e, tok, tenants.Principal{Tenant: "acme", AppID: "orders", TokenID: "oidc:j-1"})
	// A new kid cannot be fetched: refused, with the cause for the log.
	rotated := sign(t, jwt.SigningMethodRS256, rsa2(), "rsa-2", e.claims("acme-gw"), nil)
	_, err = e.v.Verify(t.Context(), rotated)
	if !errors.Is(err, authoidc.ErrUnknownKey) {
		t.Fatalf("new kid with the issuer down: %v", err)
	}
	fed, cause := authoidc.LogDetail(err)
	if fed != "k8s-prod" || cause == nil || !strings.Contains(cause.Error(), "503") {
		t.Fatalf("LogDetail = %q, %v", fed, cause)
	}
	checkSafe(t, err)

	// A node that starts while the issuer is down has no keys at all.
	fresh := authoidc.New(e.cfg, nil)
	fresh.SetFederations(e.federations())
	_, err = fresh.Verify(t.Context(), tok)
	if !errors.Is(err, authoidc.ErrKeysUnavailable) || !errors.Is(err, authoidc.ErrInvalid) {
		t.Fatalf("no keys: %v, want ErrKeysUnavailable", err)
	}
	checkSafe(t, err)
	hits := e.is.discoHits.Load() + e.is.jwksHits.Load()
	if _, err := fresh.Verify(t.Context(), tok); !errors.Is(err, authoidc.ErrKeysUnavailable) {
		t.Fatalf("no keys again: %v", err)
	}
	if n := e.is.discoHits.Load() + e.is.jwksHits.Load(); n != hits {
		t.Fatalf("a second token within the interval fetched again")
	}

	// The issuer comes back: once the interval has passed, keys arrive.
	e.is.down.Store(false)
	e.clock.Advance(31 * time.Second)
	if p, err := fresh.Verify(t.Context(), tok); err != nil || p.Tenant != "acme" {
		t.Fatalf("after recovery: %+v, %v", p, err)
	}
}

func TestFetchProblems(t *testing.T) {
	tests := []struct {
		name      string
		cfg       authoidc.Config
		setup     func(is *issuer)
		wantCause string
		wantIs    error
	}{
		{"discovery states another issuer", authoidc.Config{}, func(is *issuer) {
			is.set(func(is *issuer) { is.statedIssuer = "https://impostor.example" })
		}, "states issuer", nil},
		{"discovery points at plain http", authoidc.Config{}, func(is *issuer) {
			is.set(func(is *issuer) { is.jwksURI = strings.Replace(is.srv.URL, "https", "http", 1) + "/jwks" })
		}, "https", nil},
		{"JWKS over the size cap", authoidc.Config{MaxDocumentBytes: 200}, nil, "larger than 200 bytes", nil},
		{"JWKS not a key set", authoidc.Config{}, func(is *issuer) {
			is.set(func(is *issuer) { is.raw = []byte(`{"kty":"RSA"}`) })
		}, "no keys member", nil},
		{"JWKS not JSON", authoidc.Config{}, func(is *issuer) {
			is.set(func(is *issuer) { is.raw = []byte(`<html>`) })
		}, "not a JWK set", nil},
		{"JWKS too slow", authoidc.Config{FetchTimeout: 100 * time.Millisecond}, func(is *issuer) {
			is.delay.Store(int64(5 * time.Second))
		}, "", context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.cfg)
			if tt.setup != nil {
				tt.setup(e.is)
			}
			_, err := e.v.Verify(t.Context(), e.token(t, "acme-gw", nil))
			if !errors.Is(err, authoidc.ErrKeysUnavailable) {
				t.Fatalf("Verify: %v, want ErrKeysUnavailable", err)
			}
			_, cause := authoidc.LogDetail(err)
			if cause == nil || !strings.Contains(cause.Error(), tt.wantCause) {
				t.Fatalf("cause %v, want it to mention %q", cause, tt.wantCause)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Fatalf("%v does not match %v", err, tt.wantIs)
			}
			checkSafe(t, err)
		})
	}
}

// TestVerifiedCache: a cached token still expires, and a change of
// federations drops what the cache knew.
func TestVerifiedCache(t *testing.T) {
	e := newEnv(t, authoidc.Config{})
	tok := e.token(t, "acme-gw", nil)
	for range 3 {
		wantPrincipal(t, e, tok, tenants.Principal{Tenant: "acme", AppID: "orders", TokenID: "oidc:j-1"})
	}
	e.clock.Advance(time.Hour + time.Minute)
	if _, err := e.v.Verify(t.Context(), tok); !errors.Is(err, authoidc.ErrExpired) {
		t.Fatalf("cached token past exp: %v", err)
	}

	e.clock.Advance(-time.Hour)
	tok = e.token(t, "acme-gw", nil)
	wantPrincipal(t, e, tok, tenants.Principal{Tenant: "acme", AppID: "orders", TokenID: "oidc:j-1"})
	// The tenant drops the mapping entry: the cached verdict must go too.
	fs := e.federations()
	fs[0].Mapping = map[string]string{"payments-sa": "payments"}
	e.v.SetFederations(fs)
	if _, err := e.v.Verify(t.Context(), tok); !errors.Is(err, authoidc.ErrUnmapped) {
		t.Fatalf("after the mapping changed: %v, want ErrUnmapped", err)
	}
	// The federation goes away altogether.
	e.v.SetFederations(fs[1:])
	if _, err := e.v.Verify(t.Context(), tok); !errors.Is(err, authoidc.ErrAudience) {
		t.Fatalf("after the federation went: %v, want ErrAudience", err)
	}
	e.v.SetFederations(nil)
	if _, err := e.v.Verify(t.Context(), tok); !errors.Is(err, authoidc.ErrUnknownIssuer) {
		t.Fatalf("with no federations: %v, want ErrUnknownIssuer", err)
	}
}

func TestSetFederations(t *testing.T) {
	e := newEnv(t, authoidc.Config{ReservedIssuers: []string{"https://gateway.example"}})
	base := e.federations()[1] // globex/k8s
	dup := base
	dup.Tenant, dup.Name = "evil", "steal"
	reserved := base
	reserved.Tenant, reserved.Name, reserved.Issuer = "evil", "gateway", "https://gateway.example"
	noTenant := base
	noTenant.Tenant, noTenant.Audience = "", "other"
	invalid := base
	invalid.Tenant, invalid.Audience, invalid.Algorithms = "evil", "other-2", []string{"HS256"}

	// Two federations with one issuer and audience: both are left out,
	// rather than either being picked.
	e.v.SetFederations([]authoidc.Federation{base, dup, reserved, noTenant, invalid})
	if e.v.HasIssuer("https://gateway.example") {
		t.Error("a federation claimed a reserved issuer")
	}
	if e.v.HasIssuer(e.is.URL()) {
		t.Error("federations sharing an issuer and audience, or invalid ones, were kept")
	}
	tok := e.token(t, "globex-gw", func(c jwt.MapClaims) { c["sub"] = "billing" })
	if _, err := e.v.Verify(t.Context(), tok); !errors.Is(err, authoidc.ErrUnknownIssuer) {
		t.Fatalf("Verify: %v", err)
	}

	e.v.SetFederations([]authoidc.Federation{base})
	if !e.v.HasIssuer(e.is.URL()) || e.v.HasIssuer("https://other.example") {
		t.Error("HasIssuer")
	}
	wantPrincipal(t, e, tok, tenants.Principal{Tenant: "globex", AppID: "billing", TokenID: "oidc:j-1"})
	// Setting the same federations again keeps the keys: no fetch.
	hits := e.is.jwksHits.Load()
	e.v.SetFederations([]authoidc.Federation{base})
	wantPrincipal(t, e, tok, tenants.Principal{Tenant: "globex", AppID: "billing", TokenID: "oidc:j-1"})
	if e.is.jwksHits.Load() != hits {
		t.Error("SetFederations dropped the keys of an issuer it kept")
	}
}

func TestPeekIssuer(t *testing.T) {
	e := newEnv(t, authoidc.Config{})
	tests := []struct {
		name   string
		tok    string
		want   string
		wantOK bool
	}{
		{"federated token", e.token(t, "acme-gw", nil), e.is.URL(), true},
		{"no iss", e.token(t, "acme-gw", func(c jwt.MapClaims) { delete(c, "iss") }), "", false},
		{"iss not a string", e.token(t, "acme-gw", func(c jwt.MapClaims) { c["iss"] = 1 }), "", false},
		{"not a JWT", "dapr-api-token", "", false},
		{"bad base64", "a.!!.c", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss, ok := authoidc.PeekIssuer(tt.tok)
			if iss != tt.want || ok != tt.wantOK {
				t.Errorf("PeekIssuer = %q, %v; want %q, %v", iss, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestRun: Run fetches the keys of a federation as it appears, and returns
// when its context ends.
func TestRun(t *testing.T) {
	is := newIssuer(t)
	is.publish("rsa-1", &rsa1().PublicKey, "")
	v := authoidc.New(authoidc.Config{HTTPClient: is.srv.Client()}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()

	v.SetFederations([]authoidc.Federation{{Tenant: "acme", Name: "k8s", Issuer: is.URL(), Audience: "acme-gw"}})
	eventually(t, "Run fetches the new issuer's keys", func() bool { return is.jwksHits.Load() > 0 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// eventually polls cond until it holds, failing the test after a while.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func BenchmarkVerify(b *testing.B) {
	e := newEnv(b, authoidc.Config{})
	uncached := authoidc.New(authoidc.Config{HTTPClient: e.cfg.HTTPClient, Now: e.clock.Now, VerifiedCacheSize: -1}, nil)
	uncached.SetFederations(e.federations())
	toks := map[string]string{
		"RS256": e.token(b, "acme-gw", nil),
		"ES256": sign(b, jwt.SigningMethodES256, ec1(), "ec-1", e.claims("acme-gw"), nil),
	}
	forged := sign(b, jwt.SigningMethodRS256, rsaForge(), "forged", e.claims("acme-gw"), nil)
	for _, v := range []*authoidc.Verifier{e.v, uncached} {
		if _, err := v.Verify(b.Context(), toks["RS256"]); err != nil { // fetches the keys
			b.Fatal(err)
		}
		if _, err := v.Verify(b.Context(), forged); err == nil { // spends the refetch
			b.Fatal("forged kid accepted")
		}
	}
	for _, bb := range []struct {
		name string
		v    *authoidc.Verifier
	}{{"cached", e.v}, {"uncached", uncached}} {
		for _, alg := range []string{"RS256", "ES256"} {
			tok := toks[alg]
			b.Run(alg+"/"+bb.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := bb.v.Verify(b.Context(), tok); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(alg+"/"+bb.name+"/parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := bb.v.Verify(b.Context(), tok); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
	b.Run("unknown kid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.v.Verify(b.Context(), forged); err == nil {
				b.Fatal("accepted")
			}
		}
	})
	b.Run("unknown issuer", func(b *testing.B) {
		tok := e.token(b, "acme-gw", func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.v.Verify(b.Context(), tok); err == nil {
				b.Fatal("accepted")
			}
		}
	})
}
