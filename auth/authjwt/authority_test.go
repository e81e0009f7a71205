package authjwt_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/blockgate/blockgate/auth/authjwt"
	"github.com/blockgate/blockgate/auth/authjwt/authjwttest"
	"github.com/blockgate/blockgate/tenants"
)

// clock is a settable clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is an Authority loaded over an in-memory store, on a fake clock.
type env struct {
	a     *authjwt.Authority
	store *authjwttest.MemKeyStore
	clock *clock
	cfg   authjwt.Config
}

func newEnv(t testing.TB, cfg authjwt.Config) *env {
	t.Helper()
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	store := authjwttest.NewMemKeyStore(c.Now)
	cfg.Now = c.Now
	a := authjwt.New(store, cfg, nil)
	if err := a.Load(t.Context()); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return &env{a: a, store: store, clock: c, cfg: cfg}
}

// node is another gateway node on the same store, clock and config.
func (e *env) node(t testing.TB) *authjwt.Authority {
	t.Helper()
	a := authjwt.New(e.store, e.cfg, nil)
	if err := a.Load(t.Context()); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return a
}

func (e *env) claims() authjwt.Claims {
	now := e.clock.Now()
	return authjwt.Claims{
		Tenant:    "acme",
		AppID:     "orders",
		TokenID:   "tok-1",
		IssuedAt:  now,
		ExpiresAt: now.Add(time.Hour),
	}
}

func (e *env) issue(t testing.TB) string {
	t.Helper()
	tok, err := e.a.Issue(e.claims())
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return tok
}

// activeKey is the store's unretired signing key.
func (e *env) activeKey(t testing.TB) authjwt.Key {
	t.Helper()
	keys, err := e.store.SigningKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.RetiredAt == nil {
			return k
		}
	}
	t.Fatal("no active key in store")
	return authjwt.Key{}
}

// mapClaims are the claims Issue would write for e.claims().
func (e *env) mapClaims() jwt.MapClaims {
	now := e.clock.Now().Unix()
	return jwt.MapClaims{
		"iss":    "blockgate",
		"aud":    []string{"blockgate"},
		"sub":    "tenant/acme/app/orders",
		"jti":    "tok-1",
		"iat":    now,
		"nbf":    now,
		"exp":    now + 3600,
		"tenant": "acme",
		"app_id": "orders",
	}
}

// sign signs claims with method and key, with kid (none if empty) and any
// extra header fields.
func sign(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("signing test token: %v", err)
	}
	return s
}

// signGenuine signs claims with the active key, as a buggy or compromised
// issuer would.
func (e *env) signGenuine(t testing.TB, edit func(jwt.MapClaims)) string {
	t.Helper()
	k := e.activeKey(t)
	m := e.mapClaims()
	if edit != nil {
		edit(m)
	}
	return sign(t, jwt.SigningMethodES256, k.Private, k.ID, m, nil)
}

