package authoidc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/errgroup"

	"github.com/blockgate/blockgate/internal/lograte"
	"github.com/blockgate/blockgate/tenants"
)

// maxTokenLen bounds what Verify parses. A Kubernetes service-account token
// is about 1 KB; identity providers that put group lists in their tokens
// reach a few KB.
const maxTokenLen = 16 << 10

// fetchConcurrency bounds the issuers Run and Refresh fetch at once.
const fetchConcurrency = 8

// Config configures a Verifier. The zero value is usable.
type Config struct {
	// HTTPClient fetches discovery documents and JWKS. Default: a client
	// with FetchTimeout that follows at most three redirects, to https
	// only. Supply one to trust a private CA (a Kubernetes API server's)
	// or to restrict which addresses the gateway may reach: issuers are
	// configured by tenants, so every fetch is a request a tenant chose.
	HTTPClient *http.Client
	// FetchTimeout bounds one fetch of an issuer's keys, discovery
	// included. Default 10s.
	FetchTimeout time.Duration
	// MaxDocumentBytes bounds a discovery document or JWKS. Default 1 MiB.
	MaxDocumentBytes int64
	// RefreshInterval is how old an issuer's keys may grow before Run
	// fetches them again, so that a key the issuer withdrew stops
	// verifying. Default 5m.
	RefreshInterval time.Duration
	// MinFetchInterval is the least time between two fetches of one
	// issuer's keys caused by tokens (an unknown kid, keys missing after a
	// failed fetch) or by Run retrying a failure: a flood of forged kids
	// costs at most one fetch per issuer per interval. Default 30s.
	MinFetchInterval time.Duration
	// Leeway is the clock skew allowed when checking exp, nbf and iat.
	// Default 30s; negative means none.
	Leeway time.Duration
	// VerifiedCacheSize bounds the cache of tokens that verified, so that
	// a workload presenting the same token on every request costs one
	// signature check rather than one per request. A hit still checks
	// expiry and that the key still verifies. Default 10000 tokens;
	// negative disables the cache.
	VerifiedCacheSize int
	// ReservedIssuers are issuers no federation may claim: the gateway's
	// own token issuer, whose tokens auth/authjwt verifies. Federations
	// naming one are left out by SetFederations.
	ReservedIssuers []string
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.FetchTimeout <= 0 {
		c.FetchTimeout = 10 * time.Second
	}
	if c.MaxDocumentBytes <= 0 {
		c.MaxDocumentBytes = 1 << 20
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = 5 * time.Minute
	}
	if c.MinFetchInterval <= 0 {
		c.MinFetchInterval = 30 * time.Second
	}
	if c.Leeway == 0 {
		c.Leeway = 30 * time.Second
	} else if c.Leeway < 0 {
		c.Leeway = 0
	}
	if c.VerifiedCacheSize == 0 {
		c.VerifiedCacheSize = 10000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func defaultClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("stopped after 3 redirects")
			}
			if req.URL.Scheme != "https" {
				return fmt.Errorf("refusing a redirect to %s", req.URL.Scheme)
			}
			return nil
		},
	}
}

// Claims are what a verified federated token says, as the gateway reads it.
type Claims struct {
	Tenant tenants.ID
	AppID  string
	// Federation names the tenant's federation that accepted the token,
	// for logs and audit.
	Federation string
	// Issuer and Subject are the token's iss and sub.
	Issuer  string
	Subject string
	// TokenID is "oidc:" and the token's jti, or empty when it has none.
	TokenID   string
	ExpiresAt time.Time
}

// Principal is who a request bearing the token acts for.
func (c Claims) Principal() tenants.Principal {
	return tenants.Principal{Tenant: c.Tenant, AppID: c.AppID, TokenID: c.TokenID}
}

