package auth

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blockgate/blockgate/auth/authjwt"
	"github.com/blockgate/blockgate/tenants"
)

// Revocations lists the ids of revoked tokens that have not expired.
type Revocations interface {
	RevokedTokens(ctx context.Context) ([]string, error)
}

// ErrRevoked is returned for a token that was revoked.
var ErrRevoked = errors.New("token revoked")

// Authenticator turns an app token into a Principal: the token authority
// checks the signature and claims (caching tokens it has verified), and
// revocation is checked on every call against an in-memory set that Refresh
// reloads from the registry and MarkRevoked updates at once on the node that
// revoked.
//
// It is safe for concurrent use.
type Authenticator struct {
	jwt         *authjwt.Authority
	revocations Revocations
	logger      *slog.Logger
	now         func() time.Time

	revoked atomic.Pointer[map[string]struct{}]
	mu      sync.Mutex // serialises writers of revoked and guards marked
	// marked holds ids revoked on this node recently, so that a Refresh that
	// read the registry just before the revocation committed cannot undo it.
	marked map[string]time.Time
}

// NewAuthenticator returns an authenticator over the token authority and the
// registry's revocation list.
func NewAuthenticator(a *authjwt.Authority, rev Revocations, logger *slog.Logger) *Authenticator {
	au := &Authenticator{jwt: a, revocations: rev, logger: logger.With("component", "auth"), now: time.Now,
		marked: make(map[string]time.Time)}
	empty := map[string]struct{}{}
	au.revoked.Store(&empty)
	return au
}

// Authenticate verifies token and returns who it speaks for.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (tenants.Principal, error) {
	if token == "" {
		return tenants.Principal{}, errors.New("no app token: send it in the dapr-api-token header or as Authorization: Bearer")
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