func segment(t testing.TB, tok string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func kidOf(t testing.TB, tok string) string {
	t.Helper()
	kid, _ := segment(t, tok, 0)["kid"].(string)
	return kid
}

func TestIssueVerify(t *testing.T) {
	e := newEnv(t, authjwt.Config{})
	want := e.claims()
	tok := e.issue(t)

	got, err := e.a.Verify(t.Context(), tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.Tenant != want.Tenant || got.AppID != want.AppID || got.TokenID != want.TokenID ||
		!got.IssuedAt.Equal(want.IssuedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("Verify = %+v, want %+v", got, want)
	}
	if p := got.Principal(); p != (tenants.Principal{Tenant: "acme", AppID: "orders", TokenID: "tok-1"}) {
		t.Errorf("Principal = %+v", p)
	}

	h := segment(t, tok, 0)
	if h["alg"] != "ES256" || h["typ"] != "JWT" || h["kid"] != e.activeKey(t).ID {
		t.Errorf("header = %v", h)
	}
	p := segment(t, tok, 1)
	for claim, want := range map[string]any{
		"iss": "blockgate", "sub": "tenant/acme/app/orders", "jti": "tok-1",
		"tenant": "acme", "app_id": "orders",
		"iat": float64(want.IssuedAt.Unix()), "nbf": float64(want.IssuedAt.Unix()),
		"exp": float64(want.ExpiresAt.Unix()),
	} {
		if p[claim] != want {
			t.Errorf("claim %s = %v, want %v", claim, p[claim], want)
		}
	}
	if aud, _ := p["aud"].([]any); len(aud) != 1 || aud[0] != "blockgate" {
		t.Errorf("claim aud = %v", p["aud"])
	}
}

func TestVerifyCustomIssuerAudience(t *testing.T) {
	e := newEnv(t, authjwt.Config{Issuer: "https://gw.example", Audience: "dapr"})
	if _, err := e.a.Verify(t.Context(), e.issue(t)); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// A token with the defaults is refused by this authority.
	tok := e.signGenuine(t, nil)
	if _, err := e.a.Verify(t.Context(), tok); !errors.Is(err, authjwt.ErrInvalid) {
		t.Fatalf("Verify of a token for another issuer/audience = %v, want ErrInvalid", err)
	}
}

func TestVerifyLeeway(t *testing.T) {
	tests := []struct {
		name string
		edit func(m jwt.MapClaims, now int64)
	}{
		{"expired within leeway", func(m jwt.MapClaims, now int64) { m["exp"] = now - 10 }},
		{"nbf within leeway", func(m jwt.MapClaims, now int64) { m["nbf"] = now + 10 }},
		{"iat within leeway", func(m jwt.MapClaims, now int64) { m["iat"] = now + 10 }},
		{"no nbf", func(m jwt.MapClaims, now int64) { delete(m, "nbf") }},
		{"aud as a string", func(m jwt.MapClaims, now int64) { m["aud"] = "blockgate" }},
		{"aud among others", func(m jwt.MapClaims, now int64) { m["aud"] = []string{"other", "blockgate"} }},
	}
	e := newEnv(t, authjwt.Config{})
	now := e.clock.Now().Unix()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := e.signGenuine(t, func(m jwt.MapClaims) { tt.edit(m, now) })
			if _, err := e.a.Verify(t.Context(), tok); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	e := newEnv(t, authjwt.Config{})
	now := e.clock.Now().Unix()
	active := e.activeKey(t)
	pub := &active.Private.PublicKey

	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkix, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	point, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})
	jwks := e.a.JWKS()

	genuine := e.issue(t)
	parts := strings.Split(genuine, ".")

	// tamper re-encodes the genuine token's payload after edit, keeping its
	// header and signature.
	tamper := func(edit func(map[string]any)) string {
		p := segment(t, genuine, 1)
		edit(p)
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
	}
	header := func(h string) string { return base64.RawURLEncoding.EncodeToString([]byte(h)) }
	edited := func(edit func(jwt.MapClaims)) string { return e.signGenuine(t, edit) }

	tests := []struct {
		name  string
		token string
		want  error // besides ErrInvalid
	}{
		{"expired", edited(func(m jwt.MapClaims) { m["iat"], m["nbf"], m["exp"] = now-7200, now-7200, now-3600 }), authjwt.ErrExpired},
		{"expired past leeway", edited(func(m jwt.MapClaims) { m["exp"] = now - 31 }), authjwt.ErrExpired},
		{"not yet valid", edited(func(m jwt.MapClaims) { m["nbf"] = now + 3600 }), authjwt.ErrNotYetValid},
		{"issued in the future", edited(func(m jwt.MapClaims) { m["iat"], m["nbf"], m["exp"] = now+600, now, now+3600 }), authjwt.ErrNotYetValid},

		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, active.ID, e.mapClaims(), nil), nil},
		{"alg none by hand", header(`{"alg":"none","kid":"`+active.ID+`"}`) + "." + parts[1] + ".", nil},
		{"alg NONE by hand", header(`{"alg":"NONE","kid":"`+active.ID+`"}`) + "." + parts[1] + ".", nil},
		{"no alg", header(`{"kid":"`+active.ID+`"}`) + "." + parts[1] + "." + parts[2], nil},
		{"ES256 without signature", parts[0] + "." + parts[1] + ".", nil},
		{"HS256 keyed with the PKIX public key", sign(t, jwt.SigningMethodHS256, pkix, active.ID, e.mapClaims(), nil), nil},
		{"HS256 keyed with the PEM public key", sign(t, jwt.SigningMethodHS256, pubPEM, active.ID, e.mapClaims(), nil), nil},
		{"HS256 keyed with the public point", sign(t, jwt.SigningMethodHS256, point, active.ID, e.mapClaims(), nil), nil},
		{"HS256 keyed with the JWKS", sign(t, jwt.SigningMethodHS256, jwks, active.ID, e.mapClaims(), nil), nil},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, active.ID, e.mapClaims(), nil), nil},
		{"PS256", sign(t, jwt.SigningMethodPS256, rsaKey, active.ID, e.mapClaims(), nil), nil},
		{"ES384", sign(t, jwt.SigningMethodES384, p384, active.ID, e.mapClaims(), nil), nil},

		{"other key with the same kid", sign(t, jwt.SigningMethodES256, otherKey, active.ID, e.mapClaims(), nil), nil},
		{"no kid", sign(t, jwt.SigningMethodES256, active.Private, "", e.mapClaims(), nil), nil},
		{"kid not a string", sign(t, jwt.SigningMethodES256, active.Private, "", e.mapClaims(), map[string]any{"kid": 7}), nil},
		{"crit header", sign(t, jwt.SigningMethodES256, active.Private, active.ID, e.mapClaims(), map[string]any{"crit": []string{"exp"}}), nil},

		{"wrong iss", edited(func(m jwt.MapClaims) { m["iss"] = "evil" }), nil},
		{"no iss", edited(func(m jwt.MapClaims) { delete(m, "iss") }), nil},
		{"wrong aud", edited(func(m jwt.MapClaims) { m["aud"] = []string{"other"} }), nil},
		{"no aud", edited(func(m jwt.MapClaims) { delete(m, "aud") }), nil},
		{"no exp", edited(func(m jwt.MapClaims) { delete(m, "exp") }), nil},
		{"exp not a number", edited(func(m jwt.MapClaims) { m["exp"] = "tomorrow" }), nil},
		{"no iat", edited(func(m jwt.MapClaims) { delete(m, "iat") }), nil},
		{"lifetime over the maximum", edited(func(m jwt.MapClaims) { m["exp"] = now + int64((authjwt.MaxTokenTTL+time.Hour)/time.Second) }), nil},
		{"no jti", edited(func(m jwt.MapClaims) { delete(m, "jti") }), nil},
		{"no tenant", edited(func(m jwt.MapClaims) { delete(m, "tenant") }), nil},
		{"no app_id", edited(func(m jwt.MapClaims) { delete(m, "app_id") }), nil},
		{"no sub", edited(func(m jwt.MapClaims) { delete(m, "sub") }), nil},
		{"invalid tenant", edited(func(m jwt.MapClaims) { m["tenant"], m["sub"] = "Acme!", "tenant/Acme!/app/orders" }), nil},
		{"invalid app_id", edited(func(m jwt.MapClaims) { m["app_id"], m["sub"] = "-orders", "tenant/acme/app/-orders" }), nil},
		{"tenant not matching sub", edited(func(m jwt.MapClaims) { m["tenant"] = "globex" }), nil},
		{"app_id not matching sub", edited(func(m jwt.MapClaims) { m["app_id"] = "billing" }), nil},
		{"sub with a trailing segment", edited(func(m jwt.MapClaims) { m["sub"] = "tenant/acme/app/orders/x" }), nil},
		{"tenant not a string", edited(func(m jwt.MapClaims) { m["tenant"] = 42 }), nil},

		{"tampered tenant", tamper(func(p map[string]any) { p["tenant"], p["sub"] = "globex", "tenant/globex/app/orders" }), nil},
		{"tampered exp", tamper(func(p map[string]any) { p["exp"] = float64(now + 86400) }), nil},
		{"tampered signature", parts[0] + "." + parts[1] + "." + flip(parts[2]), nil},
		{"swapped header", header(`{"alg":"ES256","kid":"`+active.ID+`","typ":"JWT","x":1}`) + "." + parts[1] + "." + parts[2], nil},
		{"padded signature", genuine + "=", nil},

		{"empty", "", nil},
		{"garbage", "not a token", nil},
		{"two parts", parts[0] + "." + parts[1], nil},
		{"four parts", genuine + "." + parts[2], nil},
		{"too long", genuine + strings.Repeat("A", 5000), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.a.Verify(t.Context(), tt.token)
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", got)
			}
			t.Log(err)
			if !errors.Is(err, authjwt.ErrInvalid) {
				t.Errorf("Verify error %v does not match ErrInvalid", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Verify error %v does not match %v", err, tt.want)
			}
			if got != (authjwt.Claims{}) {
				t.Errorf("Verify returned claims %+v with an error", got)
			}
		})
	}
}

