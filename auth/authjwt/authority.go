package authjwt

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/blockgate/blockgate/tenants"
)

// MaxTokenTTL is the longest an app token may live.
const MaxTokenTTL = 30 * 24 * time.Hour

// maxTokenLen bounds what Verify parses. A token of ours is about 500 bytes;
// the bound keeps a hostile header from costing more than a small decode.
const maxTokenLen = 4096

// Claims are what an app token says.
type Claims struct {
	Tenant tenants.ID
	AppID  string
	// TokenID is the jti, the id the token registry revokes by.
	TokenID   string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Principal is who a request bearing the token acts for.
func (c Claims) Principal() tenants.Principal {
	return tenants.Principal{Tenant: c.Tenant, AppID: c.AppID, TokenID: c.TokenID}
}

// Subject is the sub claim of a token for app in tenant: the path of the
// app's SPIFFE ID.
func Subject(tenant tenants.ID, appID string) string {
	return "tenant/" + string(tenant) + "/app/" + appID
}

// Config configures an Authority. The zero value is usable.
type Config struct {
	// Issuer is the iss claim of issued tokens and the only one accepted.
	// Default "blockgate".
	Issuer string
	// Audience is the aud claim of issued tokens and the one required.
	// Default "blockgate".
	Audience string
	// RetiredKeyGrace is how long a retired key still verifies after its
	// retirement. Default MaxTokenTTL, so that no token outlives the key
	// that signed it; negative means retired keys stop verifying at once
	// (for a key that leaked).
	RetiredKeyGrace time.Duration
	// Leeway is the clock skew allowed when checking exp, nbf and iat.
	// Default 30s; negative means none.
	Leeway time.Duration
	// KeyReloadInterval is the least time between two reloads of the key
	// store caused by tokens with an unknown kid. Default 5s; negative means
	// an unknown kid never causes a reload.
	KeyReloadInterval time.Duration
	// VerifiedCacheSize bounds the cache of tokens that verified, so that
	// an app presenting the same token on every request costs one signature
	// check rather than one per request. A hit still checks expiry and that
	// the signing key still verifies. Default 10000 tokens (a few MB);
	// negative disables the cache.
	VerifiedCacheSize int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Issuer == "" {
		c.Issuer = "blockgate"
	}
	if c.Audience == "" {
		c.Audience = "blockgate"
	}
	if c.RetiredKeyGrace == 0 {
		c.RetiredKeyGrace = MaxTokenTTL
	} else if c.RetiredKeyGrace < 0 {
		c.RetiredKeyGrace = 0
	}
	if c.Leeway == 0 {
		c.Leeway = 30 * time.Second
	} else if c.Leeway < 0 {
		c.Leeway = 0
	}
	if c.KeyReloadInterval == 0 {
		c.KeyReloadInterval = 5 * time.Second
	}
	if c.VerifiedCacheSize == 0 {
		c.VerifiedCacheSize = 10000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Authority issues and verifies app tokens. Its methods are safe for
// concurrent use.
type Authority struct {
	store  KeyStore
	cfg    Config
	logger *slog.Logger
	parser *jwt.Parser
	// keyfunc is a.lookupKey, bound once so that Verify does not allocate a
	// method value per call.
	keyfunc jwt.Keyfunc

	keys     atomic.Pointer[keySet]
	verified *verifiedCache // nil when disabled
	// writeMu serialises the writers of keys: Load, Reload, Rotate.
	writeMu sync.Mutex

	// reloadMu guards the rate limit on reloads caused by unknown kids.
	reloadMu   sync.Mutex
	lastReload time.Time     // when the last such reload started
	inflight   chan struct{} // closed when the running one ends; nil if none
}

// New returns an Authority over store. It holds no key until Load.
// A nil logger discards.
func New(store KeyStore, cfg Config, logger *slog.Logger) *Authority {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &Authority{
		store:  store,
		cfg:    cfg,
		logger: logger.With("component", "authjwt"),
	}
	a.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
	)
	a.keyfunc = a.lookupKey
	if cfg.VerifiedCacheSize > 0 {
		a.verified = newVerifiedCache(cfg.VerifiedCacheSize)
	}
	a.keys.Store(&keySet{})
	return a
}

// verifier is a key as Verify and JWKS see it.
type verifier struct {
	id        string
	pub       *ecdsa.PublicKey
	createdAt time.Time
	// until is when the key stops verifying: its retirement plus the grace.
	// Zero for a key that still signs.
	until time.Time
	jwk   []byte
}

func (v *verifier) verifiesAt(now time.Time) bool {
	return v.until.IsZero() || now.Before(v.until)
}

// keySet is an immutable snapshot of the keys.
type keySet struct {
	byID   map[string]*verifier
	sorted []*verifier // newest first
	signer *ecdsa.PrivateKey
	kid    string // the signer's
}

// newVerifier checks a stored key and returns its verifying half.
func newVerifier(k Key, grace time.Duration) (*verifier, error) {
	if k.Private == nil {
		return nil, errors.New("no private key")
	}
	x, y, err := coordinates(&k.Private.PublicKey)
	if err != nil {
		return nil, err
	}
	if kid, _ := thumbprint(&k.Private.PublicKey); kid != k.ID {
		return nil, fmt.Errorf("kid is not the key's thumbprint %s", kid)
	}
	v := &verifier{id: k.ID, pub: &k.Private.PublicKey, createdAt: k.CreatedAt, jwk: jwk(k.ID, x, y)}
	if k.RetiredAt != nil {
		v.until = k.RetiredAt.Add(grace)
	}
	return v, nil
}

// newKeySet builds a snapshot from stored keys as of now, leaving out keys
// that are unusable (logged) or past their grace.
func (a *Authority) newKeySet(keys []Key, now time.Time) *keySet {
	ks := &keySet{byID: make(map[string]*verifier, len(keys))}
	var signerCreated time.Time
	for _, k := range keys {
		v, err := newVerifier(k, a.cfg.RetiredKeyGrace)
		if err != nil {
			a.logger.Error("skipping unusable signing key", "kid", k.ID, "err", err)
			continue
		}
		if !v.verifiesAt(now) {
			continue
		}
		if _, dup := ks.byID[k.ID]; dup {
			a.logger.Error("skipping duplicate signing key", "kid", k.ID)
			continue
		}
		ks.add(v)
		if k.RetiredAt == nil && (ks.signer == nil || k.CreatedAt.After(signerCreated) ||
			(k.CreatedAt.Equal(signerCreated) && k.ID > ks.kid)) {
			ks.signer, ks.kid, signerCreated = k.Private, k.ID, k.CreatedAt
		}
	}
	ks.sort()
	return ks
}

func (ks *keySet) add(v *verifier) {
	ks.byID[v.id] = v
	ks.sorted = append(ks.sorted, v)
}

func (ks *keySet) sort() {
	slices.SortFunc(ks.sorted, func(p, q *verifier) int {
		if c := q.createdAt.Compare(p.createdAt); c != 0 {
			return c
		}
		return cmp.Compare(q.id, p.id)
	})
}

// Load reads the keys from the store and, if none of them can sign, adds a
// new key (which retires the others). Call it once before serving; it may be
// called again.
func (a *Authority) Load(ctx context.Context) error {
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	if err := a.reloadLocked(ctx); err != nil {
		return err
	}
	if a.keys.Load().signer != nil {
		return nil
	}
	k, err := a.addKeyLocked(ctx)
	if err != nil {
		return err
	}
	a.logger.Info("created the first signing key", "kid", k.ID)
	return nil
}

// Reload replaces the keys in memory with the store's. The gateway calls it
// when another node rotates keys; Verify also calls it, rate-limited, when a
// token names an unknown kid. On error the keys in memory are unchanged.
func (a *Authority) Reload(ctx context.Context) error {
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	return a.reloadLocked(ctx)
}

func (a *Authority) reloadLocked(ctx context.Context) error {
	keys, err := a.store.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("loading signing keys: %w", err)
	}
	a.keys.Store(a.newKeySet(keys, a.cfg.Now()))
	return nil
}

// Rotate adds a new signing key, which signs every token issued from now on;
// the previous keys are retired and keep verifying for the grace period.
// Other nodes pick the new key up on Reload, or on the first token they see
// that names it.
func (a *Authority) Rotate(ctx context.Context) (kid string, err error) {
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	k, err := a.addKeyLocked(ctx)
	if err != nil {
		return "", err
	}
	a.logger.Info("rotated signing key", "kid", k.ID)
	return k.ID, nil
}

// addKeyLocked stores a new key, then reloads so that memory shows what the
// store did (its retirement times, a key another node added meanwhile). If
// that reload fails the key is stored all the same, so it is installed in
// memory by hand rather than failing a rotation that happened.
func (a *Authority) addKeyLocked(ctx context.Context) (Key, error) {
	now := a.cfg.Now()
	k, err := NewKey(now)
	if err != nil {
		return Key{}, err
	}
	if err := a.store.AddSigningKey(ctx, k); err != nil {
		return Key{}, fmt.Errorf("storing signing key %s: %w", k.ID, err)
	}
	err = a.reloadLocked(ctx)
	if err == nil {
		return k, nil
	}
	a.logger.Warn("reloading after adding a signing key; installing it locally", "kid", k.ID, "err", err)
	v, err := newVerifier(k, a.cfg.RetiredKeyGrace)
	if err != nil {
		return Key{}, err // NewKey made it, so this cannot happen
	}
	old := a.keys.Load()
	ks := &keySet{byID: make(map[string]*verifier, len(old.sorted)+1), signer: k.Private, kid: k.ID}
	for _, o := range old.sorted {
		if o.until.IsZero() { // retired by the store just now
			retired := *o
			retired.until = now.Add(a.cfg.RetiredKeyGrace)
			o = &retired
		}
		if o.verifiesAt(now) {
			ks.add(o)
		}
	}
	ks.add(v)
	ks.sort()
	a.keys.Store(ks)
	return k, nil
}

// Issue signs a token saying c. c.Tenant, c.AppID and c.TokenID are
// required; c.IssuedAt defaults to now; c.ExpiresAt is required and at most
// MaxTokenTTL after c.IssuedAt. Times are kept to the second.
func (a *Authority) Issue(c Claims) (string, error) {
	if _, err := tenants.ParseID(string(c.Tenant)); err != nil {
		return "", fmt.Errorf("issuing app token: %w", err)
	}
	if err := tenants.ValidateAppID(c.AppID); err != nil {
		return "", fmt.Errorf("issuing app token: %w", err)
	}
	if c.TokenID == "" {
		return "", errors.New("issuing app token: a token id is required")
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = a.cfg.Now()
	}
	switch ttl := c.ExpiresAt.Sub(c.IssuedAt); {
	case c.ExpiresAt.IsZero():
		return "", errors.New("issuing app token: an expiry is required")
	case ttl <= 0:
		return "", fmt.Errorf("issuing app token: expiry %s is not after issue time %s",
			c.ExpiresAt.Format(time.RFC3339), c.IssuedAt.Format(time.RFC3339))
	case ttl > MaxTokenTTL:
		return "", fmt.Errorf("issuing app token: lifetime %s exceeds the maximum %s", ttl, MaxTokenTTL)
	}
	ks := a.keys.Load()
	if ks.signer == nil {
		return "", fmt.Errorf("issuing app token: %w", ErrNoSigningKey)
	}
	iat := jwt.NewNumericDate(c.IssuedAt)
	t := jwt.NewWithClaims(jwt.SigningMethodES256, &tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    a.cfg.Issuer,
			Subject:   Subject(c.Tenant, c.AppID),
			Audience:  jwt.ClaimStrings{a.cfg.Audience},
			ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
			NotBefore: iat,
			IssuedAt:  iat,
			ID:        c.TokenID,
		},
		Tenant: string(c.Tenant),
		AppID:  c.AppID,
	})
	t.Header["kid"] = ks.kid
	s, err := t.SignedString(ks.signer)
	if err != nil {
		return "", fmt.Errorf("signing app token: %w", err)
	}
	return s, nil
}