// Verifier verifies tokens of the external issuers that tenants federate.
// Its methods are safe for concurrent use.
type Verifier struct {
	cfg    Config
	client *http.Client
	logger *slog.Logger

	snap atomic.Pointer[snapshot]
	// mu serialises SetFederations and guards sources.
	mu      sync.Mutex
	sources map[string]*keySource
	// kick wakes Run to fetch the keys of issuers SetFederations added.
	kick chan struct{}
}

// snapshot is an immutable view of the federations, replaced wholesale by
// SetFederations.
type snapshot struct {
	// byIssuer maps iss, then aud, to the one federation that accepts it.
	byIssuer map[string]map[string]*federation
	sources  []*keySource
	verified *verifiedCache // nil when disabled
}

// federation is a Federation ready to verify with.
type federation struct {
	Federation
	parser *jwt.Parser
	source *keySource
	claim  string
}

// New returns a Verifier that trusts no issuer until SetFederations.
// A nil logger discards.
func New(cfg Config, logger *slog.Logger) *Verifier {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	v := &Verifier{
		cfg:     cfg,
		client:  cfg.HTTPClient,
		logger:  logger.With("component", "authoidc"),
		sources: map[string]*keySource{},
		kick:    make(chan struct{}, 1),
	}
	if v.client == nil {
		v.client = defaultClient(cfg.FetchTimeout)
	}
	v.snap.Store(&snapshot{})
	return v
}

// SetFederations replaces the federations the verifier trusts; the gateway
// calls it with the registry's AllFederations at start and on every change.
// Federations that are invalid, have no valid tenant, claim a reserved
// issuer, or share their issuer and audience with another (which the
// registry refuses, so this means a bug) are left out and logged: a token
// must never be able to reach two tenants. Keys already fetched for an
// issuer that stays are kept. fs belongs to the verifier afterwards.
func (v *Verifier) SetFederations(fs []Federation) {
	v.mu.Lock()
	defer v.mu.Unlock()

	type pair struct{ iss, aud string }
	count := make(map[pair]int, len(fs))
	for _, f := range fs {
		count[pair{f.Issuer, f.Audience}]++
	}
	next := &snapshot{byIssuer: make(map[string]map[string]*federation)}
	sources := make(map[string]*keySource, len(v.sources))
	added := false
	for _, f := range fs {
		log := v.logger.With("tenant", f.Tenant, "federation", f.Name)
		if _, err := tenants.ParseID(string(f.Tenant)); err != nil {
			log.Error("leaving out a federation", "err", err)
			continue
		}
		if err := f.Validate(); err != nil {
			log.Error("leaving out a federation", "err", err)
			continue
		}
		if slices.Contains(v.cfg.ReservedIssuers, f.Issuer) {
			log.Error("leaving out a federation that claims the gateway's own issuer", "issuer", f.Issuer)
			continue
		}
		if count[pair{f.Issuer, f.Audience}] > 1 {
			log.Error("leaving out a federation whose issuer and audience another federation has", "issuer", f.Issuer,
				"audience", f.Audience)
			continue
		}
		id := sourceID(f.Issuer, f.JWKSURL)
		src := sources[id]
		if src == nil {
			if src = v.sources[id]; src == nil {
				src = &keySource{issuer: f.Issuer, jwksURL: f.JWKSURL, logLimit: lograte.Limiter{Every: time.Minute}}
				added = true
			}
			sources[id] = src
			next.sources = append(next.sources, src)
		}
		fed := &federation{Federation: f, source: src, claim: f.ClaimPath()}
		fed.parser = jwt.NewParser(
			jwt.WithValidMethods(f.AllowedAlgorithms()),
			jwt.WithStrictDecoding(),
			jwt.WithTimeFunc(v.cfg.Now),
			jwt.WithLeeway(v.cfg.Leeway),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithIssuer(f.Issuer),
			jwt.WithAudience(f.Audience),
		)
		auds := next.byIssuer[f.Issuer]
		if auds == nil {
			auds = make(map[string]*federation)
			next.byIssuer[f.Issuer] = auds
		}
		auds[f.Audience] = fed
	}
	if v.cfg.VerifiedCacheSize > 0 {
		next.verified = newVerifiedCache(v.cfg.VerifiedCacheSize)
	}
	v.sources = sources
	v.snap.Store(next)
	if added {
		select {
		case v.kick <- struct{}{}:
		default:
		}
	}
}

