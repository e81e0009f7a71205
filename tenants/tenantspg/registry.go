// Package tenantspg is the tenant registry in Postgres: tenants, apps,
// components, app tokens, signing keys and app metadata.
//
// Registry tables have row-level security. Platform work (everything the
// admin API does) runs in a transaction that sets blockgate.scope to
// 'platform'; lookups on behalf of one tenant set blockgate.tenant instead.
// Every change also sends a NOTIFY on the channel blockgate_registry inside
// its transaction, so that every gateway node drops what it cached the moment
// the change commits (see Listen).
package tenantspg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/blockgate/blockgate/auth/authjwt"
	"github.com/blockgate/blockgate/tenants"
)

// Channel is the Postgres NOTIFY channel for registry changes.
const Channel = "blockgate_registry"

// Change is the payload of a registry notification.
type Change struct {
	// Kind is tenant, app, component, token, key or metadata.
	Kind   string     `json:"kind"`
	Tenant tenants.ID `json:"tenant,omitempty"`
	// ID names what changed within the kind (a token id, a component name).
	ID string `json:"id,omitempty"`
}

// Registry is the Postgres registry. It is safe for concurrent use.
type Registry struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
}

// New returns a registry over pool.
func New(pool *pgxpool.Pool, logger *slog.Logger) *Registry {
	return &Registry{pool: pool, logger: logger.With("component", "registry")}
}

var _ authjwt.KeyStore = (*Registry)(nil)

// platform runs fn in a transaction with platform scope, and notifies
// changes (if any) when it commits.
func (r *Registry) platform(ctx context.Context, fn func(tx pgx.Tx) ([]Change, error)) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT set_config('blockgate.scope', 'platform', true)"); err != nil {
			return err
		}
		changes, err := fn(tx)
		if err != nil {
			return err
		}
		for _, c := range changes {
			payload, _ := json.Marshal(c)
			if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", Channel, string(payload)); err != nil {
				return err
			}
		}
		return nil
	})
}

// tenant runs fn in a transaction scoped to one tenant.
func (r *Registry) tenant(ctx context.Context, id tenants.ID, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT set_config('blockgate.tenant', $1, true)", string(id)); err != nil {
			return err
		}
		return fn(tx)
	})
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func isForeignKeyViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}

// CreateTenant adds a tenant; tenants.ErrExists if it is there already.
func (r *Registry) CreateTenant(ctx context.Context, id tenants.ID) (tenants.Tenant, error) {
	t := tenants.Tenant{ID: id}
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		err := tx.QueryRow(ctx, "INSERT INTO tenants (id) VALUES ($1) RETURNING created_at", string(id)).Scan(&t.CreatedAt)
		return []Change{{Kind: "tenant", Tenant: id}}, err
	})
	if isUniqueViolation(err) {
		return t, fmt.Errorf("tenant %s: %w", id, tenants.ErrExists)
	}
	return t, err
}

// Tenants lists every tenant, by name.
func (r *Registry) Tenants(ctx context.Context) ([]tenants.Tenant, error) {
	var out []tenants.Tenant
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		rows, err := tx.Query(ctx, "SELECT id, created_at, coalesce(pubsub_max_bytes, 0), quotas FROM tenants ORDER BY id")
		if err != nil {
			return nil, err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (tenants.Tenant, error) {
			var t tenants.Tenant
			var pubsubMax int64
			err := row.Scan(&t.ID, &t.CreatedAt, &pubsubMax, &t.Limits)
			t.Limits.PubsubMaxBytes = pubsubMax
			return t, err
		})
		return nil, err
	})
	return out, err
}

// Tenant returns one tenant; tenants.ErrNotFound if there is none.
func (r *Registry) Tenant(ctx context.Context, id tenants.ID) (tenants.Tenant, error) {
	t := tenants.Tenant{ID: id}
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		var pubsubMax int64
		err := tx.QueryRow(ctx, "SELECT created_at, coalesce(pubsub_max_bytes, 0), quotas FROM tenants WHERE id = $1",
			string(id)).Scan(&t.CreatedAt, &pubsubMax, &t.Limits)
		t.Limits.PubsubMaxBytes = pubsubMax
		return nil, err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("tenant %s: %w", id, tenants.ErrNotFound)
	}
	return t, err
}