// tokenClaims is the JSON of an app token's claims.
type tokenClaims struct {
	jwt.RegisteredClaims
	Tenant string `json:"tenant,omitempty"`
	AppID  string `json:"app_id,omitempty"`
}

var (
	errNoJTI       = errors.New("jti claim is required")
	errNoIAT       = errors.New("iat claim is required")
	errNoTenant    = errors.New("tenant claim is required")
	errNoAppID     = errors.New("app_id claim is required")
	errSubMismatch = errors.New("sub claim does not match tenant and app_id")
	errTooLong     = errors.New("token lifetime exceeds the maximum")
)

// Validate is called by the jwt parser after the signature has been checked,
// alongside its own checks of the registered claims (jwt.ClaimsValidator).
func (c *tokenClaims) Validate() error {
	if c.ID == "" {
		return errNoJTI
	}
	if c.IssuedAt == nil {
		return errNoIAT
	}
	if c.Tenant == "" {
		return errNoTenant
	}
	if _, err := tenants.ParseID(c.Tenant); err != nil {
		return fmt.Errorf("tenant claim: %w", err)
	}
	if c.AppID == "" {
		return errNoAppID
	}
	if err := tenants.ValidateAppID(c.AppID); err != nil {
		return fmt.Errorf("app_id claim: %w", err)
	}
	// sub == Subject(tenant, app_id), compared without building the string.
	rest, ok1 := strings.CutPrefix(c.Subject, "tenant/")
	rest, ok2 := strings.CutPrefix(rest, c.Tenant)
	rest, ok3 := strings.CutPrefix(rest, "/app/")
	if !ok1 || !ok2 || !ok3 || rest != c.AppID {
		return errSubMismatch
	}
	// The parser runs Validate even when its own checks failed, so a
	// missing exp (already reported) must not be dereferenced.
	if c.ExpiresAt != nil && c.ExpiresAt.Sub(c.IssuedAt.Time) > MaxTokenTTL {
		return errTooLong
	}
	return nil
}