// HasIssuer reports whether some federation trusts iss. The authenticator
// uses it with PeekIssuer to send a token here rather than to the gateway's
// own token authority.
func (v *Verifier) HasIssuer(iss string) bool {
	return v.snap.Load().byIssuer[iss] != nil
}

// Active reports whether any federation is set, so that a caller can skip
// looking at tokens' issuers when no tenant federates. Safe for concurrent
// use.
func (v *Verifier) Active() bool {
	return len(v.snap.Load().byIssuer) > 0
}

// PeekIssuer returns the iss claim of a token without verifying anything,
// for routing only: ok is false when the token is not a JWS whose payload
// is a JSON object with a string iss.
func PeekIssuer(token string) (iss string, ok bool) {
	c, err := peek(token)
	if err != nil || c.Iss == "" {
		return "", false
	}
	return c.Iss, true
}

type peeked struct {
	Iss string           `json:"iss"`
	Aud jwt.ClaimStrings `json:"aud"`
}

var errMalformed = errors.New("token is not a JWT in compact form")

// peek decodes the payload of a compact JWS without checking anything, to
// choose the federation that will check it.
func peek(token string) (peeked, error) {
	_, rest, ok := strings.Cut(token, ".")
	if !ok {
		return peeked{}, errMalformed
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sig, ".") {
		return peeked{}, errMalformed
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(payload)
	if err != nil {
		return peeked{}, errMalformed
	}
	var c peeked
	if err := json.Unmarshal(b, &c); err != nil {
		return peeked{}, errMalformed
	}
	return c, nil
}

// Verify checks token and returns who it acts for: the app its federation
// maps it to, in that federation's tenant. See VerifyClaims.
func (v *Verifier) Verify(ctx context.Context, token string) (tenants.Principal, error) {
	c, err := v.VerifyClaims(ctx, token)
	if err != nil {
		return tenants.Principal{}, err
	}
	return c.Principal(), nil
}

var (
	errTooLong        = errors.New("token too long")
	errNoIssuer       = errors.New("iss claim is required")
	errAmbiguous      = errors.New("aud names the audiences of several federations")
	errCrit           = errors.New("crit header is not supported")
	errKIDType        = errors.New("kid header must be a string")
	errKeysNotFetched = errors.New("the issuer's keys could not be fetched")
)

// VerifyClaims checks token and returns what it says. Every refusal matches
// ErrInvalid and one of the other Err values where it applies. ctx bounds
// waiting for a fetch of the issuer's keys (which an unknown kid may cause,
// rate-limited); the fetch itself is bounded by Config.FetchTimeout. Tokens
// that verified are cached (see Config.VerifiedCacheSize).
func (v *Verifier) VerifyClaims(ctx context.Context, token string) (Claims, error) {
	if len(token) > maxTokenLen {
		return Claims{}, reject(ErrInvalid, errTooLong)
	}
	snap := v.snap.Load()
	if snap.verified != nil {
		if e := snap.verified.get(token); e != nil {
			if v.stillValid(e) {
				return e.claims, nil
			}
			snap.verified.remove(token)
		}
	}

	// Choose the federation by the unverified iss and aud; the parser then
	// checks both against that federation after the signature.
	p, err := peek(token)
	if err != nil {
		return Claims{}, reject(ErrInvalid, err)
	}
	if p.Iss == "" {
		return Claims{}, reject(ErrInvalid, errNoIssuer)
	}
	auds := snap.byIssuer[p.Iss]
	if auds == nil {
		return Claims{}, reject(ErrUnknownIssuer, fmt.Errorf("iss %q", short(p.Iss)))
	}
	f, err := match(auds, p.Aud)
	if err != nil {
		return Claims{}, reject(ErrAudience, err)
	}

	var used *publicKey
	claims := jwt.MapClaims{}
	t, err := f.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		k, err := v.lookupKey(ctx, f, t)
		if err != nil {
			return nil, err
		}
		used = k
		return k.key, nil
	})
	if err != nil {
		return Claims{}, classify(err, f)
	}
	// The parser has checked that aud holds f's audience; make sure that,
	// as decoded after verification, it holds no other federation's.
	aud, _ := claims.GetAudience()
	if _, err := match(auds, aud); err != nil {
		return Claims{}, &rejection{kind: ErrAudience, detail: err, federation: f.Name}
	}
	appID, err := f.appID(claims)
	if err != nil {
		return Claims{}, err
	}
	c := Claims{Tenant: f.Tenant, AppID: appID, Federation: f.Name, Issuer: f.Issuer}
	c.Subject, _ = claims["sub"].(string)
	if jti, _ := claims["jti"].(string); jti != "" {
		c.TokenID = "oidc:" + jti
	}
	exp, _ := claims.GetExpirationTime() // required: the parser checked it
	c.ExpiresAt = exp.Time
	if snap.verified != nil {
		e := &verifiedToken{claims: c, fed: f, key: used, alg: t.Method.Alg()}
		e.kid, _ = t.Header["kid"].(string)
		if nbf, _ := claims.GetNotBefore(); nbf != nil {
			e.notBefore = nbf.Time
		}
		if iat, _ := claims.GetIssuedAt(); iat != nil && iat.After(e.notBefore) {
			e.notBefore = iat.Time
		}
		snap.verified.put(token, e)
	}
	return c, nil
}

