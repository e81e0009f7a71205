package tenantspg

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/blockgate/blockgate/tenants"
)

// JoinTokenPrefix starts the text of every join token, so that a token
// found in a file or a log says what it is.
const JoinTokenPrefix = "bgjoin_"

// JoinTokenKind is the Change.Kind of a join token issued or revoked; ID
// is the token's id. The xDS server ends the streams of a revoked token on
// it.
const JoinTokenKind = "jointoken"

// MaxJoinTokenTTL bounds the lifetime of a join token.
const MaxJoinTokenTTL = 366 * 24 * time.Hour

// ErrInvalidJoinToken is returned (wrapped, with the reason) by
// VerifyJoinToken for a token that is malformed, unknown, expired or
// revoked. Other errors are the database's.
var ErrInvalidJoinToken = errors.New("invalid join token")

// JoinToken describes a join token: the credential with which an app's
// Envoy sidecar first connects to the xDS server. The registry keeps only
// the SHA-256 of its text.
type JoinToken struct {
	ID        string     `json:"id"`
	Tenant    tenants.ID `json:"tenant"`
	AppID     string     `json:"appId"`
	IssuedAt  time.Time  `json:"issuedAt"`
	ExpiresAt time.Time  `json:"expiresAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

const joinTokenColumns = "id, tenant_id, app_id, issued_at, expires_at, revoked_at"

func scanJoinToken(row pgx.Row, extra ...any) (JoinToken, error) {
	var t JoinToken
	err := row.Scan(append([]any{&t.ID, &t.Tenant, &t.AppID, &t.IssuedAt, &t.ExpiresAt, &t.RevokedAt}, extra...)...)
	return t, err
}

// IssueJoinToken makes a join token for the app appID of tenant, valid for
// ttl (more than zero, at most MaxJoinTokenTTL) from the database's clock,
// and returns it with its text, which exists only in this return value.
// The app must exist: tenants.ErrNotFound otherwise.
func (r *Registry) IssueJoinToken(ctx context.Context, tenant tenants.ID, appID string, ttl time.Duration) (JoinToken, string, error) {
	if ttl <= 0 || ttl > MaxJoinTokenTTL {
		return JoinToken{}, "", fmt.Errorf("join token lifetime %s is out of range: use more than 0 and at most %s", ttl, MaxJoinTokenTTL)
	}
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return JoinToken{}, "", err
	}
	var idBytes [12]byte
	if _, err := rand.Read(idBytes[:]); err != nil {
		return JoinToken{}, "", err
	}
	text := JoinTokenPrefix + hex.EncodeToString(secret[:])
	hash := sha256.Sum256([]byte(text))
	var t JoinToken
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		var err error
		t, err = scanJoinToken(tx.QueryRow(ctx, `
			INSERT INTO join_tokens (id, tenant_id, app_id, token_hash, issued_at, expires_at)
			VALUES ($1, $2, $3, $4, now(), now() + make_interval(secs => $5))
			RETURNING `+joinTokenColumns,
			"jt_"+hex.EncodeToString(idBytes[:]), string(tenant), appID, hash[:], ttl.Seconds()))
		return []Change{{Kind: JoinTokenKind, Tenant: tenant, ID: t.ID}}, err
	})
	if isForeignKeyViolation(err) {
		return JoinToken{}, "", fmt.Errorf("app %s in tenant %s: %w", appID, tenant, tenants.ErrNotFound)
	}
	if err != nil {
		return JoinToken{}, "", err
	}
	return t, text, nil
}

// VerifyJoinToken returns the join token whose text is text if it is
// neither expired (by the database's clock) nor revoked. Otherwise the
// error wraps ErrInvalidJoinToken and says why; for an expired or revoked
// token the JoinToken is returned too, so that the caller can log which.
// The text itself is never part of an error.
func (r *Registry) VerifyJoinToken(ctx context.Context, text string) (JoinToken, error) {
	if !strings.HasPrefix(text, JoinTokenPrefix) {
		return JoinToken{}, fmt.Errorf("%w: it does not start with %s", ErrInvalidJoinToken, JoinTokenPrefix)
	}
	hash := sha256.Sum256([]byte(text))
	var t JoinToken
	var expired bool
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		var err error
		t, err = scanJoinToken(tx.QueryRow(ctx, "SELECT "+joinTokenColumns+", expires_at <= now() FROM join_tokens WHERE token_hash = $1",
			hash[:]), &expired)
		return nil, err
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return JoinToken{}, fmt.Errorf("%w: unknown token", ErrInvalidJoinToken)
	case err != nil:
		return JoinToken{}, err
	case t.RevokedAt != nil:
		return t, fmt.Errorf("%w: token %s was revoked at %s", ErrInvalidJoinToken, t.ID, t.RevokedAt.UTC().Format(time.RFC3339))
	case expired:
		return t, fmt.Errorf("%w: token %s expired at %s", ErrInvalidJoinToken, t.ID, t.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return t, nil
}

// RevokeJoinToken marks the join token id of tenant revoked and returns
// it; revoking twice is fine, and keeps the first time. A token of another
// tenant is tenants.ErrNotFound. The change notification lets every xDS
// server end the streams that the token opened.
func (r *Registry) RevokeJoinToken(ctx context.Context, tenant tenants.ID, id string) (JoinToken, error) {
	var t JoinToken
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		var err error
		t, err = scanJoinToken(tx.QueryRow(ctx, `UPDATE join_tokens SET revoked_at = coalesce(revoked_at, now())
			WHERE tenant_id = $1 AND id = $2 RETURNING `+joinTokenColumns, string(tenant), id))
		return []Change{{Kind: JoinTokenKind, Tenant: tenant, ID: id}}, err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("join token %s in tenant %s: %w", id, tenant, tenants.ErrNotFound)
	}
	return t, err
}

// JoinTokens lists a tenant's join tokens, expired and revoked ones
// included, newest first.
func (r *Registry) JoinTokens(ctx context.Context, tenant tenants.ID) ([]JoinToken, error) {
	var out []JoinToken
	err := r.tenant(ctx, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT "+joinTokenColumns+
			" FROM join_tokens WHERE tenant_id = $1 ORDER BY issued_at DESC, id", string(tenant))
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (JoinToken, error) { return scanJoinToken(row) })
		return err
	})
	return out, err
}