var (
	errNoKID      = errors.New("kid header is required")
	errUnknownKID = errors.New("unknown kid")
	errCrit       = errors.New("crit header is not supported")
)

// lookupKey is the jwt.Keyfunc. It runs after the parser has checked that
// the algorithm is ES256.
func (a *Authority) lookupKey(t *jwt.Token) (any, error) {
	if t.Method != jwt.SigningMethodES256 { // belt and braces: WithValidMethods
		return nil, ErrInvalid
	}
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 4.1.11: a recipient must refuse extensions it does not
		// understand, and this one understands none.
		return nil, errCrit
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errNoKID
	}
	v := a.keys.Load().byID[kid]
	if v == nil || !v.verifiesAt(a.cfg.Now()) {
		return nil, errUnknownKID
	}
	return v.pub, nil
}

// Verify checks token and returns its claims. Every refusal matches
// ErrInvalid and, where it applies, ErrExpired, ErrNotYetValid or
// ErrUnknownKey. It does not check revocation: look Claims.TokenID up.
// ctx bounds the key store reload that an unknown kid may cause. Tokens
// that verified are cached (see Config.VerifiedCacheSize).
func (a *Authority) Verify(ctx context.Context, token string) (Claims, error) {
	if len(token) > maxTokenLen {
		return Claims{}, reject(ErrInvalid, errors.New("token too long"))
	}
	if a.verified != nil {
		if v := a.verified.get(token); v != nil {
			if a.stillValid(v) {
				return v.claims, nil
			}
			// Expired, or its key retired past the grace: drop it, and let
			// the full check say why.
			a.verified.remove(token)
		}
	}
	var c tokenClaims
	t, err := a.parser.ParseWithClaims(token, &c, a.keyfunc)
	if err != nil && errors.Is(err, errUnknownKID) {
		kid, _ := t.Header["kid"].(string)
		if rerr := a.reloadForUnknownKID(ctx, kid); rerr != nil {
			return Claims{}, reject(ErrUnknownKey, fmt.Errorf("kid %q: %w", shortKID(kid), rerr))
		}
		c = tokenClaims{}
		t, err = a.parser.ParseWithClaims(token, &c, a.keyfunc)
	}
	if err != nil {
		return Claims{}, classify(err, t)
	}
	claims := Claims{
		Tenant:    tenants.ID(c.Tenant),
		AppID:     c.AppID,
		TokenID:   c.ID,
		IssuedAt:  c.IssuedAt.Time,
		ExpiresAt: c.ExpiresAt.Time,
	}
	if a.verified != nil {
		v := &verifiedToken{claims: claims, notBefore: c.IssuedAt.Time}
		v.kid, _ = t.Header["kid"].(string)
		if c.NotBefore != nil && c.NotBefore.After(v.notBefore) {
			v.notBefore = c.NotBefore.Time
		}
		a.verified.put(token, v)
	}
	return claims, nil
}