// SetLimits replaces a tenant's limits; zero fields return to the defaults.
func (r *Registry) SetLimits(ctx context.Context, id tenants.ID, l tenants.Limits) error {
	return r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		quotas := l
		quotas.PubsubMaxBytes = 0 // a column of its own
		tag, err := tx.Exec(ctx, "UPDATE tenants SET pubsub_max_bytes = nullif($2, 0), quotas = $3 WHERE id = $1",
			string(id), max(l.PubsubMaxBytes, 0), quotas)
		if err == nil && tag.RowsAffected() == 0 {
			err = fmt.Errorf("tenant %s: %w", id, tenants.ErrNotFound)
		}
		return []Change{{Kind: "limits", Tenant: id}}, err
	})
}

// DeleteTenant removes a tenant with everything it owns and revokes its tokens.
func (r *Registry) DeleteTenant(ctx context.Context, id tenants.ID) error {
	return r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		tag, err := tx.Exec(ctx, "DELETE FROM tenants WHERE id = $1", string(id))
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() == 0 {
			return nil, fmt.Errorf("tenant %s: %w", id, tenants.ErrNotFound)
		}
		if _, err := tx.Exec(ctx, "UPDATE tokens SET revoked_at = now() WHERE tenant_id = $1 AND revoked_at IS NULL", string(id)); err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM state WHERE tenant_id = $1", string(id)); err != nil {
			return nil, err
		}
		return []Change{{Kind: "tenant", Tenant: id}, {Kind: "token", Tenant: id}}, nil
	})
}

// CreateApp adds an app to an existing tenant.
func (r *Registry) CreateApp(ctx context.Context, a tenants.App) (tenants.App, error) {
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		err := tx.QueryRow(ctx, "INSERT INTO apps (tenant_id, app_id, endpoint, app_token) VALUES ($1, $2, $3, $4) RETURNING created_at",
			string(a.Tenant), a.ID, a.Endpoint, a.AppToken).Scan(&a.CreatedAt)
		return []Change{{Kind: "app", Tenant: a.Tenant, ID: a.ID}}, err
	})
	switch {
	case isUniqueViolation(err):
		return a, fmt.Errorf("app %s in tenant %s: %w", a.ID, a.Tenant, tenants.ErrExists)
	case isForeignKeyViolation(err):
		return a, fmt.Errorf("tenant %s: %w", a.Tenant, tenants.ErrNotFound)
	}
	return a, err
}

// Apps lists a tenant's apps.
func (r *Registry) Apps(ctx context.Context, tenant tenants.ID) ([]tenants.App, error) {
	var out []tenants.App
	err := r.tenant(ctx, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT app_id, endpoint, created_at FROM apps WHERE tenant_id = $1 ORDER BY app_id", string(tenant))
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (tenants.App, error) {
			a := tenants.App{Tenant: tenant}
			err := row.Scan(&a.ID, &a.Endpoint, &a.CreatedAt)
			return a, err
		})
		return err
	})
	return out, err
}

// App returns one app; tenants.ErrNotFound if there is none.
func (r *Registry) App(ctx context.Context, tenant tenants.ID, appID string) (tenants.App, error) {
	a := tenants.App{Tenant: tenant, ID: appID}
	err := r.tenant(ctx, tenant, func(tx pgx.Tx) error {
		var intervalMS int64
		err := tx.QueryRow(ctx, `SELECT endpoint, app_token, created_at, health_path, health_interval_ms, health_threshold, headers
			FROM apps WHERE tenant_id = $1 AND app_id = $2`, string(tenant), appID).
			Scan(&a.Endpoint, &a.AppToken, &a.CreatedAt, &a.Health.Path, &intervalMS, &a.Health.Threshold, &a.Headers)
		if err != nil {
			return err
		}
		a.Health.Interval = time.Duration(intervalMS) * time.Millisecond
		a.Instances, err = instances(ctx, tx, tenant, appID)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("app %s in tenant %s: %w", appID, tenant, tenants.ErrNotFound)
	}
	return a, err
}

// ApplyApp registers an app from a declarative resource (tenants.ParseApp),
// creating it or replacing its endpoint, instances, health check and
// headers as a whole, in one transaction. An empty a.AppToken keeps the
// token the app has. created is true when the app is new.
func (r *Registry) ApplyApp(ctx context.Context, a tenants.App) (created bool, err error) {
	if a.Headers == nil {
		a.Headers = map[string]string{}
	}
	err = r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		err := tx.QueryRow(ctx, `INSERT INTO apps AS a (tenant_id, app_id, endpoint, app_token, headers,
				health_path, health_interval_ms, health_threshold, declared)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, true)
			ON CONFLICT (tenant_id, app_id) DO UPDATE SET endpoint = EXCLUDED.endpoint,
				app_token = CASE WHEN EXCLUDED.app_token = '' THEN a.app_token ELSE EXCLUDED.app_token END,
				headers = EXCLUDED.headers, health_path = EXCLUDED.health_path,
				health_interval_ms = EXCLUDED.health_interval_ms, health_threshold = EXCLUDED.health_threshold,
				declared = true
			RETURNING xmax = 0`,
			string(a.Tenant), a.ID, a.Endpoint, a.AppToken, a.Headers, a.Health.Path,
			max(a.Health.Interval.Milliseconds(), 100), max(a.Health.Threshold, 1)).Scan(&created)
		if err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM app_instances WHERE tenant_id = $1 AND app_id = $2", string(a.Tenant), a.ID); err != nil {
			return nil, err
		}
		for _, in := range a.Instances {
			if _, err := tx.Exec(ctx, "INSERT INTO app_instances (tenant_id, app_id, id, endpoint) VALUES ($1, $2, $3, $4)",
				string(a.Tenant), a.ID, in.ID, in.Endpoint); err != nil {
				return nil, err
			}
		}
		return []Change{{Kind: "app", Tenant: a.Tenant, ID: a.ID}}, nil
	})
	if isForeignKeyViolation(err) {
		return false, fmt.Errorf("tenant %s: %w", a.Tenant, tenants.ErrNotFound)
	}
	return created, err
}

