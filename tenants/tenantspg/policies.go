package tenantspg

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/blockgate/blockgate/auth/authpolicy"
	"github.com/blockgate/blockgate/tenants"
)

// PolicyKind is the Change.Kind of every access policy change: a
// configuration applied or deleted (ID is its name) or the deny-by-default
// switch set (ID is empty). Caches drop the tenant's policy on it.
const PolicyKind = "policy"

var _ authpolicy.Store = (*Registry)(nil)

// PutAccessPolicy creates or replaces an access control configuration. The
// record is validated first (authpolicy.Record.Validate, an error wrapping
// authpolicy.ErrInvalid); its document may be YAML and is stored as JSON.
// It fails with an error wrapping tenants.ErrExists when another
// configuration already applies to one of rec.Apps, or when rec is a
// default and the tenant has another one; with tenants.ErrNotFound when
// the tenant does not exist. The returned record has the stored document
// and revision.
func (r *Registry) PutAccessPolicy(ctx context.Context, rec authpolicy.Record) (authpolicy.Record, error) {
	if _, err := rec.Validate(); err != nil {
		return rec, err
	}
	js, err := rec.ToJSON()
	if err != nil {
		return rec, err
	}
	rec.Document = js
	err = r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		if err := r.checkPolicyClaims(ctx, tx, rec); err != nil {
			return nil, err
		}
		err := tx.QueryRow(ctx, `
			INSERT INTO access_policies (tenant_id, name, tenant_default, spec) VALUES ($1, $2, $3, $4)
			ON CONFLICT (tenant_id, name) DO UPDATE
			SET tenant_default = EXCLUDED.tenant_default, spec = EXCLUDED.spec,
			    revision = access_policies.revision + 1, updated_at = now()
			RETURNING revision`, string(rec.Tenant), rec.Name, rec.Default(), rec.Document).Scan(&rec.Revision)
		if err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM access_policy_apps WHERE tenant_id = $1 AND policy = $2", string(rec.Tenant), rec.Name); err != nil {
			return nil, err
		}
		if len(rec.Apps) > 0 {
			_, err = tx.Exec(ctx, `
				INSERT INTO access_policy_apps (tenant_id, app_id, policy)
				SELECT $1, app, $2 FROM unnest($3::text[]) AS app`, string(rec.Tenant), rec.Name, rec.Apps)
		}
		return []Change{{Kind: PolicyKind, Tenant: rec.Tenant, ID: rec.Name}}, err
	})
	switch {
	case isForeignKeyViolation(err):
		return rec, fmt.Errorf("tenant %s: %w", rec.Tenant, tenants.ErrNotFound)
	case isUniqueViolation(err):
		// A concurrent put claimed the app (or the default) first.
		return rec, fmt.Errorf("access control configuration %s in tenant %s: another configuration applies to the same apps: %w", rec.Name, rec.Tenant, tenants.ErrExists)
	}
	return rec, err
}

// checkPolicyClaims names the configuration that already applies to one of
// rec's apps (or is the default), for a clear error; the keys are the
// final word when two puts race.
func (r *Registry) checkPolicyClaims(ctx context.Context, tx pgx.Tx, rec authpolicy.Record) error {
	var app, other string
	var err error
	if rec.Default() {
		err = tx.QueryRow(ctx, `
			SELECT name FROM access_policies
			WHERE tenant_id = $1 AND tenant_default AND name <> $2`, string(rec.Tenant), rec.Name).Scan(&other)
	} else {
		err = tx.QueryRow(ctx, `
			SELECT app_id, policy FROM access_policy_apps
			WHERE tenant_id = $1 AND app_id = ANY($2) AND policy <> $3
			ORDER BY app_id LIMIT 1`, string(rec.Tenant), rec.Apps, rec.Name).Scan(&app, &other)
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return err
	case rec.Default():
		return fmt.Errorf("tenant %s already has the default access control configuration %s; delete it first, or apply %s to apps: %w",
			rec.Tenant, other, rec.Name, tenants.ErrExists)
	default:
		return fmt.Errorf("app %s of tenant %s already has the access control configuration %s; an app has one: %w",
			app, rec.Tenant, other, tenants.ErrExists)
	}
}