// match returns the one federation among auds (one issuer's, by audience)
// that aud names.
func match(auds map[string]*federation, aud []string) (*federation, error) {
	var f *federation
	for _, a := range aud {
		g := auds[a]
		if g == nil || g == f {
			continue
		}
		if f != nil {
			return nil, errAmbiguous
		}
		f = g
	}
	if f == nil {
		if len(aud) == 0 {
			return nil, errors.New("aud claim is required")
		}
		return nil, fmt.Errorf("aud %q", short(strings.Join(aud, ",")))
	}
	return f, nil
}

// appID reads the app id out of verified claims.
func (f *federation) appID(claims jwt.MapClaims) (string, error) {
	raw, ok := lookupClaim(claims, f.claim)
	s, isString := raw.(string)
	if !ok || !isString || s == "" {
		return "", &rejection{kind: ErrMissingClaim, detail: fmt.Errorf("claim %q", f.claim), federation: f.Name}
	}
	appID := s
	if len(f.Mapping) > 0 {
		if appID, ok = f.Mapping[s]; !ok {
			return "", &rejection{kind: ErrUnmapped, detail: fmt.Errorf("claim %q is %q", f.claim, short(s)), federation: f.Name}
		}
	}
	if tenants.ValidateAppID(appID) != nil {
		return "", &rejection{kind: ErrInvalidAppID, detail: fmt.Errorf("claim %q is %q", f.claim, short(appID)), federation: f.Name}
	}
	return appID, nil
}

