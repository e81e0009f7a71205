package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// goClient connects the official Go SDK to g with token.
func goClient(t *testing.T, g *gateway, token string) *dapr.GRPCClient {
	t.Helper()
	c, err := dapr.NewClientWithAddressContext(t.Context(), g.grpcAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	gc := c.(*dapr.GRPCClient)
	gc.WithAuthToken(token)
	return gc
}

func TestTenantIsolation(t *testing.T) {
	g := sharedGateway(t)
	tokA := newTenant(t, g, "iso-a", "app1", stateComponent)
	tokB := newTenant(t, g, "iso-b", "app1", stateComponent)
	a, b := goClient(t, g, tokA), goClient(t, g, tokB)
	ctx := t.Context()

	if err := a.SaveState(ctx, "statestore", "secret", []byte("A's data"), nil); err != nil {
		t.Fatal(err)
	}
	// Same store name, same app id, same key: B sees nothing of A's.
	got, err := b.GetState(ctx, "statestore", "secret", nil)
	if err != nil || len(got.Value) != 0 {
		t.Fatalf("tenant B read %q (err %v)", got.Value, err)
	}
	bulk, err := b.GetBulkState(ctx, "statestore", []string{"secret"}, nil, 1)
	if err != nil || len(bulk) != 1 || len(bulk[0].Value) != 0 {
		t.Fatalf("tenant B bulk read %+v (err %v)", bulk, err)
	}
	q, err := b.QueryStateAlpha1(ctx, "statestore", `{"filter":{}}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range q.Results {
		if r.Key == "secret" {
			t.Fatalf("tenant B's query returned A's key")
		}
	}
	// B deleting and overwriting the key leaves A's value alone.
	if err := b.DeleteState(ctx, "statestore", "secret", nil); err != nil {
		t.Fatal(err)
	}
	if err := b.SaveState(ctx, "statestore", "secret", []byte("B's data"), nil); err != nil {
		t.Fatal(err)
	}
	got, err = a.GetState(ctx, "statestore", "secret", nil)
	if err != nil || string(got.Value) != "A's data" {
		t.Fatalf("tenant A now reads %q (err %v)", got.Value, err)
	}
	// HTTP as well.
	if status, _, body := do(t, g, tokB, "GET", "/v1.0/state/statestore/secret", nil); status != 200 || string(body) != "B's data" {
		t.Fatalf("B over HTTP: %d %q", status, body)
	}
	// B's metadata names B's app and components only.
	md, err := b.GetMetadata(ctx)
	if err != nil || md.ID != "app1" || len(md.RegisteredComponents) != 1 {
		t.Fatalf("B metadata %+v (err %v)", md, err)
	}
	// A tenant without a store of that name gets Dapr's error.
	c := newTenant(t, g, "iso-c", "app1")
	_, err = goClient(t, g, c).GetState(ctx, "statestore", "secret", nil)
	if status.Code(err) != codes.FailedPrecondition && status.Code(err) != codes.InvalidArgument {
		t.Fatalf("tenant without stores: %v", err)
	}
}

func TestRevokedToken(t *testing.T) {
	g := sharedGateway(t)
	tok := newTenant(t, g, "revoke", "app1", stateComponent)
	if st, _, body := do(t, g, tok, "GET", "/v1.0/metadata", nil); st != 200 {
		t.Fatalf("fresh token refused: %d %s", st, body)
	}
	c := goClient(t, g, tok)
	if _, err := c.GetMetadata(t.Context()); err != nil {
		t.Fatal(err)
	}
	id := tokenID(t, tok)
	if _, err := g.admin().RevokeToken(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	st, _, body := do(t, g, tok, "GET", "/v1.0/metadata", nil)
	if st != http.StatusUnauthorized || !strings.Contains(string(body), "ERR_UNAUTHENTICATED") {
		t.Fatalf("revoked token over HTTP: %d %s", st, body)
	}
	if _, err := c.GetMetadata(t.Context()); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("revoked token over gRPC: %v", err)
	}
}

// tokenID reads the jti of a token without verifying it.
func tokenID(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		JTI string `json:"jti"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.JTI == "" {
		t.Fatalf("token has no jti: %s", payload)
	}
	return claims.JTI
}

func TestForgedTokens(t *testing.T) {
	g := sharedGateway(t)
	real := g.token()
	header, claims := decodeToken(t, real)
	kid := header["kid"].(string)
	attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	sign := func(method jwt.SigningMethod, key any, kid string, mutate func(jwt.MapClaims)) string {
		c := jwt.MapClaims{}
		for k, v := range claims {
			c[k] = v
		}
		if mutate != nil {
			mutate(c)
		}
		tok := jwt.NewWithClaims(method, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name  string
		token string
	}{
		{"signed by another key with the real kid", sign(jwt.SigningMethodES256, attacker, kid, nil)},
		{"alg none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, nil)},
		{"unknown kid", sign(jwt.SigningMethodES256, attacker, "not-a-kid", nil)},
		{"no kid", sign(jwt.SigningMethodES256, attacker, "", nil)},
		{"expired, other key", sign(jwt.SigningMethodES256, attacker, kid, func(c jwt.MapClaims) {
			c["exp"] = time.Now().Add(-time.Hour).Unix()
		})},
		{"HS256 with the public JWKS as secret", sign(jwt.SigningMethodHS256, jwksBytes(t, g), kid, nil)},
		{"claims swapped to another tenant", swapPayload(t, real, func(c map[string]any) { c["tenant"] = "iso-a" })},
		{"truncated", real[:len(real)-5]},
		{"empty", ""},
		{"garbage", "not.a.token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _, body := do(t, g, tt.token, "GET", "/v1.0/state/statestore/k", nil)
			if st != http.StatusUnauthorized {
				t.Fatalf("HTTP accepted a forged token: %d %s", st, body)
			}
			st, _, _ = do(t, g, "", "GET", "/v1.0/state/statestore/k", nil, "Authorization", "Bearer "+tt.token)
			if st != http.StatusUnauthorized {
				t.Fatalf("HTTP accepted a forged bearer token: %d", st)
			}
			if tt.token == "" {
				return
			}
			_, err := goClient(t, g, tt.token).GetState(t.Context(), "statestore", "k", nil)
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("gRPC accepted a forged token: %v", err)
			}
		})
	}
}

func decodeToken(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

// swapPayload changes the claims of a real token and keeps its signature.
func swapPayload(t *testing.T, tok string, mutate func(map[string]any)) string {
	t.Helper()
	_, claims := decodeToken(t, tok)
	mutate(claims)
	b, _ := json.Marshal(claims)
	parts := strings.Split(tok, ".")
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
}

func jwksBytes(t *testing.T, g *gateway) []byte {
	t.Helper()
	st, _, body := do(t, g, "", "GET", "/.well-known/jwks.json", nil)
	if st != 200 || !strings.Contains(string(body), `"kty":"EC"`) {
		t.Fatalf("jwks: %d %s", st, body)
	}
	return body
}

func grpcCode(err error) string { return status.Code(err).String() }