// flip changes the last-but-one character of a base64url string, so that
// it still decodes (strictly) but to different bytes.
func flip(s string) string {
	b := []byte(s)
	i := len(b) - 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestUnknownKIDReloadsOnce(t *testing.T) {
	e := newEnv(t, authjwt.Config{KeyReloadInterval: 5 * time.Second})
	stranger, err := authjwt.NewKey(e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, jwt.SigningMethodES256, stranger.Private, stranger.ID, e.mapClaims(), nil)

	before := e.store.Loads()
	for range 3 {
		if _, err := e.a.Verify(t.Context(), tok); !errors.Is(err, authjwt.ErrUnknownKey) {
			t.Fatalf("Verify = %v, want ErrUnknownKey", err)
		}
	}
	if got := e.store.Loads() - before; got != 1 {
		t.Fatalf("%d reloads for 3 tokens with an unknown kid, want 1", got)
	}

	e.clock.Advance(4 * time.Second)
	if _, err := e.a.Verify(t.Context(), tok); !errors.Is(err, authjwt.ErrUnknownKey) {
		t.Fatalf("Verify = %v, want ErrUnknownKey", err)
	}
	if got := e.store.Loads() - before; got != 1 {
		t.Fatalf("reloaded again within the interval: %d reloads", got)
	}

	e.clock.Advance(2 * time.Second)
	if _, err := e.a.Verify(t.Context(), tok); !errors.Is(err, authjwt.ErrUnknownKey) {
		t.Fatalf("Verify = %v, want ErrUnknownKey", err)
	}
	if got := e.store.Loads() - before; got != 2 {
		t.Fatalf("%d reloads after the interval, want 2", got)
	}
}

func TestUnknownKIDReloadDisabled(t *testing.T) {
	e := newEnv(t, authjwt.Config{KeyReloadInterval: -1})
	other := e.node(t)
	if _, err := other.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	tok, err := other.Issue(e.claims())
	if err != nil {
		t.Fatal(err)
	}
	before := e.store.Loads()
	if _, err := e.a.Verify(t.Context(), tok); !errors.Is(err, authjwt.ErrUnknownKey) {
		t.Fatalf("Verify = %v, want ErrUnknownKey", err)
	}
	if e.store.Loads() != before {
		t.Fatal("an unknown kid reloaded the store")
	}
	if err := e.a.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Verify(t.Context(), tok); err != nil {
		t.Fatalf("Verify after Reload: %v", err)
	}
}

func TestKeyRotatedOnAnotherNode(t *testing.T) {
	e := newEnv(t, authjwt.Config{})
	old := e.issue(t)
	other := e.node(t)
	kid, err := other.Rotate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := other.Issue(e.claims())
	if err != nil {
		t.Fatal(err)
	}
	if kidOf(t, tok) != kid {
		t.Fatalf("other node signs with %s, want %s", kidOf(t, tok), kid)
	}

	// A burst of requests with the new kid costs one store read, and all
	// of them succeed: those that arrive during the reload wait for it.
	before := e.store.Loads()
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() { _, errs[i] = e.a.Verify(t.Context(), tok) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("Verify of the other node's token: %v", err)
	}
	if got := e.store.Loads() - before; got != 1 {
		t.Fatalf("%d reloads, want 1", got)
	}
	// The reload also moved this node's signing to the new key, and the
	// old key still verifies.
	if got := kidOf(t, e.issue(t)); got != kid {
		t.Errorf("this node signs with %s after the reload, want %s", got, kid)
	}
	if _, err := e.a.Verify(t.Context(), old); err != nil {
		t.Errorf("Verify of a token signed before the rotation: %v", err)
	}
}

func TestUnknownKIDStoreFailure(t *testing.T) {
	e := newEnv(t, authjwt.Config{})
	stranger, err := authjwt.NewKey(e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, jwt.SigningMethodES256, stranger.Private, stranger.ID, e.mapClaims(), nil)
	errDown := errors.New("store down")
	e.store.SetErr(errDown)
	_, err = e.a.Verify(t.Context(), tok)
	if !errors.Is(err, authjwt.ErrUnknownKey) || !errors.Is(err, errDown) {
		t.Fatalf("Verify = %v, want ErrUnknownKey wrapping the store error", err)
	}
	// Known keys keep working while the store is down.
	if _, err := e.a.Verify(t.Context(), e.issue(t)); err != nil {
		t.Fatalf("Verify with the store down: %v", err)
	}
	if err := e.a.Reload(t.Context()); !errors.Is(err, errDown) {
		t.Fatalf("Reload = %v, want the store error", err)
	}
	if _, err := e.a.Verify(t.Context(), e.issue(t)); err != nil {
		t.Fatalf("Verify after a failed Reload: %v", err)
	}
}

func TestRotate(t *testing.T) {
	e := newEnv(t, authjwt.Config{})
	oldKID := e.activeKey(t).ID
	old := e.issue(t)

	e.clock.Advance(time.Minute)
	kid, err := e.a.Rotate(t.Context())
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if kid == oldKID || kid != e.activeKey(t).ID {
		t.Fatalf("Rotate = %s; old %s, store's active %s", kid, oldKID, e.activeKey(t).ID)
	}
	fresh := e.issue(t)
	if got := kidOf(t, fresh); got != kid {
		t.Errorf("new token's kid = %s, want %s", got, kid)
	}
	for name, tok := range map[string]string{"old": old, "new": fresh} {
		if _, err := e.a.Verify(t.Context(), tok); err != nil {
			t.Errorf("Verify %s token: %v", name, err)
		}
	}
	if got := jwksKIDs(t, e.a.JWKS()); len(got) != 2 || got[0] != kid || got[1] != oldKID {
		t.Errorf("JWKS kids = %v, want [%s %s]", got, kid, oldKID)
	}
}

func TestRotateStoreFailure(t *testing.T) {
	e := newEnv(t, authjwt.Config{})
	kid := e.activeKey(t).ID
	e.store.SetErr(errors.New("store down"))
	if _, err := e.a.Rotate(t.Context()); err == nil {
		t.Fatal("Rotate with the store down succeeded")
	}
	if got := kidOf(t, e.issue(t)); got != kid {
		t.Errorf("signing with %s after a failed rotation, want %s", got, kid)
	}
}

// TestRetiredKeyPastGrace runs with and without the cache of verified
// tokens: a token that verified within the grace must not verify from the
// cache past it.
func TestRetiredKeyPastGrace(t *testing.T) {
	for name, size := range map[string]int{"cached": 0, "uncached": -1} {
		t.Run(name, func(t *testing.T) { testRetiredKeyPastGrace(t, size) })
	}
}

func testRetiredKeyPastGrace(t *testing.T, cacheSize int) {
	e := newEnv(t, authjwt.Config{RetiredKeyGrace: time.Hour, VerifiedCacheSize: cacheSize})
	oldKID := e.activeKey(t).ID
	c := e.claims()
	c.ExpiresAt = c.IssuedAt.Add(24 * time.Hour)
	old, err := e.a.Issue(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}

	e.clock.Advance(59 * time.Minute)
	if _, err := e.a.Verify(t.Context(), old); err != nil {
		t.Fatalf("Verify within the grace: %v", err)
	}
	if !slices.Contains(jwksKIDs(t, e.a.JWKS()), oldKID) {
		t.Fatal("retired key missing from JWKS within the grace")
	}

	e.clock.Advance(time.Minute)
	if _, err := e.a.Verify(t.Context(), old); !errors.Is(err, authjwt.ErrUnknownKey) {
		t.Fatalf("Verify past the grace = %v, want ErrUnknownKey", err)
	}
	if got := jwksKIDs(t, e.a.JWKS()); len(got) != 1 || slices.Contains(got, oldKID) {
		t.Fatalf("JWKS kids past the grace = %v", got)
	}
	// A node loading now does not know the key either.
	if _, err := e.node(t).Verify(t.Context(), old); !errors.Is(err, authjwt.ErrUnknownKey) {
		t.Fatalf("Verify on a fresh node = %v, want ErrUnknownKey", err)
	}
}

func TestVerifiedCache(t *testing.T) {
	t.Run("expiry is checked on a hit", func(t *testing.T) {
		e := newEnv(t, authjwt.Config{})
		tok := e.issue(t)
		want, err := e.a.Verify(t.Context(), tok)
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Hour + 20*time.Second) // past exp, within the leeway
		if got, err := e.a.Verify(t.Context(), tok); err != nil || got != want {
			t.Fatalf("Verify within the leeway = %+v, %v; want %+v", got, err, want)
		}
		e.clock.Advance(10 * time.Second)
		if _, err := e.a.Verify(t.Context(), tok); !errors.Is(err, authjwt.ErrExpired) {
			t.Fatalf("Verify of a cached token past exp = %v, want ErrExpired", err)
		}
	})
	t.Run("eviction", func(t *testing.T) {
		e := newEnv(t, authjwt.Config{VerifiedCacheSize: 2})
		var toks []string
		for i := range 5 {
			c := e.claims()
			c.TokenID = fmt.Sprint("tok-", i)
			tok, err := e.a.Issue(c)
			if err != nil {
				t.Fatal(err)
			}
			toks = append(toks, tok)
		}
		for range 2 {
			for i, tok := range toks {
				c, err := e.a.Verify(t.Context(), tok)
				if err != nil || c.TokenID != fmt.Sprint("tok-", i) {
					t.Fatalf("Verify token %d = %+v, %v", i, c, err)
				}
			}
		}
	})
	t.Run("a near miss of a cached token", func(t *testing.T) {
		e := newEnv(t, authjwt.Config{})
		tok := e.issue(t)
		if _, err := e.a.Verify(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(tok, ".")
		for _, bad := range []string{tok + " ", " " + tok, tok[:len(tok)-1], parts[0] + "." + parts[1] + "." + flip(parts[2])} {
			if _, err := e.a.Verify(t.Context(), bad); !errors.Is(err, authjwt.ErrInvalid) {
				t.Errorf("Verify(%q) = %v, want ErrInvalid", bad, err)
			}
		}
	})
}

func TestRetiredKeyNoGrace(t *testing.T) {
	e := newEnv(t, authjwt.Config{RetiredKeyGrace: -1})
	old := e.issue(t)
	if _, err := e.a.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Verify(t.Context(), old); !errors.Is(err, authjwt.ErrUnknownKey) {
		t.Fatalf("Verify of a token from a key retired without grace = %v, want ErrUnknownKey", err)
	}
	if got := jwksKIDs(t, e.a.JWKS()); len(got) != 1 {
		t.Fatalf("JWKS kids = %v, want only the new key", got)
	}
}

type jwkJSON struct {
	Kty, Crv, X, Y, Kid, Alg, Use string
}

func parseJWKS(t testing.TB, b []byte) []jwkJSON {
	t.Helper()
	var set struct{ Keys []jwkJSON }
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&set); err != nil {
		t.Fatalf("JWKS %s: %v", b, err)
	}
	return set.Keys
}