// stillValid re-checks what may have changed since a cached token verified:
// the time, and whether its key still verifies.
func (a *Authority) stillValid(v *verifiedToken) bool {
	now := a.cfg.Now()
	if !now.Before(v.claims.ExpiresAt.Add(a.cfg.Leeway)) || now.Before(v.notBefore.Add(-a.cfg.Leeway)) {
		return false
	}
	k := a.keys.Load().byID[v.kid]
	return k != nil && k.verifiesAt(now)
}

func classify(err error, t *jwt.Token) error {
	switch {
	case errors.Is(err, errUnknownKID):
		kid := ""
		if t != nil {
			kid, _ = t.Header["kid"].(string)
		}
		return reject(ErrUnknownKey, fmt.Errorf("kid %q: %w", shortKID(kid), err))
	case errors.Is(err, jwt.ErrTokenExpired):
		return reject(ErrExpired, err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return reject(ErrNotYetValid, err)
	default:
		return reject(ErrInvalid, err)
	}
}

// errReloadLimited says an unknown kid found the reload rate limit spent.
var errReloadLimited = errors.New("key store reloaded too recently")

// reloadForUnknownKID reloads the key store unless one was started less than
// KeyReloadInterval ago. Callers that arrive while a reload runs wait for it
// rather than starting another, so the burst of tokens that follows a
// rotation on another node costs one store read. A nil error means a reload
// ran (by this caller or another) and the key may now be known.
func (a *Authority) reloadForUnknownKID(ctx context.Context, kid string) error {
	if a.cfg.KeyReloadInterval < 0 {
		return errReloadLimited
	}
	a.reloadMu.Lock()
	if ch := a.inflight; ch != nil {
		a.reloadMu.Unlock()
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	now := a.cfg.Now()
	if !a.lastReload.IsZero() && now.Sub(a.lastReload) < a.cfg.KeyReloadInterval {
		a.reloadMu.Unlock()
		// A reload that ended between this caller's lookup and now may
		// have brought the key.
		if a.keys.Load().byID[kid] != nil {
			return nil
		}
		return errReloadLimited
	}
	ch := make(chan struct{})
	a.inflight, a.lastReload = ch, now
	a.reloadMu.Unlock()
	defer func() {
		a.reloadMu.Lock()
		a.inflight = nil
		a.reloadMu.Unlock()
		close(ch)
	}()

	a.logger.Info("reloading signing keys for an unknown kid", "kid", shortKID(kid))
	if err := a.Reload(ctx); err != nil {
		a.logger.Warn("reloading signing keys for an unknown kid", "kid", shortKID(kid), "err", err)
		return err
	}
	return nil
}

// Issuer is the iss claim of the tokens the authority issues and accepts.
func (a *Authority) Issuer() string { return a.cfg.Issuer }

// JWKS returns the JSON Web Key Set of every key that still verifies, newest
// first, for /.well-known/jwks.json. The slice is the caller's.
func (a *Authority) JWKS() []byte {
	ks := a.keys.Load()
	now := a.cfg.Now()
	var b bytes.Buffer
	b.Grow(16 + len(ks.sorted)*160)
	b.WriteString(`{"keys":[`)
	n := 0
	for _, v := range ks.sorted {
		if !v.verifiesAt(now) {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		b.Write(v.jwk)
		n++
	}
	b.WriteString("]}")
	return b.Bytes()
}