// AccessPolicies lists a tenant's access control configurations by name.
func (r *Registry) AccessPolicies(ctx context.Context, tenant tenants.ID) ([]authpolicy.Record, error) {
	return r.accessPolicies(ctx, tenant, "")
}

// AccessPolicy returns one configuration; an error wrapping
// tenants.ErrNotFound if there is none.
func (r *Registry) AccessPolicy(ctx context.Context, tenant tenants.ID, name string) (authpolicy.Record, error) {
	out, err := r.accessPolicies(ctx, tenant, name)
	if err != nil {
		return authpolicy.Record{}, err
	}
	if len(out) == 0 {
		return authpolicy.Record{}, fmt.Errorf("access control configuration %s in tenant %s: %w", name, tenant, tenants.ErrNotFound)
	}
	return out[0], nil
}

// accessPolicies lists the tenant's configurations, or only the one called
// name when name is set.
func (r *Registry) accessPolicies(ctx context.Context, tenant tenants.ID, name string) ([]authpolicy.Record, error) {
	var out []authpolicy.Record
	err := r.tenant(ctx, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT p.name, p.spec, p.revision,
			       coalesce(array_agg(a.app_id ORDER BY a.app_id) FILTER (WHERE a.app_id IS NOT NULL), '{}')
			FROM access_policies p
			LEFT JOIN access_policy_apps a ON a.tenant_id = p.tenant_id AND a.policy = p.name
			WHERE p.tenant_id = $1 AND ($2 = '' OR p.name = $2)
			GROUP BY p.tenant_id, p.name
			ORDER BY p.name`, string(tenant), name)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (authpolicy.Record, error) {
			rec := authpolicy.Record{Tenant: tenant}
			err := row.Scan(&rec.Name, &rec.Document, &rec.Revision, &rec.Apps)
			if len(rec.Apps) == 0 {
				rec.Apps = nil
			}
			return rec, err
		})
		return err
	})
	return out, err
}

// DeleteAccessPolicy removes a configuration; the apps it applied to fall
// back to the tenant's default.
func (r *Registry) DeleteAccessPolicy(ctx context.Context, tenant tenants.ID, name string) error {
	return r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		tag, err := tx.Exec(ctx, "DELETE FROM access_policies WHERE tenant_id = $1 AND name = $2", string(tenant), name)
		if err == nil && tag.RowsAffected() == 0 {
			err = fmt.Errorf("access control configuration %s in tenant %s: %w", name, tenant, tenants.ErrNotFound)
		}
		return []Change{{Kind: PolicyKind, Tenant: tenant, ID: name}}, err
	})
}

// SetDenyByDefault sets the tenant's deny-by-default switch (see
// auth/authpolicy); tenants.ErrNotFound if the tenant does not exist.
func (r *Registry) SetDenyByDefault(ctx context.Context, tenant tenants.ID, on bool) error {
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		_, err := tx.Exec(ctx, `
			INSERT INTO tenant_policy_settings (tenant_id, deny_by_default) VALUES ($1, $2)
			ON CONFLICT (tenant_id) DO UPDATE SET deny_by_default = EXCLUDED.deny_by_default, updated_at = now()`,
			string(tenant), on)
		return []Change{{Kind: PolicyKind, Tenant: tenant}}, err
	})
	if isForeignKeyViolation(err) {
		return fmt.Errorf("tenant %s: %w", tenant, tenants.ErrNotFound)
	}
	return err
}

// DenyByDefault reports the tenant's switch (off unless set);
// tenants.ErrNotFound if the tenant does not exist.
func (r *Registry) DenyByDefault(ctx context.Context, tenant tenants.ID) (bool, error) {
	var on bool
	err := r.tenant(ctx, tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `
			SELECT coalesce(s.deny_by_default, false)
			FROM tenants t LEFT JOIN tenant_policy_settings s ON s.tenant_id = t.id
			WHERE t.id = $1`, string(tenant)).Scan(&on)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("tenant %s: %w", tenant, tenants.ErrNotFound)
	}
	return on, err
}