func jwksKIDs(t testing.TB, b []byte) []string {
	t.Helper()
	var kids []string
	for _, k := range parseJWKS(t, b) {
		kids = append(kids, k.Kid)
	}
	return kids
}

// TestJWKS checks the JWKS with the standard library alone: each key's x and
// y rebuild the public key, its kid is the RFC 7638 thumbprint, and the key
// verifies a token's ES256 signature.
func TestJWKS(t *testing.T) {
	e := newEnv(t, authjwt.Config{})
	before := e.issue(t)
	if _, err := e.a.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	after := e.issue(t)

	keys := parseJWKS(t, e.a.JWKS())
	if len(keys) != 2 {
		t.Fatalf("JWKS has %d keys, want 2", len(keys))
	}
	pubs := map[string]*ecdsa.PublicKey{}
	for _, k := range keys {
		if k.Kty != "EC" || k.Crv != "P-256" || k.Alg != "ES256" || k.Use != "sig" {
			t.Errorf("JWK %+v", k)
		}
		x, errX := base64.RawURLEncoding.Strict().DecodeString(k.X)
		y, errY := base64.RawURLEncoding.Strict().DecodeString(k.Y)
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			t.Fatalf("JWK %s: x, y = %d bytes (%v), %d bytes (%v)", k.Kid, len(x), errX, len(y), errY)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			t.Fatalf("JWK %s: %v", k.Kid, err)
		}
		// RFC 7638: SHA-256 of the required members, sorted, no
		// whitespace. encoding/json sorts map keys.
		canon, err := json.Marshal(map[string]string{"crv": k.Crv, "kty": k.Kty, "x": k.X, "y": k.Y})
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(canon)
		if want := base64.RawURLEncoding.EncodeToString(sum[:]); k.Kid != want {
			t.Errorf("kid %s is not the thumbprint %s", k.Kid, want)
		}
		pubs[k.Kid] = pub
	}

	for name, tok := range map[string]string{"before rotation": before, "after rotation": after} {
		t.Run(name, func(t *testing.T) {
			pub := pubs[kidOf(t, tok)]
			if pub == nil {
				t.Fatalf("kid %s not in JWKS", kidOf(t, tok))
			}
			i := strings.LastIndexByte(tok, '.')
			sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
			if err != nil || len(sig) != 64 {
				t.Fatalf("signature: %d bytes, %v", len(sig), err)
			}
			h := sha256.Sum256([]byte(tok[:i]))
			r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			if !ecdsa.Verify(pub, h[:], r, s) {
				t.Fatal("JWKS key does not verify the token")
			}
		})
	}
}

