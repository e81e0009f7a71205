package tenants

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blockgate/blockgate/internal/regcache/regcachetest"
)

func TestParseID(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"simple", "acme", true},
		{"digits and dash", "team-42", true},
		{"one char", "a", true},
		{"63 chars", strings.Repeat("a", 63), true},
		{"64 chars", strings.Repeat("a", 64), false},
		{"empty", "", false},
		{"upper", "Acme", false},
		{"leading dash", "-acme", false},
		{"trailing dash", "acme-", false},
		{"dot", "a.b", false},
		{"nats wildcard", "a*", false},
		{"unicode", "ácme", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseID(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseID(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			}
		})
	}
}

func TestValidateAppID(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"orders", true},
		{"Orders.v2_blue-1", true},
		{"7up", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"-orders", false},
		{".orders", false},
		{"_orders", false},
		{"a||b", false},
		{"a/b", false},
		{"a b", false},
		{"a*", false},
		{"órders", false},
		{"orders\x00", false},
	}
	for _, tt := range tests {
		if err := ValidateAppID(tt.in); (err == nil) != tt.ok {
			t.Errorf("ValidateAppID(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}

func TestParseComponent(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		wantErr string
	}{
		{"state", `
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: statestore}
spec:
  type: state.postgresql
  version: v1
  metadata:
  - name: keyPrefix
    value: name
scopes: [app1]`, ""},
		{"wrong kind", "apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata: {name: x}\nspec: {type: state.x, version: v1}", "kind"},
		{"wrong api", "apiVersion: v1\nkind: Component\nmetadata: {name: x}\nspec: {type: state.x, version: v1}", "apiVersion"},
		{"unknown field", "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: x}\nspec: {type: state.x, version: v1, typo: 1}", "unknown field"},
		{"bad type", "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: x}\nspec: {type: state, version: v1}", "spec.type"},
		{"no version", "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: x}\nspec: {type: state.x}", "version"},
		{"bad name", "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: X_Y}\nspec: {type: state.x, version: v1}", "component name"},
		{"duplicate metadata", "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: x}\nspec: {type: state.x, version: v1, metadata: [{name: a, value: '1'}, {name: A, value: '2'}]}", "twice"},
		{"not yaml", "{{{", "neither"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseComponent([]byte(tt.doc))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v, _ := c.Meta("KEYPREFIX"); v != "name" || c.Kind() != "state" || !c.InScope("app1") || c.InScope("app2") {
				t.Fatalf("parsed %+v", c)
			}
			again, err := ParseComponent(c.Document())
			if err != nil || again.Name != c.Name || again.Type != c.Type || len(again.Metadata) != 1 {
				t.Fatalf("round trip: %+v, %v", again, err)
			}
		})
	}
}

func FuzzParseComponent(f *testing.F) {
	f.Add([]byte("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: x}\nspec: {type: state.x, version: v1}"))
	f.Add([]byte(`{"apiVersion":"dapr.io/v1alpha1","kind":"Component","metadata":{"name":"x"},"spec":{"type":"a.b","version":"v1","metadata":[{"name":"k","value":"v"}]}}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := ParseComponent(doc)
		if err != nil {
			return
		}
		// Whatever parses must validate and survive a round trip.
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed component does not validate: %v", err)
		}
		if _, err := ParseComponent(c.Document()); err != nil {
			t.Fatalf("round trip of %q: %v", doc, err)
		}
	})
}

func TestComponentCache(t *testing.T) {
	var loads atomic.Int32
	var fail atomic.Bool
	var version atomic.Value
	version.Store("v1")
	clk := regcachetest.NewClock()
	cache := newComponentCache(func(_ context.Context, tenant ID) ([]Component, error) {
		loads.Add(1)
		if fail.Load() {
			return nil, errors.New("registry down")
		}
		return []Component{{Tenant: tenant, Name: "statestore", Type: "state.in-memory", Version: version.Load().(string)}}, nil
	}, time.Minute, clk.Now)
	ctx := t.Context()

	if _, ok, err := cache.Component(ctx, "a", "statestore"); !ok || err != nil {
		t.Fatalf("first lookup: %v %v", ok, err)
	}
	if _, ok, _ := cache.Component(ctx, "a", "nope"); ok {
		t.Fatal("found a component that does not exist")
	}
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d loads, want 1 (cached)", n)
	}
	cache.Invalidate("a")
	cache.Component(ctx, "a", "statestore")
	if n := loads.Load(); n != 2 {
		t.Fatalf("%d loads after invalidate, want 2", n)
	}
	// Past max age with the registry down: the stale entry keeps serving.
	fail.Store(true)
	clk.Add(2 * time.Minute)
	if _, ok, err := cache.Component(ctx, "a", "statestore"); !ok || err != nil {
		t.Fatalf("stale entry not served during an outage: %v %v", ok, err)
	}
	// A tenant never loaded has nothing to fall back on.
	if _, _, err := cache.Component(ctx, "b", "statestore"); err == nil {
		t.Fatal("expected an error for an unknown tenant during an outage")
	}
	// Once the registry is back, the stale entry is served until a
	// background reload replaces it.
	fail.Store(false)
	version.Store("v2")
	clk.Add(time.Second) // past the wait between two reloads
	regcachetest.Eventually(t, "the reloaded component", func() bool {
		comp, ok, err := cache.Component(ctx, "a", "statestore")
		if !ok || err != nil {
			t.Fatalf("lookup during the reload: %v %v", ok, err)
		}
		return comp.Version == "v2"
	})
}
