package tenantspg

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/blockgate/blockgate/tenants"
)

// AuditEntry is one admin request in the audit log (migration 014). It
// holds no secret: no token text and no request body.
type AuditEntry struct {
	ID int64 `json:"id"`
	// At is when the entry was written, right after the request was
	// answered; set by the database.
	At time.Time `json:"at"`
	// Tenant is the log the entry belongs to: a tenant admin's own tenant,
	// or the tenant the request named; empty for platform-wide requests,
	// which only the platform admin sees.
	Tenant tenants.ID `json:"tenant,omitempty"`
	// ActorRole is "platform", "tenant" or "anonymous" (no valid token).
	ActorRole string `json:"actorRole"`
	// ActorID is "platform", a tenant admin token id, or empty.
	ActorID   string `json:"actorId,omitempty"`
	ActorName string `json:"actorName,omitempty"`
	Method    string `json:"method"`
	// Route is the pattern the request matched, such as
	// /v1/tenants/:tenant/apps; empty when it matched none.
	Route string `json:"route"`
	Path  string `json:"path"`
	// TargetTenant is the tenant the request named, if any.
	TargetTenant tenants.ID `json:"targetTenant,omitempty"`
	// Target names the object acted on: an app id, a component name, a
	// token id.
	Target     string `json:"target,omitempty"`
	Status     int    `json:"status"`
	ClientAddr string `json:"clientAddr,omitempty"`
}

// AuditQuery selects audit entries, newest first.
type AuditQuery struct {
	// Tenant, when set, reads that tenant's entries through a transaction
	// scoped to it, so row-level security shows nothing else; empty reads
	// every entry with platform scope.
	Tenant tenants.ID
	// Before, when set, keeps entries written strictly before it.
	Before time.Time
	// Limit is the most entries returned; default and maximum 1000.
	Limit int
}

// maxAuditLimit bounds one page of the audit log.
const maxAuditLimit = 1000

// WriteAudit appends e to the audit log (e.ID and e.At are set by the
// database). The log is append-only: nothing in the gateway updates or
// deletes entries, and the table's policies refuse it.
func (r *Registry) WriteAudit(ctx context.Context, e AuditEntry) error {
	return r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		_, err := tx.Exec(ctx, `INSERT INTO audit_log (tenant_id, actor_role, actor_id, actor_name, method, route, path,
				target_tenant, target, status, client_addr)
			VALUES (nullif($1, ''), $2, $3, $4, $5, $6, $7, nullif($8, ''), $9, $10, $11)`,
			string(e.Tenant), e.ActorRole, e.ActorID, e.ActorName, e.Method, e.Route, e.Path,
			string(e.TargetTenant), e.Target, e.Status, e.ClientAddr)
		return nil, err
	})
}

// AuditLog returns the entries q selects, newest first.
func (r *Registry) AuditLog(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	if q.Limit <= 0 || q.Limit > maxAuditLimit {
		q.Limit = maxAuditLimit
	}
	var before *time.Time
	if !q.Before.IsZero() {
		before = &q.Before
	}
	var out []AuditEntry
	read := func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, at, coalesce(tenant_id, ''), actor_role, actor_id, actor_name, method, route,
				path, coalesce(target_tenant, ''), target, status, client_addr
			FROM audit_log
			WHERE ($1 = '' OR tenant_id = $1) AND ($2::timestamptz IS NULL OR at < $2)
			ORDER BY at DESC, id DESC LIMIT $3`, string(q.Tenant), before, q.Limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditEntry, error) {
			var e AuditEntry
			err := row.Scan(&e.ID, &e.At, &e.Tenant, &e.ActorRole, &e.ActorID, &e.ActorName, &e.Method, &e.Route,
				&e.Path, &e.TargetTenant, &e.Target, &e.Status, &e.ClientAddr)
			return e, err
		})
		return err
	}
	var err error
	if q.Tenant != "" {
		err = r.tenant(ctx, q.Tenant, read)
	} else {
		err = r.platform(ctx, func(tx pgx.Tx) ([]Change, error) { return nil, read(tx) })
	}
	if err != nil {
		return nil, fmt.Errorf("reading the audit log: %w", err)
	}
	return out, nil
}
