package authoidc_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/blockgate/blockgate/auth/authoidc"
	"github.com/blockgate/blockgate/tenants"
)

// Keys are generated once per test binary: RSA generation is slow under
// the race detector.
var (
	rsa1     = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA() })
	rsa2     = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA() })
	rsaForge = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA() })
	ec1      = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
	ed1 = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

func mustRSA() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

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

// issuer is an OIDC issuer over real HTTPS: a discovery document and a
// JWKS of the keys it publishes, which a test may change (rotation), take
// down, or slow down. It counts the requests it serves.
type issuer struct {
	srv *httptest.Server

	mu   sync.Mutex
	keys []publishedKey
	// statedIssuer overrides the issuer the discovery document states.
	statedIssuer string
	// jwksURI overrides the jwks_uri of the discovery document.
	jwksURI string
	// raw, when set, is served as the JWKS instead of keys.
	raw []byte

	down      atomic.Bool
	delay     atomic.Int64 // nanoseconds each JWKS response waits
	jwksHits  atomic.Int32
	discoHits atomic.Int32
}

type publishedKey struct {
	kid string
	pub crypto.PublicKey
	alg string
}

func newIssuer(t testing.TB) *issuer {
	t.Helper()
	is := &issuer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		is.discoHits.Add(1)
		if is.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		is.mu.Lock()
		stated, uri := is.statedIssuer, is.jwksURI
		is.mu.Unlock()
		if stated == "" {
			stated = is.srv.URL
		}
		if uri == "" {
			uri = is.srv.URL + "/jwks"
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": stated, "jwks_uri": uri})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		is.jwksHits.Add(1)
		if d := time.Duration(is.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		if is.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(is.jwks())
	})
	is.srv = httptest.NewTLSServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) URL() string { return is.srv.URL }

func (is *issuer) publish(kid string, pub crypto.PublicKey, alg string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys = append(is.keys, publishedKey{kid: kid, pub: pub, alg: alg})
}

func (is *issuer) withdraw(kid string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	var kept []publishedKey
	for _, k := range is.keys {
		if k.kid != kid {
			kept = append(kept, k)
		}
	}
	is.keys = kept
}

func (is *issuer) set(fn func(is *issuer)) {
	is.mu.Lock()
	defer is.mu.Unlock()
	fn(is)
}

func (is *issuer) jwks() []byte {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.raw != nil {
		return is.raw
	}
	keys := []map[string]any{}
	for _, k := range is.keys {
		keys = append(keys, jwkOf(k.kid, k.pub, k.alg))
	}
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return b
}

var b64 = base64.RawURLEncoding.EncodeToString

// jwkOf writes a public key as a JWK.
func jwkOf(kid string, pub crypto.PublicKey, alg string) map[string]any {
	m := map[string]any{"kid": kid, "use": "sig"}
	if alg != "" {
		m["alg"] = alg
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		m["kty"] = "RSA"
		m["n"] = b64(k.N.Bytes())
		m["e"] = b64(big.NewInt(int64(k.E)).Bytes())
	case *ecdsa.PublicKey:
		b, err := k.Bytes()
		if err != nil {
			panic(err)
		}
		size := (len(b) - 1) / 2
		m["kty"] = "EC"
		m["crv"] = k.Curve.Params().Name
		m["x"] = b64(b[1 : 1+size])
		m["y"] = b64(b[1+size:])
	case ed25519.PublicKey:
		m["kty"] = "OKP"
		m["crv"] = "Ed25519"
		m["x"] = b64(k)
	default:
		panic("unsupported key type")
	}
	return m
}

// env is a Verifier on a fake clock trusting one issuer through three
// tenants' federations:
//
//   - acme/k8s-prod: audience acme-gw, discovery, the Kubernetes
//     service-account name claim, mapping orders-sa → orders;
//   - globex/k8s: audience globex-gw, an explicit JWKS URL, the sub claim
//     as the app id, no mapping;
//   - initech/pinned: audience initech-gw, ES256 only.
type env struct {
	v     *authoidc.Verifier
	is    *issuer
	clock *clock
	cfg   authoidc.Config
}

func newEnv(t testing.TB, cfg authoidc.Config) *env {
	t.Helper()
	is := newIssuer(t)
	is.publish("rsa-1", &rsa1().PublicKey, "")
	is.publish("ec-1", &ec1().PublicKey, "ES256")
	is.publish("ed-1", ed1().Public(), "")
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	cfg.Now = c.Now
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = is.srv.Client()
	}
	e := &env{v: authoidc.New(cfg, nil), is: is, clock: c, cfg: cfg}
	e.v.SetFederations(e.federations())
	return e
}

func (e *env) federations() []authoidc.Federation {
	return []authoidc.Federation{
		{
			Tenant:     "acme",
			Name:       "k8s-prod",
			Issuer:     e.is.URL(),
			Audience:   "acme-gw",
			AppIDClaim: "kubernetes.io.serviceaccount.name",
			Mapping:    map[string]string{"orders-sa": "orders"},
		},
		{
			Tenant:   "globex",
			Name:     "k8s",
			Issuer:   e.is.URL(),
			JWKSURL:  e.is.URL() + "/jwks",
			Audience: "globex-gw",
		},
		{
			Tenant:     "initech",
			Name:       "pinned",
			Issuer:     e.is.URL(),
			Audience:   "initech-gw",
			Algorithms: []string{"ES256"},
		},
	}
}

// claims are those of a Kubernetes service-account token for aud.
func (e *env) claims(aud any) jwt.MapClaims {
	now := e.clock.Now().Unix()
	return jwt.MapClaims{
		"iss": e.is.URL(),
		"aud": aud,
		"sub": "system:serviceaccount:shop:orders-sa",
		"jti": "j-1",
		"iat": now,
		"nbf": now,
		"exp": now + 3600,
		"kubernetes.io": map[string]any{
			"namespace":      "shop",
			"serviceaccount": map[string]any{"name": "orders-sa", "uid": "0d5e2c1a"},
		},
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

// token is a genuine RS256 token for aud, edited by edit.
func (e *env) token(t testing.TB, aud any, edit func(jwt.MapClaims)) string {
	t.Helper()
	c := e.claims(aud)
	if edit != nil {
		edit(c)
	}
	return sign(t, jwt.SigningMethodRS256, rsa1(), "rsa-1", c, nil)
}

func wantPrincipal(t *testing.T, e *env, tok string, want tenants.Principal) authoidc.Claims {
	t.Helper()
	c, err := e.v.VerifyClaims(t.Context(), tok)
	if err != nil {
		t.Fatalf("VerifyClaims: %v", err)
	}
	if p := c.Principal(); p != want {
		t.Fatalf("principal = %+v, want %+v", p, want)
	}
	return c
}