// DeleteApp removes an app and revokes its tokens.
func (r *Registry) DeleteApp(ctx context.Context, tenant tenants.ID, appID string) error {
	return r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		tag, err := tx.Exec(ctx, "DELETE FROM apps WHERE tenant_id = $1 AND app_id = $2", string(tenant), appID)
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() == 0 {
			return nil, fmt.Errorf("app %s in tenant %s: %w", appID, tenant, tenants.ErrNotFound)
		}
		_, err = tx.Exec(ctx, "UPDATE tokens SET revoked_at = now() WHERE tenant_id = $1 AND app_id = $2 AND revoked_at IS NULL",
			string(tenant), appID)
		return []Change{{Kind: "app", Tenant: tenant, ID: appID}, {Kind: "token", Tenant: tenant}}, err
	})
}

// PutComponent creates or replaces a component and returns it with its new
// revision.
func (r *Registry) PutComponent(ctx context.Context, c tenants.Component) (tenants.Component, error) {
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		err := tx.QueryRow(ctx, `
			INSERT INTO components (tenant_id, name, type, version, spec)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (tenant_id, name) DO UPDATE
			SET type = EXCLUDED.type, version = EXCLUDED.version, spec = EXCLUDED.spec,
			    revision = components.revision + 1, updated_at = now()
			RETURNING revision`,
			string(c.Tenant), c.Name, c.Type, c.Version, c.Document()).Scan(&c.Revision)
		return []Change{{Kind: "component", Tenant: c.Tenant, ID: c.Name}}, err
	})
	if isForeignKeyViolation(err) {
		return c, fmt.Errorf("tenant %s: %w", c.Tenant, tenants.ErrNotFound)
	}
	return c, err
}

// Components lists a tenant's components.
func (r *Registry) Components(ctx context.Context, tenant tenants.ID) ([]tenants.Component, error) {
	var out []tenants.Component
	err := r.tenant(ctx, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT spec, revision FROM components WHERE tenant_id = $1 ORDER BY name", string(tenant))
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (tenants.Component, error) {
			var spec []byte
			var rev int64
			if err := row.Scan(&spec, &rev); err != nil {
				return tenants.Component{}, err
			}
			c, err := tenants.ParseComponent(spec)
			if err != nil {
				return c, fmt.Errorf("stored component of tenant %s: %w", tenant, err)
			}
			c.Tenant, c.Revision = tenant, rev
			return c, nil
		})
		return err
	})
	return out, err
}

// DeleteComponent removes a component.
func (r *Registry) DeleteComponent(ctx context.Context, tenant tenants.ID, name string) error {
	return r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		tag, err := tx.Exec(ctx, "DELETE FROM components WHERE tenant_id = $1 AND name = $2", string(tenant), name)
		if err == nil && tag.RowsAffected() == 0 {
			err = fmt.Errorf("component %s in tenant %s: %w", name, tenant, tenants.ErrNotFound)
		}
		return []Change{{Kind: "component", Tenant: tenant, ID: name}}, err
	})
}

// CreateToken records an issued token. The app must exist.
func (r *Registry) CreateToken(ctx context.Context, t tenants.Token) error {
	return r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM apps WHERE tenant_id = $1 AND app_id = $2)",
			string(t.Tenant), t.AppID).Scan(&exists); err != nil {
			return nil, err
		}
		if !exists {
			return nil, fmt.Errorf("app %s in tenant %s: %w", t.AppID, t.Tenant, tenants.ErrNotFound)
		}
		_, err := tx.Exec(ctx, "INSERT INTO tokens (id, tenant_id, app_id, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
			t.ID, string(t.Tenant), t.AppID, t.IssuedAt, t.ExpiresAt)
		return nil, err
	})
}

