package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/auth/authjwt"
	"github.com/blockgate/blockgate/auth/authoidc"
	"github.com/blockgate/blockgate/tenants"
)

// Revocations lists the ids of revoked tokens that have not expired.
type Revocations interface {
	RevokedTokens(ctx context.Context) ([]string, error)
}

// ErrRevoked is returned for a token that was revoked.
var ErrRevoked = errors.New("token revoked")

// ErrNoCredential is returned for a request with neither a token nor a
// client certificate.
var ErrNoCredential = errors.New("no app token: send it in the dapr-api-token header or as Authorization: Bearer, or present an SVID over mTLS")

// Federated verifies the tokens of external issuers that tenants trust
// (authoidc.Verifier).
type Federated interface {
	// Active reports whether any issuer is trusted at all.
	Active() bool
	HasIssuer(iss string) bool
	Verify(ctx context.Context, token string) (tenants.Principal, error)
}

// Authenticator turns an app token into a Principal: the token authority
// checks the signature and claims (caching tokens it has verified), and
// revocation is checked on every call against an in-memory set that Refresh
// reloads from the registry and MarkRevoked updates at once on the node that
// revoked.
//
// It is safe for concurrent use.
type Authenticator struct {
	jwt         *authjwt.Authority
	issuer      string
	revocations Revocations
	logger      *slog.Logger
	now         func() time.Time
	// federated, when set, verifies tokens of other issuers.
	federated Federated
	// trustDomain, when set, makes verified client certificates (SVIDs
	// of apps in it) credentials.
	trustDomain spiffeid.TrustDomain

	revoked atomic.Pointer[map[string]struct{}]
	mu      sync.Mutex // serialises writers of revoked and guards marked
	// marked holds ids revoked on this node recently, so that a Refresh that
	// read the registry just before the revocation committed cannot undo it.
	marked map[string]time.Time
}

// Options are the credentials an Authenticator accepts beside the
// gateway's own app tokens.
type Options struct {
	// Federated verifies tokens of external issuers; nil accepts none.
	Federated Federated
	// TrustDomain, when not zero, accepts client certificates that the TLS
	// listener verified against the gateway's CA (authca.ServerTLSConfig)
	// and that name an app of a tenant in it.
	TrustDomain spiffeid.TrustDomain
}

// NewAuthenticator returns an authenticator over the token authority and the
// registry's revocation list.
func NewAuthenticator(a *authjwt.Authority, rev Revocations, logger *slog.Logger, opts Options) *Authenticator {
	au := &Authenticator{jwt: a, issuer: a.Issuer(), revocations: rev, logger: logger.With("component", "auth"), now: time.Now,
		marked: make(map[string]time.Time), federated: opts.Federated, trustDomain: opts.TrustDomain}
	empty := map[string]struct{}{}
	au.revoked.Store(&empty)
	return au
}

// AuthenticateRequest returns who a request speaks for: its token when it
// has one, else the SVID its client presented over mTLS (conn is the
// connection's TLS state, nil for plain connections). A token wins over a
// certificate, as an explicit credential.
func (a *Authenticator) AuthenticateRequest(ctx context.Context, token string, conn *tls.ConnectionState) (tenants.Principal, error) {
	if token != "" || conn == nil || a.trustDomain.IsZero() {
		return a.Authenticate(ctx, token)
	}
	id, ok := authca.PeerID(*conn)
	if !ok {
		return tenants.Principal{}, ErrNoCredential
	}
	p, err := authca.PrincipalOf(id, a.trustDomain)
	if err != nil {
		return tenants.Principal{}, err
	}
	return p, nil
}

// Authenticate verifies token and returns who it speaks for.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (tenants.Principal, error) {
	if token == "" {
		return tenants.Principal{}, ErrNoCredential
	}
	if f := a.federated; f != nil && f.Active() {
		// Only a tenant's trusted issuer routes away from the gateway's
		// own tokens; an unverified iss decides nothing else.
		if iss, ok := authoidc.PeekIssuer(token); ok && iss != a.issuer && f.HasIssuer(iss) {
			return f.Verify(ctx, token)
		}
	}
	c, err := a.jwt.Verify(ctx, token)
	if err != nil {
		return tenants.Principal{}, err
	}
	if _, revoked := (*a.revoked.Load())[c.TokenID]; revoked {
		return tenants.Principal{}, ErrRevoked
	}
	return c.Principal(), nil
}

// MarkRevoked makes id fail at once on this node, before the registry's
// notification comes back.
func (a *Authenticator) MarkRevoked(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := *a.revoked.Load()
	next := make(map[string]struct{}, len(old)+1)
	for k := range old {
		next[k] = struct{}{}
	}
	next[id] = struct{}{}
	a.revoked.Store(&next)
	a.marked[id] = a.now()
}

// Refresh reloads the revocation list.
func (a *Authenticator) Refresh(ctx context.Context) error {
	ids, err := a.revocations.RevokedTokens(ctx)
	if err != nil {
		return err
	}
	next := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		next[id] = struct{}{}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, at := range a.marked {
		if a.now().Sub(at) > time.Minute {
			delete(a.marked, id)
			continue
		}
		next[id] = struct{}{}
	}
	a.revoked.Store(&next)
	return nil
}

// Run refreshes the revocation list every interval until ctx is done, as a
// safety net behind the registry's notifications.
func (a *Authenticator) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := a.Refresh(ctx); err != nil && ctx.Err() == nil {
				a.logger.Warn("refreshing token revocations failed; keeping the last list", "err", err)
			}
		}
	}
}
