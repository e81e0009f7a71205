package statepg

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/blockgate/blockgate/blocks/state"
)

// maxFilterDepth bounds the recursion of a filter tree.
const maxFilterDepth = 32

// isJSON decides the is_json column. It must accept only what
// convert_from(value, 'UTF8')::jsonb parses, or one odd value would make
// every query of its component fail; FuzzIsJSON holds it to that. statemem
// has the same function so that both stores agree on what is queryable.
// Limits of what isJSON accepts, chosen well inside what Postgres' jsonb
// input can parse.
const (
	maxJSONDepth     = 1000
	maxNumberLen     = 1000
	maxExponentDigit = 4 // exponents up to ±9999
)

func isJSON(v []byte) bool {
	if !utf8.Valid(v) || !json.Valid(v) {
		return false
	}
	depth := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"':
			for i++; v[i] != '"'; i++ {
				if v[i] != '\\' {
					continue
				}
				i++
				if v[i] != 'u' {
					continue
				}
				r := hex4(v[i+1 : i+5])
				i += 4
				switch {
				case r == 0:
					return false
				case r >= 0xDC00 && r <= 0xDFFF:
					return false // low surrogate without a high one
				case utf16.IsSurrogate(rune(r)):
					if i+6 >= len(v) || v[i+1] != '\\' || v[i+2] != 'u' {
						return false
					}
					if lo := hex4(v[i+3 : i+7]); lo < 0xDC00 || lo > 0xDFFF {
						return false
					}
					i += 6
				}
			}
		case c == '[' || c == '{':
			if depth++; depth > maxJSONDepth {
				return false
			}
		case c == ']' || c == '}':
			depth--
		case c == '-' || (c >= '0' && c <= '9'):
			j := i
			for j < len(v) && bytes.IndexByte([]byte("+-0123456789.eE"), v[j]) >= 0 {
				j++
			}
			num := v[i:j]
			if len(num) > maxNumberLen {
				return false
			}
			if e := bytes.IndexAny(num, "eE"); e >= 0 {
				exp := bytes.TrimLeft(num[e+1:], "+-")
				if len(bytes.TrimLeft(exp, "0")) > maxExponentDigit {
					return false
				}
			}
			i = j - 1
		}
	}
	return true
}

func hex4(b []byte) uint16 {
	n, _ := strconv.ParseUint(string(b), 16, 16) // json.Valid checked the digits
	return uint16(n)
}

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
	if !isJSON(b) {
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
