package tenantspg

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/blockgate/blockgate/tenants"
)

// ResiliencyRecord is a tenant's Resiliency resource as stored.
type ResiliencyRecord struct {
	Tenant   tenants.ID
	Name     string
	Document []byte
	Revision int64
}

// PutResiliency creates or replaces a Resiliency resource.
func (r *Registry) PutResiliency(ctx context.Context, rec ResiliencyRecord) (ResiliencyRecord, error) {
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		err := tx.QueryRow(ctx, `
			INSERT INTO resiliencies (tenant_id, name, spec) VALUES ($1, $2, $3)
			ON CONFLICT (tenant_id, name) DO UPDATE
			SET spec = EXCLUDED.spec, revision = resiliencies.revision + 1, updated_at = now()
			RETURNING revision`, string(rec.Tenant), rec.Name, rec.Document).Scan(&rec.Revision)
		return []Change{{Kind: "resiliency", Tenant: rec.Tenant, ID: rec.Name}}, err
	})
	if isForeignKeyViolation(err) {
		return rec, fmt.Errorf("tenant %s: %w", rec.Tenant, tenants.ErrNotFound)
	}
	return rec, err
}

// Resiliencies lists a tenant's Resiliency resources by name.
func (r *Registry) Resiliencies(ctx context.Context, tenant tenants.ID) ([]ResiliencyRecord, error) {
	var out []ResiliencyRecord
	err := r.tenant(ctx, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT name, spec, revision FROM resiliencies WHERE tenant_id = $1 ORDER BY name", string(tenant))
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (ResiliencyRecord, error) {
			rec := ResiliencyRecord{Tenant: tenant}
			err := row.Scan(&rec.Name, &rec.Document, &rec.Revision)
			return rec, err
		})
		return err
	})
	return out, err
}

// DeleteResiliency removes a Resiliency resource.
func (r *Registry) DeleteResiliency(ctx context.Context, tenant tenants.ID, name string) error {
	return r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		tag, err := tx.Exec(ctx, "DELETE FROM resiliencies WHERE tenant_id = $1 AND name = $2", string(tenant), name)
		if err == nil && tag.RowsAffected() == 0 {
			err = fmt.Errorf("resiliency %s in tenant %s: %w", name, tenant, tenants.ErrNotFound)
		}
		return []Change{{Kind: "resiliency", Tenant: tenant, ID: name}}, err
	})
}
