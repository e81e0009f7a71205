package statepg

import (
	"strings"
	"testing"

	"github.com/blockgate/blockgate/blocks/state"
	"github.com/blockgate/blockgate/blocks/state/statetest"
	"github.com/blockgate/blockgate/internal/pgtest"
	"github.com/blockgate/blockgate/tenants"
)

// FuzzStateKey: arbitrary keys and values round-trip through Postgres or
// are refused with an error (NUL, invalid UTF-8), never a panic.
func FuzzStateKey(f *testing.F) {
	b := NewBackend(pgtest.New(f), nil)
	statetest.Fuzz(f, func(t *testing.T, tenant tenants.ID, name string) state.Store {
		return b.Open(tenant, name)
	})
}

// FuzzIsJSON holds state.Queryable to its promise: whatever it accepts, Postgres'
// jsonb accepts too, so no stored value can make a query fail.
func FuzzIsJSON(f *testing.F) {
	pool := pgtest.New(f)
	for _, seed := range []string{
		`{"a":1}`, `"\u0000"`, `"\ud800"`, `"\ud83d\ude00"`, `"\udc00"`, `1e99999`,
		`[[[[[[]]]]]]`, `-0.0E-0`, `"\\u0000"`, "\"\xff\"", `{"a":"b","a":1}`, ` 1 `, `1.5e+9999`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		if !state.Queryable(v) {
			return
		}
		var doc string
		if err := pool.QueryRow(t.Context(), `SELECT convert_from($1, 'UTF8')::jsonb::text`, v).Scan(&doc); err != nil {
			t.Fatalf("state.Queryable(%q) is true but Postgres refuses it: %v", v, err)
		}
		if strings.TrimSpace(doc) == "" {
			t.Fatalf("jsonb of %q is empty", v)
		}
	})
}
