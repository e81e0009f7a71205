package statepg

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/blockgate/blockgate/blocks/state"
)

// maxFilterDepth bounds the recursion of a filter tree.
const maxFilterDepth = 32

func invalidQuery(format string, args ...any) error {
	return fmt.Errorf("%w: %s", state.ErrInvalidQuery, fmt.Sprintf(format, args...))
}

// parsePage validates the page and returns the offset the token stands for.
func parsePage(limit int, token string) (int, error) {
	if limit < 0 {
		return 0, invalidQuery("page limit %d is negative", limit)
	}
	if token == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(token)
	if err != nil || n < 0 || strconv.Itoa(n) != token {
		return 0, invalidQuery("page token %q was not issued by this store", token)
	}
	return n, nil
}

// path turns a dot path into the text[] for #>.
func path(key string) ([]string, error) {
	if key == "" {
		return nil, invalidQuery("a filter or sort key is empty")
	}
	if !validText(key) {
		return nil, invalidQuery("key %q is not UTF-8 text", key)
	}
	p := strings.Split(key, ".")
	for _, seg := range p {
		if seg == "" {
			return nil, invalidQuery("key %q has an empty path segment", key)
		}
	}
	return p, nil
}

// jsonValue encodes a filter value as JSON text for a ::jsonb parameter.
func jsonValue(op, key string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", invalidQuery("%s on %q: value %v is not JSON: %v", op, key, v, err)
	}
	if !state.Queryable(b) {
		return "", invalidQuery("%s on %q: value %s cannot be compared", op, key, b)
	}
	return string(b), nil
}

// likePrefix escapes LIKE's wildcards and escape character in prefix and
// appends %.
func likePrefix(prefix string) string {
	var b strings.Builder
	b.Grow(len(prefix) + 4)
	for _, r := range prefix {
		if r == '%' || r == '_' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('%')
	return b.String()
}

// compiler builds a query's SQL; every user-supplied string becomes a
// parameter, never SQL text.
type compiler struct {
	sql  strings.Builder
	args []any
}

// arg adds a parameter and returns its placeholder.
func (c *compiler) arg(v any) string {
	c.args = append(c.args, v)
	return "$" + strconv.Itoa(len(c.args))
}

func (c *compiler) filter(f *state.Filter, depth int) error {
	if depth > maxFilterDepth {
		return invalidQuery("filter nests deeper than %d levels", maxFilterDepth)
	}
	switch f.Op {
	case "AND", "OR":
		if len(f.Children) == 0 {
			c.sql.WriteString(map[string]string{"AND": "TRUE", "OR": "FALSE"}[f.Op])
			return nil
		}
		c.sql.WriteByte('(')
		for i := range f.Children {
			if i > 0 {
				c.sql.WriteString(" " + f.Op + " ")
			}
			if err := c.filter(&f.Children[i], depth+1); err != nil {
				return err
			}
		}
		c.sql.WriteByte(')')
		return nil
	case "EQ", "IN":
		if f.Op == "EQ" && len(f.Values) != 1 {
			return invalidQuery("EQ on %q takes exactly one value, got %d", f.Key, len(f.Values))
		}
		p, err := path(f.Key)
		if err != nil {
			return err
		}
		values := make([]string, len(f.Values))
		for i, v := range f.Values {
			if values[i], err = jsonValue(f.Op, f.Key, v); err != nil {
				return err
			}
		}
		if f.Op == "EQ" {
			fmt.Fprintf(&c.sql, "doc #> %s::text[] = %s::text::jsonb", c.arg(p), c.arg(values[0]))
		} else {
			fmt.Fprintf(&c.sql, "doc #> %s::text[] = ANY(%s::text[]::jsonb[])", c.arg(p), c.arg(values))
		}
		return nil
	}
	return invalidQuery("unsupported filter operator %q: use EQ, IN, AND or OR", f.Op)
}

// querySQL compiles q over the live JSON items of the store whose keys
// start with prefix. It asks for one row more than the limit, to learn
// whether another page follows.
func (s *Store) querySQL(prefix string, q state.Query, offset int) (string, []any, error) {
	c := &compiler{}
	c.sql.WriteString(`WITH docs AS MATERIALIZED (
    SELECT key, value, etag, expires_at, convert_from(value, 'UTF8')::jsonb AS doc
    FROM state
    WHERE tenant_id = ` + c.arg(s.tenant) + ` AND store = ` + c.arg(s.store) +
		` AND key LIKE ` + c.arg(likePrefix(prefix)) + ` AND key >= ` + c.arg(prefix) + `
      AND is_json AND ` + live + `
)
SELECT key, value, etag, expires_at FROM docs`)
	if q.Filter != nil {
		c.sql.WriteString("\nWHERE ")
		if err := c.filter(q.Filter, 0); err != nil {
			return "", nil, err
		}
	}
	c.sql.WriteString("\nORDER BY ")
	for _, srt := range q.Sort {
		p, err := path(srt.Key)
		if err != nil {
			return "", nil, err
		}
		dir := "ASC"
		if srt.Desc {
			dir = "DESC"
		}
		fmt.Fprintf(&c.sql, "doc #> %s::text[] %s, ", c.arg(p), dir)
	}
	c.sql.WriteString("key")
	if q.Limit > 0 {
		c.sql.WriteString("\nLIMIT " + c.arg(int64(min(q.Limit, math.MaxInt64-1))+1))
	}
	if offset > 0 {
		c.sql.WriteString("\nOFFSET " + c.arg(int64(offset)))
	}
	return c.sql.String(), c.args, nil
}

// Query runs q over the live JSON items whose keys start with prefix, in one
// round trip.
func (s *Store) Query(ctx context.Context, prefix string, q state.Query) (state.QueryResult, error) {
	offset, err := parsePage(q.Limit, q.Token)
	if err != nil {
		return state.QueryResult{}, err
	}
	sql, args, err := s.querySQL(prefix, q, offset)
	if err != nil {
		return state.QueryResult{}, err
	}
	var res state.QueryResult
	if !validText(prefix) {
		return res, nil // no stored key can start with it
	}
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, 2)}
	b.Queue(setTenantSQL, s.tenant)
	b.Queue(sql, args...)
	err = s.query(ctx, b, func(r pgx.Rows) error {
		var it state.Item
		var expires *time.Time
		if err := r.Scan(&it.Key, &it.Value, &it.ETag, &expires); err != nil {
			return err
		}
		fill(&it, expires)
		res.Items = append(res.Items, it)
		return nil
	})
	if err != nil {
		return state.QueryResult{}, wrap("query", err)
	}
	if q.Limit > 0 && len(res.Items) > q.Limit {
		res.Items = res.Items[:q.Limit]
		res.Token = strconv.Itoa(offset + q.Limit)
	}
	return res, nil
}
