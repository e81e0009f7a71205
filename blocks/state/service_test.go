package state_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/blockgate/blockgate/blocks/state"
	"github.com/blockgate/blockgate/blocks/state/statemem"
	"github.com/blockgate/blockgate/tenants"
)

// components serves one component per test.
type components struct{ c tenants.Component }

func (f components) Component(_ context.Context, t tenants.ID, name string) (tenants.Component, bool, error) {
	c := f.c
	c.Tenant = t
	return c, name == c.Name, nil
}
func (components) HasKind(context.Context, tenants.ID, string) (bool, error) { return true, nil }

func newService(t *testing.T, prefix string) (*state.Service, *statemem.Store) {
	t.Helper()
	c := tenants.Component{Name: "store", Type: "state.in-memory", Version: "v1", Revision: 1}
	if prefix != "" {
		c.Metadata = []tenants.MetadataItem{{Name: "keyPrefix", Value: prefix}}
	}
	mem := statemem.New()
	svc := state.NewService(components{c}, map[string]state.Opener{
		"state.in-memory": func(tenants.Component) (state.Store, error) { return mem, nil },
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return svc, mem
}

func TestKeyPrefix(t *testing.T) {
	tests := []struct {
		prefix    string
		stored    string // the key the store sees for app1's "k"
		appsShare bool   // whether app2 reads app1's key
	}{
		{"", "app1||k", false},
		{"appid", "app1||k", false},
		{"name", "store||k", true},
		{"namespace", "acme.app1||k", false},
		{"none", "k", true},
		{"shared", "shared||k", true},
	}
	for _, tt := range tests {
		t.Run("keyPrefix="+tt.prefix, func(t *testing.T) {
			svc, mem := newService(t, tt.prefix)
			ctx := t.Context()
			app1 := tenants.Principal{Tenant: "acme", AppID: "app1"}
			app2 := tenants.Principal{Tenant: "acme", AppID: "app2"}
			if err := svc.Save(ctx, app1, "store", []state.SetItem{{Key: "k", Value: []byte("v")}}); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := mem.Get(ctx, tt.stored); !ok {
				t.Fatalf("the store has no key %q", tt.stored)
			}
			got, err := svc.Get(ctx, app2, "store", "k", state.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Found != tt.appsShare {
				t.Fatalf("app2 found app1's key: %v, want %v", got.Found, tt.appsShare)
			}
		})
	}
}

func TestServiceValidation(t *testing.T) {
	svc, _ := newService(t, "")
	ctx := t.Context()
	p := tenants.Principal{Tenant: "acme", AppID: "app1"}
	for name, item := range map[string]state.SetItem{
		"empty key":   {Key: ""},
		"key with ||": {Key: "a||b"},
		"NUL":         {Key: "a\x00b"},
		"bad utf-8":   {Key: "\xff"},
		"bad ttl":     {Key: "k", Metadata: map[string]string{"ttlInSeconds": "-5"}},
		"bad option":  {Key: "k", Options: state.Options{Consistency: "sometimes"}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := svc.Save(ctx, p, "store", []state.SetItem{item}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	// An empty ETag means none.
	empty := ""
	if err := svc.Save(ctx, p, "store", []state.SetItem{{Key: "k", Value: []byte("1"), ETag: &empty}}); err != nil {
		t.Fatalf("empty etag: %v", err)
	}
	// A component with a bad keyPrefix is refused when applied.
	bad := tenants.Component{Name: "s", Type: "state.in-memory", Version: "v1",
		Metadata: []tenants.MetadataItem{{Name: "keyPrefix", Value: "a||b"}}}
	if err := svc.ValidateComponent(bad); err == nil {
		t.Fatal("keyPrefix with || accepted")
	}
}
