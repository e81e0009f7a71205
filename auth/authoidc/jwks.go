package authoidc

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blockgate/blockgate/internal/lograte"
)

// Bounds on what a JWKS may hold.
const (
	maxKeys    = 100
	minRSABits = 2048
	// maxRSABits keeps a hostile issuer from making every verification
	// cost a huge modular exponentiation.
	maxRSABits = 8192
)

// publicKey is one usable key of an issuer's JWKS.
type publicKey struct {
	kid string
	// alg is the JWK's alg, "" when it names none; when set, a token must
	// use exactly that algorithm with the key.
	alg string
	key crypto.PublicKey // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// fits reports whether the key can check a signature made with alg.
func (k *publicKey) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch key := k.key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return key.Curve == elliptic.P256()
		case "ES384":
			return key.Curve == elliptic.P384()
		case "ES512":
			return key.Curve == elliptic.P521()
		}
		return false
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

func (k *publicKey) same(o *publicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := k.key.(equaler)
	return ok && k.kid == o.kid && k.alg == o.alg && e.Equal(o.key)
}

// keySet is an immutable snapshot of an issuer's keys.
type keySet struct {
	byKID     map[string][]*publicKey
	all       []*publicKey
	fetchedAt time.Time
}

var (
	errKIDRequired = errors.New("kid header is required: the issuer publishes several keys for this algorithm")
	errNoKey       = errors.New("no key of the issuer fits the token's kid and algorithm")
)

// find returns the key a token with kid and alg names. Without a kid, a key
// is used only when it is the one key that fits alg.
func (ks *keySet) find(kid, alg string) (*publicKey, error) {
	if kid != "" {
		for _, k := range ks.byKID[kid] {
			if k.fits(alg) {
				return k, nil
			}
		}
		return nil, errNoKey
	}
	var found *publicKey
	for _, k := range ks.all {
		if !k.fits(alg) {
			continue
		}
		if found != nil {
			return nil, errKIDRequired
		}
		found = k
	}
	if found == nil {
		return nil, errNoKey
	}
	return found, nil
}

// rawKey is a JWK as RFC 7517 and 7518 write it, the fields this package
// reads.
type rawKey struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Use    string   `json:"use"`
	Alg    string   `json:"alg"`
	KeyOps []string `json:"key_ops"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	Crv    string   `json:"crv"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
	D      string   `json:"d"`
}

// parseJWKS reads a JWK Set. Keys it cannot use (another use, an unknown
// type or curve, a weak RSA key, private material) are left out and
// reported in skipped, so that one odd key does not cost the issuer its
// others. A document that is not a JWK Set is an error.
func parseJWKS(data []byte, old *keySet) (ks *keySet, skipped []string, err error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("not a JWK set: %w", err)
	}
	if doc.Keys == nil {
		return nil, nil, errors.New("not a JWK set: no keys member")
	}
	if len(doc.Keys) > maxKeys {
		return nil, nil, fmt.Errorf("JWK set holds %d keys; at most %d", len(doc.Keys), maxKeys)
	}
	ks = &keySet{byKID: make(map[string][]*publicKey, len(doc.Keys))}
	for i, raw := range doc.Keys {
		k, err := parseJWK(raw)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		// Keep the pointer of a key that has not changed, so that tokens
		// cached as verified by it stay cached across refreshes.
		if old != nil {
			for _, o := range old.byKID[k.kid] {
				if o.same(k) {
					k = o
					break
				}
			}
		}
		ks.all = append(ks.all, k)
		ks.byKID[k.kid] = append(ks.byKID[k.kid], k)
	}
	return ks, skipped, nil
}

func parseJWK(data []byte) (*publicKey, error) {
	var r rawKey
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("not a JWK: %w", err)
	}
	if r.Use != "" && r.Use != "sig" {
		return nil, fmt.Errorf("use is %q, not sig", r.Use)
	}
	if len(r.KeyOps) > 0 && !slices.Contains(r.KeyOps, "verify") {
		return nil, errors.New("key_ops does not include verify")
	}
	if r.D != "" {
		return nil, errors.New("holds private key material; the issuer must publish only public keys")
	}
	if r.Alg != "" && !slices.Contains(supportedAlgorithms, r.Alg) {
		return nil, fmt.Errorf("alg %q is not supported", short(r.Alg))
	}
	k := &publicKey{kid: r.Kid, alg: r.Alg}
	var err error
	switch r.Kty {
	case "RSA":
		k.key, err = rsaKey(r)
	case "EC":
		k.key, err = ecKey(r)
	case "OKP":
		k.key, err = okpKey(r)
	default:
		return nil, fmt.Errorf("kty %q is not supported", short(r.Kty))
	}
	if err != nil {
		return nil, err
	}
	if !k.fits(k.alg) && k.alg != "" {
		return nil, fmt.Errorf("alg %s does not fit a key of type %s", k.alg, r.Kty)
	}
	return k, nil
}