// lookupKey is the jwt.Keyfunc, run after the parser has pinned the
// algorithm to the federation's. It fetches the issuer's keys when none are
// cached, and again (rate-limited) when the kid is unknown.
func (v *Verifier) lookupKey(ctx context.Context, f *federation, t *jwt.Token) (*publicKey, error) {
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 4.1.11: a recipient must refuse extensions it does not
		// understand, and this one understands none.
		return nil, reject(ErrInvalid, errCrit)
	}
	kid, ok := t.Header["kid"].(string)
	if !ok && t.Header["kid"] != nil {
		return nil, reject(ErrInvalid, errKIDType)
	}
	alg := t.Method.Alg()
	src := f.source
	ks := src.keys.Load()
	var ferr error
	if ks == nil {
		ferr = src.fetch(ctx, v, true)
		if ks = src.keys.Load(); ks == nil {
			return nil, rejectCause(ErrKeysUnavailable, errKeysNotFetched, ferr)
		}
	} else if k, err := ks.find(kid, alg); err == nil {
		return k, nil
	} else if errors.Is(err, errKIDRequired) {
		return nil, reject(ErrUnknownKey, err)
	} else {
		// Unknown: the issuer may have rotated since the last fetch. A
		// failed or rate-limited fetch leaves the keys as they were.
		ferr = src.fetch(ctx, v, true)
		ks = src.keys.Load()
	}
	k, err := ks.find(kid, alg)
	if err != nil {
		if kid != "" {
			err = fmt.Errorf("kid %q", short(kid))
		}
		return nil, rejectCause(ErrUnknownKey, err, ferr)
	}
	return k, nil
}

// classify turns a parser error into a rejection.
func classify(err error, f *federation) error {
	var r *rejection
	switch {
	case errors.As(err, &r):
		r.federation = f.Name
		return r
	case errors.Is(err, jwt.ErrTokenExpired):
		return &rejection{kind: ErrExpired, detail: err, federation: f.Name}
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return &rejection{kind: ErrNotYetValid, detail: err, federation: f.Name}
	default:
		return &rejection{kind: ErrInvalid, detail: err, federation: f.Name}
	}
}

// stillValid re-checks what may have changed since a cached token verified:
// the time, and whether its key is still the issuer's.
func (v *Verifier) stillValid(e *verifiedToken) bool {
	now := v.cfg.Now()
	if !now.Before(e.claims.ExpiresAt.Add(v.cfg.Leeway)) || now.Before(e.notBefore.Add(-v.cfg.Leeway)) {
		return false
	}
	ks := e.fed.source.keys.Load()
	if ks == nil {
		return false
	}
	k, err := ks.find(e.kid, e.alg)
	return err == nil && k == e.key
}

// Run keeps the issuers' keys fresh until ctx is done: it fetches the keys
// of issuers as SetFederations adds them, again when they are older than
// RefreshInterval, and retries failed fetches every MinFetchInterval. The
// keys are also fetched on demand by Verify, so Run is what withdraws a
// key the issuer no longer publishes and what spares the first token of a
// new federation the wait.
func (v *Verifier) Run(ctx context.Context) error {
	t := time.NewTicker(v.cfg.MinFetchInterval)
	defer t.Stop()
	for {
		v.refreshDue(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-v.kick:
		}
	}
}

// refreshDue fetches the keys that are missing or stale, a few issuers at
// a time. A panic is logged, not propagated: the keys in memory stay.
func (v *Verifier) refreshDue(ctx context.Context) {
	defer func() {
		if p := recover(); p != nil {
			v.logger.Error("panic refreshing federated issuers' keys", "panic", p)
		}
	}()
	now := v.cfg.Now()
	var g errgroup.Group
	g.SetLimit(fetchConcurrency)
	for _, src := range v.snap.Load().sources {
		if ks := src.keys.Load(); ks != nil && now.Sub(ks.fetchedAt) < v.cfg.RefreshInterval {
			continue
		}
		g.Go(func() error {
			_ = src.fetch(ctx, v, true) // logged by fetch
			return nil
		})
	}
	_ = g.Wait()
}

// Refresh fetches every trusted issuer's keys now, whatever the rate limit,
// and returns the failures joined. The keys of an issuer that failed stay
// as they were.
func (v *Verifier) Refresh(ctx context.Context) error {
	var g errgroup.Group
	g.SetLimit(fetchConcurrency)
	sources := v.snap.Load().sources
	errs := make([]error, len(sources))
	for i, src := range sources {
		g.Go(func() error {
			if err := src.fetch(ctx, v, false); err != nil {
				errs[i] = fmt.Errorf("issuer %s: %w", src.issuer, err)
			}
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}
