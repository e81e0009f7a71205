package tenantspg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/blockgate/blockgate/tenants"
)

// AdminToken describes a tenant admin token (never its text, which the
// registry does not have: it keeps only the SHA-256 of it).
type AdminToken struct {
	ID        string     `json:"id"`
	Tenant    tenants.ID `json:"tenant"`
	Name      string     `json:"name,omitempty"`
	IssuedAt  time.Time  `json:"issuedAt"`
	ExpiresAt time.Time  `json:"expiresAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

const adminTokenColumns = "id, tenant_id, name, issued_at, expires_at, revoked_at"

func scanAdminToken(row pgx.Row) (AdminToken, error) {
	var t AdminToken
	err := row.Scan(&t.ID, &t.Tenant, &t.Name, &t.IssuedAt, &t.ExpiresAt, &t.RevokedAt)
	return t, err
}

// CreateAdminToken records a tenant admin token by the SHA-256 of its text.
// The tenant must exist: tenants.ErrNotFound otherwise.
func (r *Registry) CreateAdminToken(ctx context.Context, t AdminToken, hash [32]byte) error {
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		_, err := tx.Exec(ctx, `INSERT INTO admin_tokens (id, tenant_id, name, token_hash, issued_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6)`, t.ID, string(t.Tenant), t.Name, hash[:], t.IssuedAt, t.ExpiresAt)
		return nil, err
	})
	if isForeignKeyViolation(err) {
		return fmt.Errorf("tenant %s: %w", t.Tenant, tenants.ErrNotFound)
	}
	return err
}

// AdminTokenByHash returns the admin token whose text has this SHA-256,
// revoked or expired ones included (the caller decides and says why);
// tenants.ErrNotFound if there is none.
func (r *Registry) AdminTokenByHash(ctx context.Context, hash [32]byte) (AdminToken, error) {
	var t AdminToken
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		var err error
		t, err = scanAdminToken(tx.QueryRow(ctx, "SELECT "+adminTokenColumns+" FROM admin_tokens WHERE token_hash = $1", hash[:]))
		return nil, err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("admin token: %w", tenants.ErrNotFound)
	}
	return t, err
}

// AdminToken returns one admin token by id; tenants.ErrNotFound if there is
// none.
func (r *Registry) AdminToken(ctx context.Context, id string) (AdminToken, error) {
	var t AdminToken
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		var err error
		t, err = scanAdminToken(tx.QueryRow(ctx, "SELECT "+adminTokenColumns+" FROM admin_tokens WHERE id = $1", id))
		return nil, err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("admin token %s: %w", id, tenants.ErrNotFound)
	}
	return t, err
}

// AdminTokens lists a tenant's admin tokens, newest first.
func (r *Registry) AdminTokens(ctx context.Context, tenant tenants.ID) ([]AdminToken, error) {
	var out []AdminToken
	err := r.tenant(ctx, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT "+adminTokenColumns+
			" FROM admin_tokens WHERE tenant_id = $1 ORDER BY issued_at DESC, id", string(tenant))
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (AdminToken, error) { return scanAdminToken(row) })
		return err
	})
	return out, err
}

// RevokeAdminToken marks an admin token revoked and returns it; revoking
// twice is fine. Every node looks admin tokens up on each request, so the
// revocation holds everywhere as soon as it commits.
func (r *Registry) RevokeAdminToken(ctx context.Context, id string) (AdminToken, error) {
	var t AdminToken
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		var err error
		t, err = scanAdminToken(tx.QueryRow(ctx, `UPDATE admin_tokens SET revoked_at = coalesce(revoked_at, now())
			WHERE id = $1 RETURNING `+adminTokenColumns, id))
		return nil, err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("admin token %s: %w", id, tenants.ErrNotFound)
	}
	return t, err
}