// RevokeToken marks a token revoked and returns it; revoking twice is fine.
func (r *Registry) RevokeToken(ctx context.Context, id string) (tenants.Token, error) {
	var t tenants.Token
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		err := tx.QueryRow(ctx, `
			UPDATE tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
			RETURNING id, tenant_id, app_id, issued_at, expires_at, revoked_at`, id).
			Scan(&t.ID, &t.Tenant, &t.AppID, &t.IssuedAt, &t.ExpiresAt, &t.RevokedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("token %s: %w", id, tenants.ErrNotFound)
		}
		return []Change{{Kind: "token", Tenant: t.Tenant, ID: id}}, err
	})
	return t, err
}

// Token returns one app token by id; tenants.ErrNotFound if there is none.
func (r *Registry) Token(ctx context.Context, id string) (tenants.Token, error) {
	var t tenants.Token
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		err := tx.QueryRow(ctx, "SELECT id, tenant_id, app_id, issued_at, expires_at, revoked_at FROM tokens WHERE id = $1", id).
			Scan(&t.ID, &t.Tenant, &t.AppID, &t.IssuedAt, &t.ExpiresAt, &t.RevokedAt)
		return nil, err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("token %s: %w", id, tenants.ErrNotFound)
	}
	return t, err
}

// Tokens lists a tenant's tokens, newest first.
func (r *Registry) Tokens(ctx context.Context, tenant tenants.ID) ([]tenants.Token, error) {
	var out []tenants.Token
	err := r.tenant(ctx, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, tenant_id, app_id, issued_at, expires_at, revoked_at
			FROM tokens WHERE tenant_id = $1 ORDER BY issued_at DESC, id`, string(tenant))
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (tenants.Token, error) {
			var t tenants.Token
			err := row.Scan(&t.ID, &t.Tenant, &t.AppID, &t.IssuedAt, &t.ExpiresAt, &t.RevokedAt)
			return t, err
		})
		return err
	})
	return out, err
}

// RevokedTokens returns the ids of revoked tokens that have not expired yet:
// the only ones a signature check alone would still accept.
func (r *Registry) RevokedTokens(ctx context.Context) ([]string, error) {
	var out []string
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		rows, err := tx.Query(ctx, "SELECT id FROM tokens WHERE revoked_at IS NOT NULL AND expires_at > now()")
		if err != nil {
			return nil, err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return nil, err
	})
	return out, err
}

// SigningKeys implements authjwt.KeyStore.
func (r *Registry) SigningKeys(ctx context.Context) ([]authjwt.Key, error) {
	var out []authjwt.Key
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		rows, err := tx.Query(ctx, "SELECT kid, private_key, created_at, retired_at FROM signing_keys ORDER BY created_at")
		if err != nil {
			return nil, err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (authjwt.Key, error) {
			var k authjwt.Key
			var der []byte
			if err := row.Scan(&k.ID, &der, &k.CreatedAt, &k.RetiredAt); err != nil {
				return k, err
			}
			priv, err := authjwt.ParsePrivateKey(der)
			if err != nil {
				return k, fmt.Errorf("signing key %s: %w", k.ID, err)
			}
			k.Private = priv
			return k, nil
		})
		return nil, err
	})
	return out, err
}

// AddSigningKey implements authjwt.KeyStore: it stores k and retires every
// older key in the same transaction.
func (r *Registry) AddSigningKey(ctx context.Context, k authjwt.Key) error {
	der, err := authjwt.MarshalPrivateKey(k.Private)
	if err != nil {
		return err
	}
	return r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		created := k.CreatedAt
		if created.IsZero() {
			created = time.Now()
		}
		if _, err := tx.Exec(ctx, "UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL AND created_at < $1", created); err != nil {
			return nil, err
		}
		_, err := tx.Exec(ctx, "INSERT INTO signing_keys (kid, algorithm, private_key, created_at) VALUES ($1, 'ES256', $2, $3)",
			k.ID, der, created)
		return []Change{{Kind: "key", ID: k.ID}}, err
	})
}

// SetAppMetadata stores one extended metadata attribute of an app
// (PUT /v1.0/metadata/{key}); an empty value deletes it.
func (r *Registry) SetAppMetadata(ctx context.Context, tenant tenants.ID, appID, key, value string) error {
	return r.tenant(ctx, tenant, func(tx pgx.Tx) error {
		if value == "" {
			_, err := tx.Exec(ctx, "DELETE FROM app_metadata WHERE tenant_id = $1 AND app_id = $2 AND key = $3", string(tenant), appID, key)
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO app_metadata (tenant_id, app_id, key, value) VALUES ($1, $2, $3, $4)
			ON CONFLICT (tenant_id, app_id, key) DO UPDATE SET value = EXCLUDED.value`, string(tenant), appID, key, value)
		if isForeignKeyViolation(err) {
			return fmt.Errorf("app %s in tenant %s: %w", appID, tenant, tenants.ErrNotFound)
		}
		return err
	})
}

