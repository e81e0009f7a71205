package statepg

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/blockgate/blockgate/tenants"
)

// Usage returns the bytes of keys and values each tenant stores in
// state.postgresql components, expired items that the sweep has not
// removed yet included. It scans the whole table under the platform
// scope, so callers run it periodically, not per request.
func (b *Backend) Usage(ctx context.Context) (map[tenants.ID]int64, error) {
	out := map[tenants.ID]int64{}
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, setPlatform); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT tenant_id, sum(octet_length(key) + octet_length(value))::bigint FROM state GROUP BY tenant_id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var n int64
			if err := rows.Scan(&id, &n); err != nil {
				return err
			}
			out[tenants.ID(id)] = n
		}
		return rows.Err()
	})
	return out, err
}