func TestIssueRefuses(t *testing.T) {
	e := newEnv(t, authjwt.Config{})
	base := e.claims()
	tests := []struct {
		name string
		edit func(c *authjwt.Claims)
	}{
		{"invalid tenant", func(c *authjwt.Claims) { c.Tenant = "Acme" }},
		{"no tenant", func(c *authjwt.Claims) { c.Tenant = "" }},
		{"invalid app id", func(c *authjwt.Claims) { c.AppID = "a/b" }},
		{"no app id", func(c *authjwt.Claims) { c.AppID = "" }},
		{"no token id", func(c *authjwt.Claims) { c.TokenID = "" }},
		{"no expiry", func(c *authjwt.Claims) { c.ExpiresAt = time.Time{} }},
		{"expiry before issue", func(c *authjwt.Claims) { c.ExpiresAt = c.IssuedAt.Add(-time.Second) }},
		{"lifetime over the maximum", func(c *authjwt.Claims) { c.ExpiresAt = c.IssuedAt.Add(authjwt.MaxTokenTTL + time.Second) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.edit(&c)
			if tok, err := e.a.Issue(c); err == nil {
				t.Fatalf("Issue(%+v) = %s, want an error", c, tok)
			}
		})
	}

	t.Run("before Load", func(t *testing.T) {
		a := authjwt.New(authjwttest.NewMemKeyStore(nil), authjwt.Config{}, nil)
		if _, err := a.Issue(base); !errors.Is(err, authjwt.ErrNoSigningKey) {
			t.Fatalf("Issue before Load = %v, want ErrNoSigningKey", err)
		}
		if got := jwksKIDs(t, a.JWKS()); len(got) != 0 {
			t.Fatalf("JWKS before Load = %v", got)
		}
	})

	t.Run("default issue time and maximum lifetime", func(t *testing.T) {
		c := base
		c.IssuedAt = time.Time{}
		c.ExpiresAt = e.clock.Now().Add(authjwt.MaxTokenTTL)
		tok, err := e.a.Issue(c)
		if err != nil {
			t.Fatalf("Issue: %v", err)
		}
		got, err := e.a.Verify(t.Context(), tok)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if !got.IssuedAt.Equal(e.clock.Now()) {
			t.Errorf("IssuedAt = %v, want now %v", got.IssuedAt, e.clock.Now())
		}
	})
}

