package statemem

import (
	"bytes"
	"encoding/json"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/blockgate/blockgate/blocks/state"
)

// The query API follows Postgres' jsonb semantics so that a query answers
// the same from statemem and statepg: EQ compares JSON values (1 equals 1.0,
// the number 1 does not equal the string "1"), sort order is jsonb's (null <
// string < number < boolean < array < object), and a missing path sorts
// after every value (NULLS LAST ascending, first descending). One deliberate
// difference: strings sort bytewise here, while Postgres uses the database's
// default collation.

// maxFilterDepth bounds the recursion of a filter tree.
const maxFilterDepth = 32

// decode parses a JSON document, keeping numbers exact.
func decode(v []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	return doc, nil
}

// normalize turns a filter value into the shape decode produces.
func normalize(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return decode(b)
}

func parsePath(key string) ([]string, error) {
	if key == "" {
		return nil, invalidQuery("a filter or sort key is empty")
	}
	path := strings.Split(key, ".")
	if slices.Contains(path, "") {
		return nil, invalidQuery("key %q has an empty path segment", key)
	}
	return path, nil
}

// lookup follows path into doc as Postgres' #> does: object fields by name,
// array elements by index (negative counts from the end).
func lookup(doc any, path []string) (any, bool) {
	cur := doc
	for _, p := range path {
		switch v := cur.(type) {
		case map[string]any:
			var ok bool
			if cur, ok = v[p]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil {
				return nil, false
			}
			if i < 0 {
				i += len(v)
			}
			if i < 0 || i >= len(v) {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

type predicate func(doc any) bool

func compileFilter(f *state.Filter, depth int) (predicate, error) {
	if f == nil {
		return nil, nil
	}
	if depth > maxFilterDepth {
		return nil, invalidQuery("filter nests deeper than %d levels", maxFilterDepth)
	}
	switch f.Op {
	case "AND", "OR":
		kids := make([]predicate, len(f.Children))
		for i := range f.Children {
			p, err := compileFilter(&f.Children[i], depth+1)
			if err != nil {
				return nil, err
			}
			kids[i] = p
		}
		if f.Op == "AND" {
			return func(doc any) bool {
				for _, k := range kids {
					if !k(doc) {
						return false
					}
				}
				return true
			}, nil
		}
		return func(doc any) bool {
			for _, k := range kids {
				if k(doc) {
					return true
				}
			}
			return false
		}, nil
	case "EQ", "IN":
		if f.Op == "EQ" && len(f.Values) != 1 {
			return nil, invalidQuery("EQ on %q takes exactly one value, got %d", f.Key, len(f.Values))
		}
		path, err := parsePath(f.Key)
		if err != nil {
			return nil, err
		}
		want := make([]any, len(f.Values))
		for i, v := range f.Values {
			if want[i], err = normalize(v); err != nil {
				return nil, invalidQuery("%s on %q: value %v is not JSON: %v", f.Op, f.Key, v, err)
			}
		}
		return func(doc any) bool {
			got, ok := lookup(doc, path)
			if !ok {
				return false
			}
			for _, w := range want {
				if compareJSON(got, w) == 0 {
					return true
				}
			}
			return false
		}, nil
	}
	return nil, invalidQuery("unsupported filter operator %q: use EQ, IN, AND or OR", f.Op)
}

type sortKey struct {
	path []string
	desc bool
}

func compileSorts(sorts []state.Sort) ([]sortKey, error) {
	out := make([]sortKey, len(sorts))
	for i, s := range sorts {
		p, err := parsePath(s.Key)
		if err != nil {
			return nil, err
		}
		out[i] = sortKey{path: p, desc: s.Desc}
	}
	return out, nil
}

// compareMissingLast orders lookup results with a missing value after every
// present one, as SQL NULLs sort ascending.
func compareMissingLast(a any, aok bool, b any, bok bool) int {
	switch {
	case !aok && !bok:
		return 0
	case !aok:
		return 1
	case !bok:
		return -1
	}
	return compareJSON(a, b)
}

// rank is jsonb's order of types.
func rank(v any) int {
	switch v.(type) {
	case nil:
		return 0
	case string:
		return 1
	case json.Number:
		return 2
	case bool:
		return 3
	case []any:
		return 4
	default: // map[string]any
		return 5
	}
}

// compareJSON orders two decoded documents as jsonb's btree operators do
// (strings bytewise). It is zero exactly when jsonb's = holds.
func compareJSON(a, b any) int {
	if ra, rb := rank(a), rank(b); ra != rb {
		return ra - rb
	}
	switch a := a.(type) {
	case nil:
		return 0
	case string:
		return strings.Compare(a, b.(string))
	case json.Number:
		return compareNumbers(a, b.(json.Number))
	case bool:
		switch bb := b.(bool); {
		case a == bb:
			return 0
		case !a:
			return -1
		default:
			return 1
		}
	case []any:
		bb := b.([]any)
		if len(a) != len(bb) {
			return len(a) - len(bb)
		}
		for i := range a {
			if c := compareJSON(a[i], bb[i]); c != 0 {
				return c
			}
		}
		return 0
	case map[string]any:
		bb := b.(map[string]any)
		if len(a) != len(bb) {
			return len(a) - len(bb)
		}
		ka, kb := jsonbKeys(a), jsonbKeys(bb)
		for i := range ka {
			if c := compareJSONKeys(ka[i], kb[i]); c != 0 {
				return c
			}
			if c := compareJSON(a[ka[i]], bb[kb[i]]); c != 0 {
				return c
			}
		}
		return 0
	}
	return 0
}

// jsonbKeys returns an object's keys in jsonb's storage order: shorter keys
// first, then bytewise.
func jsonbKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareJSONKeys)
	return keys
}

func compareJSONKeys(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

func compareNumbers(a, b json.Number) int {
	ia, errA := strconv.ParseInt(string(a), 10, 64)
	ib, errB := strconv.ParseInt(string(b), 10, 64)
	if errA == nil && errB == nil {
		switch {
		case ia < ib:
			return -1
		case ia > ib:
			return 1
		}
		return 0
	}
	fa, _, errA := big.ParseFloat(string(a), 10, 512, big.ToNearestEven)
	fb, _, errB := big.ParseFloat(string(b), 10, 512, big.ToNearestEven)
	if errA != nil || errB != nil {
		return strings.Compare(string(a), string(b))
	}
	return fa.Cmp(fb)
}
