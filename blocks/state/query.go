package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// maxFilterDepth bounds nesting so that a hostile query cannot recurse deeply.
const maxFilterDepth = 16

// ParseQuery reads Dapr's JSON query document:
//
//	{"filter": {"OR": [{"EQ": {"person.org": "Dev Ops"}}, {"IN": {"state": ["CA", "WA"]}}]},
//	 "sort": [{"key": "state", "order": "DESC"}],
//	 "page": {"limit": 10, "token": "..."}}
//
// Every part is optional. Errors are client errors with ERR_MALFORMED_REQUEST.
func ParseQuery(raw []byte) (Query, error) {
	var doc struct {
		Filter json.RawMessage `json:"filter"`
		Sort   []struct {
			Key   string `json:"key"`
			Order string `json:"order"`
		} `json:"sort"`
		Page struct {
			Limit int    `json:"limit"`
			Token string `json:"token"`
		} `json:"page"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return Query{}, errQueryMalformed("%v", err)
	}
	q := Query{Limit: doc.Page.Limit, Token: doc.Page.Token}
	if q.Limit < 0 {
		return Query{}, errQueryMalformed("page.limit must not be negative")
	}
	if len(doc.Filter) > 0 && !bytes.Equal(bytes.TrimSpace(doc.Filter), []byte("null")) &&
		!bytes.Equal(bytes.TrimSpace(doc.Filter), []byte("{}")) {
		f, err := parseFilter(doc.Filter, 0)
		if err != nil {
			return Query{}, err
		}
		q.Filter = &f
	}
	for _, s := range doc.Sort {
		if err := validPath(s.Key); err != nil {
			return Query{}, err
		}
		switch strings.ToUpper(s.Order) {
		case "", "ASC":
			q.Sort = append(q.Sort, Sort{Key: s.Key})
		case "DESC":
			q.Sort = append(q.Sort, Sort{Key: s.Key, Desc: true})
		default:
			return Query{}, errQueryMalformed("sort order %q: use ASC or DESC", s.Order)
		}
	}
	return q, nil
}

func parseFilter(raw json.RawMessage, depth int) (Filter, error) {
	if depth > maxFilterDepth {
		return Filter{}, errQueryMalformed("filter nests deeper than %d levels", maxFilterDepth)
	}
	var node map[string]json.RawMessage
	if err := json.Unmarshal(raw, &node); err != nil {
		return Filter{}, errQueryMalformed("a filter must be an object like {\"EQ\": {\"key\": value}}")
	}
	if len(node) != 1 {
		return Filter{}, errQueryMalformed("a filter object must have exactly one operator, got %d", len(node))
	}
	for op, body := range node {
		switch op {
		case "AND", "OR":
			var parts []json.RawMessage
			if err := json.Unmarshal(body, &parts); err != nil || len(parts) < 1 {
				return Filter{}, errQueryMalformed("%s takes a non-empty array of filters", op)
			}
			f := Filter{Op: op, Children: make([]Filter, 0, len(parts))}
			for _, p := range parts {
				c, err := parseFilter(p, depth+1)
				if err != nil {
					return Filter{}, err
				}
				f.Children = append(f.Children, c)
			}
			return f, nil
		case "EQ", "IN":
			var kv map[string]json.RawMessage
			if err := json.Unmarshal(body, &kv); err != nil || len(kv) != 1 {
				return Filter{}, errQueryMalformed("%s takes an object with exactly one key", op)
			}
			for key, v := range kv {
				if err := validPath(key); err != nil {
					return Filter{}, err
				}
				f := Filter{Op: op, Key: key}
				if op == "EQ" {
					var val any
					if err := json.Unmarshal(v, &val); err != nil {
						return Filter{}, errQueryMalformed("EQ value for %s: %v", key, err)
					}
					f.Values = []any{val}
				} else {
					if err := json.Unmarshal(v, &f.Values); err != nil || len(f.Values) == 0 {
						return Filter{}, errQueryMalformed("IN for %s takes a non-empty array of values", key)
					}
				}
				for _, val := range f.Values {
					switch val.(type) {
					case map[string]any, []any:
						return Filter{}, errQueryMalformed("%s for %s compares scalars only (string, number, bool, null)", op, key)
					}
				}
				return f, nil
			}
		default:
			return Filter{}, errQueryMalformed("unsupported filter operator %q: use EQ, IN, AND or OR", op)
		}
	}
	panic("unreachable")
}

func validPath(key string) error {
	if key == "" {
		return errQueryMalformed("a filter or sort key is empty")
	}
	for _, part := range strings.Split(key, ".") {
		if part == "" {
			return errQueryMalformed("key %q has an empty path segment", key)
		}
	}
	return nil
}

// String renders f for logs.
func (f Filter) String() string {
	switch f.Op {
	case "AND", "OR":
		parts := make([]string, len(f.Children))
		for i, c := range f.Children {
			parts[i] = c.String()
		}
		return "(" + strings.Join(parts, " "+f.Op+" ") + ")"
	}
	return fmt.Sprintf("%s %s %v", f.Key, f.Op, f.Values)
}