func b64(field, s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("%s is not base64url", field)
	}
	return b, nil
}

func rsaKey(r rawKey) (*rsa.PublicKey, error) {
	n, err := b64("n", r.N)
	if err != nil {
		return nil, err
	}
	e, err := b64("e", r.E)
	if err != nil {
		return nil, err
	}
	if len(e) > 4 {
		return nil, errors.New("e is too large")
	}
	var exp int
	for _, b := range e {
		exp = exp<<8 | int(b)
	}
	if exp < 3 || exp%2 == 0 {
		return nil, errors.New("e is not an odd number of at least 3")
	}
	key := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}
	if bits := key.N.BitLen(); bits < minRSABits || bits > maxRSABits {
		return nil, fmt.Errorf("RSA key of %d bits; want %d to %d", bits, minRSABits, maxRSABits)
	}
	return key, nil
}

func ecKey(r rawKey) (*ecdsa.PublicKey, error) {
	var curve elliptic.Curve
	switch r.Crv {
	case "P-256":
		curve = elliptic.P256()
	case "P-384":
		curve = elliptic.P384()
	case "P-521":
		curve = elliptic.P521()
	default:
		return nil, fmt.Errorf("crv %q is not supported", short(r.Crv))
	}
	size := (curve.Params().BitSize + 7) / 8
	x, err := b64("x", r.X)
	if err != nil {
		return nil, err
	}
	y, err := b64("y", r.Y)
	if err != nil {
		return nil, err
	}
	if len(x) != size || len(y) != size {
		return nil, fmt.Errorf("x and y of a %s key must be %d bytes", r.Crv, size)
	}
	point := make([]byte, 0, 1+2*size)
	point = append(point, 4)
	point = append(point, x...)
	point = append(point, y...)
	// Checks that the point is on the curve.
	key, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, fmt.Errorf("invalid %s point", r.Crv)
	}
	return key, nil
}

