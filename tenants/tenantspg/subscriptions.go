package tenantspg

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/blockgate/blockgate/tenants"
)

// SubscriptionRecord is a declarative subscription as stored: the registry
// keeps the applied document and leaves its meaning to the pub/sub block.
type SubscriptionRecord struct {
	Tenant   tenants.ID
	Name     string
	Pubsub   string
	Topic    string
	Document []byte
	Revision int64
}

// PutSubscription creates or replaces a declarative subscription.
func (r *Registry) PutSubscription(ctx context.Context, s SubscriptionRecord) (SubscriptionRecord, error) {
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		err := tx.QueryRow(ctx, `
			INSERT INTO subscriptions (tenant_id, name, pubsub, topic, spec)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (tenant_id, name) DO UPDATE
			SET pubsub = EXCLUDED.pubsub, topic = EXCLUDED.topic, spec = EXCLUDED.spec,
			    revision = subscriptions.revision + 1, updated_at = now()
			RETURNING revision`,
			string(s.Tenant), s.Name, s.Pubsub, s.Topic, s.Document).Scan(&s.Revision)
		return []Change{{Kind: "subscription", Tenant: s.Tenant, ID: s.Name}}, err
	})
	if isForeignKeyViolation(err) {
		return s, fmt.Errorf("tenant %s: %w", s.Tenant, tenants.ErrNotFound)
	}
	return s, err
}

// Subscriptions lists a tenant's declarative subscriptions by name.
func (r *Registry) Subscriptions(ctx context.Context, tenant tenants.ID) ([]SubscriptionRecord, error) {
	var out []SubscriptionRecord
	err := r.tenant(ctx, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT name, pubsub, topic, spec, revision FROM subscriptions
			WHERE tenant_id = $1 ORDER BY name`, string(tenant))
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (SubscriptionRecord, error) {
			s := SubscriptionRecord{Tenant: tenant}
			err := row.Scan(&s.Name, &s.Pubsub, &s.Topic, &s.Document, &s.Revision)
			return s, err
		})
		return err
	})
	return out, err
}

// AllSubscriptions lists every tenant's declarative subscriptions, for the
// nodes that run their deliveries.
func (r *Registry) AllSubscriptions(ctx context.Context) ([]SubscriptionRecord, error) {
	var out []SubscriptionRecord
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		rows, err := tx.Query(ctx, `SELECT tenant_id, name, pubsub, topic, spec, revision FROM subscriptions
			ORDER BY tenant_id, name`)
		if err != nil {
			return nil, err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (SubscriptionRecord, error) {
			var s SubscriptionRecord
			err := row.Scan(&s.Tenant, &s.Name, &s.Pubsub, &s.Topic, &s.Document, &s.Revision)
			return s, err
		})
		return nil, err
	})
	return out, err
}

// DeleteSubscription removes a declarative subscription.
func (r *Registry) DeleteSubscription(ctx context.Context, tenant tenants.ID, name string) error {
	return r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		tag, err := tx.Exec(ctx, "DELETE FROM subscriptions WHERE tenant_id = $1 AND name = $2", string(tenant), name)
		if err == nil && tag.RowsAffected() == 0 {
			err = fmt.Errorf("subscription %s in tenant %s: %w", name, tenant, tenants.ErrNotFound)
		}
		return []Change{{Kind: "subscription", Tenant: tenant, ID: name}}, err
	})
}