func TestLoad(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	mustKey := func(t *testing.T, created time.Time, retired *time.Time) authjwt.Key {
		t.Helper()
		k, err := authjwt.NewKey(created)
		if err != nil {
			t.Fatal(err)
		}
		k.RetiredAt = retired
		return k
	}
	hourAgo := now.Add(-time.Hour)

	tests := []struct {
		name        string
		stored      func(t *testing.T) []authjwt.Key
		wantCreated bool // Load added a key
		wantSigner  int  // index into stored, when !wantCreated
	}{
		{"empty store", func(t *testing.T) []authjwt.Key { return nil }, true, 0},
		{"only retired keys", func(t *testing.T) []authjwt.Key {
			return []authjwt.Key{mustKey(t, now.Add(-2*time.Hour), &hourAgo)}
		}, true, 0},
		{"one active key", func(t *testing.T) []authjwt.Key {
			return []authjwt.Key{mustKey(t, hourAgo, nil)}
		}, false, 0},
		{"newest unretired key signs", func(t *testing.T) []authjwt.Key {
			return []authjwt.Key{
				mustKey(t, now.Add(-2*time.Hour), nil),
				mustKey(t, now.Add(-time.Minute), nil),
				mustKey(t, hourAgo, nil),
				mustKey(t, now.Add(-3*time.Hour), &hourAgo),
			}
		}, false, 1},
		{"key whose kid is not its thumbprint is skipped", func(t *testing.T) []authjwt.Key {
			bad := mustKey(t, now.Add(-time.Minute), nil)
			bad.ID = "forged"
			return []authjwt.Key{mustKey(t, hourAgo, nil), bad}
		}, false, 0},
		{"key without a private key is skipped", func(t *testing.T) []authjwt.Key {
			return []authjwt.Key{mustKey(t, hourAgo, nil), {ID: "empty", CreatedAt: now}}
		}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := authjwttest.NewMemKeyStore(func() time.Time { return now })
			stored := tt.stored(t)
			for _, k := range stored {
				store.Put(k)
			}
			a := authjwt.New(store, authjwt.Config{Now: func() time.Time { return now }}, nil)
			if err := a.Load(t.Context()); err != nil {
				t.Fatalf("Load: %v", err)
			}
			keys, err := store.SigningKeys(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if created := len(keys) > len(stored); created != tt.wantCreated {
				t.Fatalf("Load created a key: %v, want %v", created, tt.wantCreated)
			}
			want := keys[len(keys)-1].ID
			if !tt.wantCreated {
				want = stored[tt.wantSigner].ID
			}
			tok, err := a.Issue(authjwt.Claims{Tenant: "acme", AppID: "orders", TokenID: "t", ExpiresAt: now.Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			if got := kidOf(t, tok); got != want {
				t.Errorf("signing with %s, want %s", got, want)
			}
			if _, err := a.Verify(t.Context(), tok); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}

	t.Run("store failure", func(t *testing.T) {
		store := authjwttest.NewMemKeyStore(nil)
		errDown := errors.New("store down")
		store.SetErr(errDown)
		if err := authjwt.New(store, authjwt.Config{}, nil).Load(t.Context()); !errors.Is(err, errDown) {
			t.Fatalf("Load = %v, want the store error", err)
		}
	})
}

// TestConcurrentVerifyRotate runs Verify, Issue, JWKS and Rotate together;
// it is for the race detector.
func TestConcurrentVerifyRotate(t *testing.T) {
	e := newEnv(t, authjwt.Config{})
	tok := e.issue(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 4 {
		wg.Go(func() {
			for range 50 {
				if _, err := e.a.Verify(t.Context(), tok); err != nil {
					errs <- err
					return
				}
				if _, err := e.a.Issue(e.claims()); err != nil {
					errs <- err
					return
				}
				if b := e.a.JWKS(); !json.Valid(b) {
					errs <- errors.New("invalid JWKS: " + string(b))
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 10 {
			if _, err := e.a.Rotate(t.Context()); err != nil {
				errs <- err
				return
			}
			if err := e.a.Reload(t.Context()); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestMemKeyStore(t *testing.T) {
	authjwttest.RunKeyStore(t, func(t *testing.T) authjwt.KeyStore {
		return authjwttest.NewMemKeyStore(nil)
	})
}

func BenchmarkVerify(b *testing.B) {
	e := newEnv(b, authjwt.Config{})
	tok := e.issue(b)
	parts := strings.Split(tok, ".")
	badSig := parts[0] + "." + parts[1] + "." + flip(parts[2])
	stranger, err := authjwt.NewKey(e.clock.Now())
	if err != nil {
		b.Fatal(err)
	}
	unknown := sign(b, jwt.SigningMethodES256, stranger.Private, stranger.ID, e.mapClaims(), nil)
	if _, err := e.a.Verify(b.Context(), unknown); err == nil { // spends the reload
		b.Fatal("unknown kid accepted")
	}

	uncached := authjwt.New(e.store, authjwt.Config{Now: e.clock.Now, VerifiedCacheSize: -1}, nil)
	if err := uncached.Load(b.Context()); err != nil {
		b.Fatal(err)
	}
	for _, bb := range []struct {
		name string
		a    *authjwt.Authority
	}{{"cached", e.a}, {"uncached", uncached}} {
		b.Run("valid/"+bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bb.a.Verify(b.Context(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("valid/"+bb.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := bb.a.Verify(b.Context(), tok); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	b.Run("bad signature", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.a.Verify(b.Context(), badSig); err == nil {
				b.Fatal("accepted")
			}
		}
	})
	b.Run("unknown kid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.a.Verify(b.Context(), unknown); err == nil {
				b.Fatal("accepted")
			}
		}
	})
}

func BenchmarkIssue(b *testing.B) {
	e := newEnv(b, authjwt.Config{})
	c := e.claims()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.a.Issue(c); err != nil {
			b.Fatal(err)
		}
	}
}
