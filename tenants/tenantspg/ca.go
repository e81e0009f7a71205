package tenantspg

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/blockgate/blockgate/auth/authca"
)

// CAKind is the Change kind sent when a CA generation is added: every node
// reloads its certificate authority (authca.CA.Reload).
const CAKind = "ca"

var _ authca.Store = (*Registry)(nil)

// CAGenerations implements authca.Store.
func (r *Registry) CAGenerations(ctx context.Context) ([]authca.Generation, error) {
	var out []authca.Generation
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		rows, err := tx.Query(ctx, `SELECT id, root_cert, intermediate_cert, intermediate_key, master_key_id, created_at, retired_at
			FROM ca_generations ORDER BY created_at, id`)
		if err != nil {
			return nil, err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (authca.Generation, error) {
			var g authca.Generation
			err := row.Scan(&g.ID, &g.Root, &g.Intermediate, &g.IntermediateKey, &g.MasterKeyID, &g.CreatedAt, &g.RetiredAt)
			return g, err
		})
		return nil, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading CA generations: %w", err)
	}
	return out, nil
}

// errStaleActive says the active generation is not the one to replace.
var errStaleActive = errors.New("the active CA generation changed")

// AddCAGeneration implements authca.Store. It retires the active generation
// if it is replaces and inserts g, in one transaction; the partial unique
// index on unretired rows serialises racing callers, and the row lock the
// UPDATE takes makes a second replacement of the same generation find it
// retired. Either way the loser gets authca.ErrConflict and changes
// nothing. It notifies a Change of kind CAKind.
func (r *Registry) AddCAGeneration(ctx context.Context, g authca.Generation, replaces string) error {
	err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		rows, err := tx.Query(ctx, "UPDATE ca_generations SET retired_at = $1 WHERE retired_at IS NULL RETURNING id", g.CreatedAt)
		if err != nil {
			return nil, err
		}
		retired, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, err
		}
		want := []string{}
		if replaces != "" {
			want = []string{replaces}
		}
		if !slices.Equal(retired, want) {
			return nil, fmt.Errorf("%w: replacing %q, found %q active", errStaleActive, replaces, retired)
		}
		_, err = tx.Exec(ctx, `INSERT INTO ca_generations
			(id, root_cert, intermediate_cert, intermediate_key, master_key_id, created_at)
			VALUES ($1, $2, $3, $4, $5, $6)`,
			g.ID, g.Root, g.Intermediate, g.IntermediateKey, g.MasterKeyID, g.CreatedAt)
		return []Change{{Kind: CAKind, ID: g.ID}}, err
	})
	switch {
	case errors.Is(err, errStaleActive):
		return fmt.Errorf("adding CA generation %s: %w (%w)", g.ID, authca.ErrConflict, err)
	case isUniqueViolation(err):
		return fmt.Errorf("adding CA generation %s: %w (%w)", g.ID, authca.ErrConflict, err)
	case err != nil:
		return fmt.Errorf("adding CA generation %s: %w", g.ID, err)
	}
	return nil
}
