package state

import (
	"errors"
	"testing"

	"github.com/blockgate/blockgate/blocks"
)

func TestParseQuery(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
		check   func(t *testing.T, q Query)
	}{
		{name: "empty", in: `{}`, check: func(t *testing.T, q Query) {
			if q.Filter != nil || q.Limit != 0 {
				t.Fatalf("%+v", q)
			}
		}},
		{name: "nested", in: `{"filter":{"OR":[{"EQ":{"person.org":"Dev Ops"}},{"AND":[{"EQ":{"a":1}},{"IN":{"state":["CA","WA"]}}]}]},"sort":[{"key":"state","order":"DESC"},{"key":"id"}],"page":{"limit":3,"token":"6"}}`,
			check: func(t *testing.T, q Query) {
				if q.Filter.Op != "OR" || len(q.Filter.Children) != 2 || q.Filter.Children[1].Children[1].Op != "IN" ||
					len(q.Filter.Children[1].Children[1].Values) != 2 || q.Filter.Children[0].Key != "person.org" {
					t.Fatalf("filter %s", q.Filter)
				}
				if len(q.Sort) != 2 || !q.Sort[0].Desc || q.Sort[1].Desc || q.Limit != 3 || q.Token != "6" {
					t.Fatalf("%+v", q)
				}
			}},
		{name: "unknown op", in: `{"filter":{"LIKE":{"a":"b"}}}`, wantErr: true},
		{name: "two ops", in: `{"filter":{"EQ":{"a":1},"IN":{"b":[1]}}}`, wantErr: true},
		{name: "empty AND", in: `{"filter":{"AND":[]}}`, wantErr: true},
		{name: "empty IN", in: `{"filter":{"IN":{"a":[]}}}`, wantErr: true},
		{name: "object EQ", in: `{"filter":{"EQ":{"a":{"b":1}}}}`, wantErr: true},
		{name: "empty path segment", in: `{"filter":{"EQ":{"a..b":1}}}`, wantErr: true},
		{name: "bad order", in: `{"sort":[{"key":"a","order":"UP"}]}`, wantErr: true},
		{name: "negative limit", in: `{"page":{"limit":-1}}`, wantErr: true},
		{name: "unknown field", in: `{"filtr":{}}`, wantErr: true},
		{name: "not json", in: `{`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := ParseQuery([]byte(tt.in))
			if tt.wantErr {
				var be *blocks.Error
				if !errors.As(err, &be) || be.HTTPStatus != 400 {
					t.Fatalf("want a 400 error, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, q)
		})
	}
}

func TestParseQueryDepthBound(t *testing.T) {
	in := `{"EQ":{"a":1}}`
	for range maxFilterDepth + 2 {
		in = `{"AND":[` + in + `]}`
	}
	if _, err := ParseQuery([]byte(`{"filter":` + in + `}`)); err == nil {
		t.Fatal("a filter nested past the bound was accepted")
	}
}

func FuzzParseQuery(f *testing.F) {
	f.Add([]byte(`{"filter":{"EQ":{"a":1}},"sort":[{"key":"a"}],"page":{"limit":2}}`))
	f.Add([]byte(`{"filter":{"OR":[{"IN":{"x.y":[1,"2",true,null]}}]}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		q, err := ParseQuery(raw)
		if err != nil {
			var be *blocks.Error
			if !errors.As(err, &be) || be.HTTPStatus != 400 {
				t.Fatalf("non-client error %v", err)
			}
			return
		}
		if q.Filter != nil {
			_ = q.Filter.String()
		}
	})
}