// AppMetadata returns an app's extended metadata attributes.
func (r *Registry) AppMetadata(ctx context.Context, tenant tenants.ID, appID string) (map[string]string, error) {
	out := map[string]string{}
	err := r.tenant(ctx, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT key, value FROM app_metadata WHERE tenant_id = $1 AND app_id = $2", string(tenant), appID)
		if err != nil {
			return err
		}
		var k, v string
		_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error { out[k] = v; return nil })
		return err
	})
	return out, err
}

func instances(ctx context.Context, tx pgx.Tx, tenant tenants.ID, appID string) ([]tenants.Instance, error) {
	rows, err := tx.Query(ctx, "SELECT id, endpoint FROM app_instances WHERE tenant_id = $1 AND app_id = $2 ORDER BY id",
		string(tenant), appID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[tenants.Instance])
}

// AddInstance registers a further instance of an app.
func (r *Registry) AddInstance(ctx context.Context, tenant tenants.ID, appID string, in tenants.Instance) error {
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		_, err := tx.Exec(ctx, `INSERT INTO app_instances (tenant_id, app_id, id, endpoint) VALUES ($1, $2, $3, $4)
			ON CONFLICT (tenant_id, app_id, id) DO UPDATE SET endpoint = EXCLUDED.endpoint`,
			string(tenant), appID, in.ID, in.Endpoint)
		return []Change{{Kind: "app", Tenant: tenant, ID: appID}}, err
	})
	if isForeignKeyViolation(err) {
		return fmt.Errorf("app %s in tenant %s: %w", appID, tenant, tenants.ErrNotFound)
	}
	return err
}

// RemoveInstance removes an instance of an app.
func (r *Registry) RemoveInstance(ctx context.Context, tenant tenants.ID, appID, id string) error {
	return r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		tag, err := tx.Exec(ctx, "DELETE FROM app_instances WHERE tenant_id = $1 AND app_id = $2 AND id = $3", string(tenant), appID, id)
		if err == nil && tag.RowsAffected() == 0 {
			err = fmt.Errorf("instance %s of app %s: %w", id, appID, tenants.ErrNotFound)
		}
		return []Change{{Kind: "app", Tenant: tenant, ID: appID}}, err
	})
}

// SetHealth replaces an app's health check.
func (r *Registry) SetHealth(ctx context.Context, tenant tenants.ID, appID string, h tenants.HealthCheck) error {
	return r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		tag, err := tx.Exec(ctx, `UPDATE apps SET health_path = $3, health_interval_ms = $4, health_threshold = $5
			WHERE tenant_id = $1 AND app_id = $2`, string(tenant), appID, h.Path, h.Interval.Milliseconds(), h.Threshold)
		if err == nil && tag.RowsAffected() == 0 {
			err = fmt.Errorf("app %s in tenant %s: %w", appID, tenant, tenants.ErrNotFound)
		}
		return []Change{{Kind: "app", Tenant: tenant, ID: appID}}, err
	})
}

// AppsWithEndpoints lists every tenant's apps that registered an endpoint
// (the ones the gateway can call), with their instances and health checks.
func (r *Registry) AppsWithEndpoints(ctx context.Context) ([]tenants.App, error) {
	var out []tenants.App
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		rows, err := tx.Query(ctx, `SELECT tenant_id, app_id, endpoint, app_token, created_at,
				health_path, health_interval_ms, health_threshold, headers
			FROM apps WHERE endpoint <> '' ORDER BY tenant_id, app_id`)
		if err != nil {
			return nil, err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (tenants.App, error) {
			var a tenants.App
			var ms int64
			err := row.Scan(&a.Tenant, &a.ID, &a.Endpoint, &a.AppToken, &a.CreatedAt, &a.Health.Path, &ms, &a.Health.Threshold, &a.Headers)
			a.Health.Interval = time.Duration(ms) * time.Millisecond
			return a, err
		})
		if err != nil {
			return nil, err
		}
		for i := range out {
			if out[i].Instances, err = instances(ctx, tx, out[i].Tenant, out[i].ID); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	return out, err
}