func okpKey(r rawKey) (ed25519.PublicKey, error) {
	if r.Crv != "Ed25519" {
		return nil, fmt.Errorf("crv %q is not supported", short(r.Crv))
	}
	x, err := b64("x", r.X)
	if err != nil {
		return nil, err
	}
	if len(x) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("x of an Ed25519 key must be %d bytes", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(x), nil
}

// keySource is where the keys of one issuer come from: a configured JWKS
// URL, or the one its discovery document names. Federations of the same
// issuer and JWKS URL share one source, across tenants, so that the keys
// are fetched once; a source outlives SetFederations calls that keep it.
type keySource struct {
	issuer  string
	jwksURL string // "" means discovered
	keys    atomic.Pointer[keySet]

	mu sync.Mutex
	// lastFetch is when the last fetch started; fetches that tokens cause
	// are at most one per Config.MinFetchInterval.
	lastFetch time.Time
	inflight  *fetchCall // nil when none runs
	lastErr   error      // of the last fetch that ended; nil if it succeeded
	logLimit  lograte.Limiter
}

// fetchCall is one fetch that callers arriving meanwhile wait for.
type fetchCall struct {
	done chan struct{}
	err  error
}

// errFetchLimited says a fetch was wanted but the rate limit was spent.
var errFetchLimited = errors.New("keys fetched too recently")

// sourceID identifies a source among a verifier's.
func sourceID(issuer, jwksURL string) string { return issuer + "\x00" + jwksURL }

// fetch refreshes the keys from the issuer. With limited set it does
// nothing (returning the last fetch's error, or errFetchLimited) when a
// fetch started less than MinFetchInterval ago. A caller that finds a fetch
// running waits for it instead of starting another, so a burst of tokens
// costs one fetch. The fetch is bounded by FetchTimeout, not by ctx, so
// that one caller giving up does not fail the others; ctx bounds only the
// wait. On error the keys in memory are kept.
func (s *keySource) fetch(ctx context.Context, v *Verifier, limited bool) error {
	s.mu.Lock()
	if c := s.inflight; c != nil {
		s.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	now := v.cfg.Now()
	if limited && !s.lastFetch.IsZero() && now.Sub(s.lastFetch) < v.cfg.MinFetchInterval {
		err := s.lastErr
		s.mu.Unlock()
		if err == nil {
			err = errFetchLimited
		}
		return err
	}
	c := &fetchCall{done: make(chan struct{})}
	s.inflight, s.lastFetch = c, now
	s.mu.Unlock()

	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.FetchTimeout)
	defer cancel()
	c.err = s.load(fctx, v)

	s.mu.Lock()
	s.inflight, s.lastErr = nil, c.err
	if c.err != nil {
		if suppressed, ok := s.logLimit.Allow(v.cfg.Now()); ok {
			v.logger.Warn("fetching a federated issuer's keys failed; keeping the keys cached", "issuer", s.issuer,
				"err", c.err, "suppressed", suppressed)
		}
	}
	s.mu.Unlock()
	close(c.done)
	return c.err
}

// load discovers the JWKS URL if need be, fetches the JWKS and installs it.
func (s *keySource) load(ctx context.Context, v *Verifier) error {
	jwksURL := s.jwksURL
	if jwksURL == "" {
		var err error
		if jwksURL, err = s.discover(ctx, v); err != nil {
			return err
		}
	}
	body, err := v.get(ctx, jwksURL)
	if err != nil {
		return err
	}
	old := s.keys.Load()
	ks, skipped, err := parseJWKS(body, old)
	if err != nil {
		return fmt.Errorf("reading %s: %w", jwksURL, err)
	}
	ks.fetchedAt = v.cfg.Now()
	for _, why := range skipped {
		v.logger.Warn("skipping a federated issuer's key", "issuer", s.issuer, "why", why)
	}
	if len(ks.all) == 0 {
		// The issuer says no key is valid; believe it, loudly.
		v.logger.Warn("federated issuer publishes no usable key", "issuer", s.issuer, "jwks", jwksURL)
	}
	if added, removed := diff(old, ks); old == nil || len(added) > 0 || len(removed) > 0 {
		v.logger.Info("federated issuer's keys loaded", "issuer", s.issuer, "keys", len(ks.all),
			"added", added, "removed", removed)
	}
	s.keys.Store(ks)
	return nil
}

// diff names the kids that appear in and disappear from a key set.
func diff(old, next *keySet) (added, removed []string) {
	if old == nil {
		old = &keySet{}
	}
	for kid := range next.byKID {
		if _, ok := old.byKID[kid]; !ok {
			added = append(added, short(kid))
		}
	}
	for kid := range old.byKID {
		if _, ok := next.byKID[kid]; !ok {
			removed = append(removed, short(kid))
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed
}

// discover reads the issuer's OpenID configuration for its jwks_uri.
func (s *keySource) discover(ctx context.Context, v *Verifier) (string, error) {
	u := strings.TrimSuffix(s.issuer, "/") + "/.well-known/openid-configuration"
	body, err := v.get(ctx, u)
	if err != nil {
		return "", err
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("reading %s: %w", u, err)
	}
	// OpenID Connect Discovery 1.0, section 4.3: the issuer a provider
	// states must be the one it was found by, or another could pose as it.
	if doc.Issuer != s.issuer {
		return "", fmt.Errorf("reading %s: it states issuer %q, not %q", u, short(doc.Issuer), s.issuer)
	}
	if err := validateURL(doc.JWKSURI, true); err != nil {
		return "", fmt.Errorf("reading %s: jwks_uri: %w", u, err)
	}
	return doc.JWKSURI, nil
}

// get fetches url and returns its body, refusing anything but 200 and
// bodies over MaxDocumentBytes.
func (v *Verifier) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", url, err)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused; never log the body.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("fetching %s: status %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, v.cfg.MaxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", url, err)
	}
	if int64(len(body)) > v.cfg.MaxDocumentBytes {
		return nil, fmt.Errorf("fetching %s: larger than %d bytes", url, v.cfg.MaxDocumentBytes)
	}
	return body, nil
}
