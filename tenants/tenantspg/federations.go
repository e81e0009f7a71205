package tenantspg

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/blockgate/blockgate/auth/authoidc"
	"github.com/blockgate/blockgate/tenants"
)

// issuerAudienceKey is the constraint that keeps (issuer, audience) unique
// across tenants (migration 011).
const issuerAudienceKey = "federated_issuers_issuer_audience_key"

// PutFederation creates or replaces a tenant's federated issuer and returns
// it with its new revision. A federation whose issuer and audience another
// federation already has, in this tenant or any other, is refused with
// tenants.ErrExists, without saying whose it is: a token is matched to its
// tenant by exactly that pair.
func (r *Registry) PutFederation(ctx context.Context, f authoidc.Federation) (authoidc.Federation, error) {
	if _, err := tenants.ParseID(string(f.Tenant)); err != nil {
		return f, err
	}
	if err := f.Validate(); err != nil {
		return f, err
	}
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		err := tx.QueryRow(ctx, `
			INSERT INTO federated_issuers (tenant_id, name, issuer, audience, spec) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (tenant_id, name) DO UPDATE
			SET issuer = EXCLUDED.issuer, audience = EXCLUDED.audience, spec = EXCLUDED.spec,
			    revision = federated_issuers.revision + 1, updated_at = now()
			RETURNING revision`,
			string(f.Tenant), f.Name, f.Issuer, f.Audience, f.Document()).Scan(&f.Revision)
		return []Change{{Kind: "federation", Tenant: f.Tenant, ID: f.Name}}, err
	})
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == issuerAudienceKey:
		return f, fmt.Errorf("federated issuer %s: issuer %s with audience %q is already federated; choose another audience: %w",
			f.Name, f.Issuer, f.Audience, tenants.ErrExists)
	case isForeignKeyViolation(err):
		return f, fmt.Errorf("tenant %s: %w", f.Tenant, tenants.ErrNotFound)
	}
	return f, err
}

// Federations lists a tenant's federated issuers by name.
func (r *Registry) Federations(ctx context.Context, tenant tenants.ID) ([]authoidc.Federation, error) {
	var out []authoidc.Federation
	err := r.tenant(ctx, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT tenant_id, spec, revision FROM federated_issuers WHERE tenant_id = $1 ORDER BY name",
			string(tenant))
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, scanFederation)
		return err
	})
	return out, err
}

// AllFederations lists every tenant's federated issuers, by tenant and name,
// for the gateway's verifier (authoidc.Verifier.SetFederations).
func (r *Registry) AllFederations(ctx context.Context) ([]authoidc.Federation, error) {
	var out []authoidc.Federation
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		rows, err := tx.Query(ctx, "SELECT tenant_id, spec, revision FROM federated_issuers ORDER BY tenant_id, name")
		if err != nil {
			return nil, err
		}
		out, err = pgx.CollectRows(rows, scanFederation)
		return nil, err
	})
	return out, err
}

func scanFederation(row pgx.CollectableRow) (authoidc.Federation, error) {
	var tenant tenants.ID
	var spec []byte
	var rev int64
	if err := row.Scan(&tenant, &spec, &rev); err != nil {
		return authoidc.Federation{}, err
	}
	f, err := authoidc.ParseFederation(spec)
	if err != nil {
		return f, fmt.Errorf("stored federated issuer of tenant %s: %w", tenant, err)
	}
	f.Tenant, f.Revision = tenant, rev
	return f, nil
}

// DeleteFederation removes a tenant's federated issuer; its tokens stop
// verifying once the gateway has the change.
func (r *Registry) DeleteFederation(ctx context.Context, tenant tenants.ID, name string) error {
	return r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		tag, err := tx.Exec(ctx, "DELETE FROM federated_issuers WHERE tenant_id = $1 AND name = $2", string(tenant), name)
		if err == nil && tag.RowsAffected() == 0 {
			err = fmt.Errorf("federated issuer %s in tenant %s: %w", name, tenant, tenants.ErrNotFound)
		}
		return []Change{{Kind: "federation", Tenant: tenant, ID: name}}, err
	})
}
