package authpolicy

import (
	"strings"
	"testing"

	"github.com/blockgate/blockgate/tenants"
)

func TestComponent(t *testing.T) {
	open := tenants.Component{Name: "statestore", Type: "state.postgresql"}
	scoped := tenants.Component{Name: "statestore", Type: "state.postgresql", Scopes: []string{"orders"}}
	tests := []struct {
		name string
		c    tenants.Component
		app  string
		deny bool
		want bool
	}{
		{"no scopes: every app", open, "web", false, true},
		{"no scopes, deny by default: no app", open, "web", true, false},
		{"scoped: listed app", scoped, "orders", false, true},
		{"scoped: other app", scoped, "web", false, false},
		{"scoped, deny by default: listed app", scoped, "orders", true, true},
		{"scoped, deny by default: other app", scoped, "web", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newSet(t, tt.deny).Component(tt.app, tt.c)
			if d.Allowed != tt.want || d.Reason == "" || d.Rule == "" {
				t.Errorf("Component(%s) = %+v, want allowed=%v", tt.app, d, tt.want)
			}
			if !d.Allowed && !strings.Contains(d.Reason, "statestore") {
				t.Errorf("the reason does not name the component: %q", d.Reason)
			}
		})
	}
}

func TestTopic(t *testing.T) {
	meta := func(kv ...string) []tenants.MetadataItem {
		var out []tenants.MetadataItem
		for i := 0; i < len(kv); i += 2 {
			out = append(out, tenants.MetadataItem{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	plain := tenants.Component{Name: "pubsub", Type: "pubsub.jetstream"}
	// Under deny-by-default a component needs scopes before its topic
	// scopes count at all.
	everyone := []string{"orders", "billing", "audit", "web"}
	scoped := tenants.Component{Name: "pubsub", Type: "pubsub.jetstream", Scopes: everyone, Metadata: meta(
		"publishingScopes", "orders=created,cancelled;audit=",
		"subscriptionScopes", "billing=created",
	)}
	allowed := tenants.Component{Name: "pubsub", Type: "pubsub.jetstream", Scopes: everyone, Metadata: meta(
		"allowedTopics", "created",
		"publishingScopes", "orders=created,other",
	)}
	restricted := scoped
	restricted.Scopes = []string{"orders"}
	tests := []struct {
		name    string
		c       tenants.Component
		app     string
		topic   string
		publish bool
		off, on bool // allowed with the switch off and on
		onRule  string
	}{
		{name: "no topic scopes: anyone publishes", c: plain, app: "web", topic: "x", publish: true, off: true, onRule: "component pubsub has no scopes"},
		{name: "no topic scopes: anyone subscribes", c: plain, app: "web", topic: "x", off: true},
		{name: "listed publisher, its topic", c: scoped, app: "orders", topic: "created", publish: true, off: true, on: true},
		{name: "listed publisher, another topic", c: scoped, app: "orders", topic: "shipped", publish: true},
		{name: "listed with no topics", c: scoped, app: "audit", topic: "created", publish: true},
		{name: "unlisted publisher", c: scoped, app: "web", topic: "created", publish: true, off: true, onRule: "publishingScopes of pubsub do not list app web"},
		{name: "listed subscriber, its topic", c: scoped, app: "billing", topic: "created", off: true, on: true},
		{name: "listed subscriber, another topic", c: scoped, app: "billing", topic: "cancelled"},
		{name: "unlisted subscriber", c: scoped, app: "orders", topic: "created", off: true, onRule: "subscriptionScopes of pubsub do not list app orders"},
		{name: "allowedTopics limits listed apps", c: allowed, app: "orders", topic: "other", publish: true},
		{name: "allowedTopics limits unlisted apps", c: allowed, app: "web", topic: "other", publish: true},
		{name: "allowedTopics and listed", c: allowed, app: "orders", topic: "created", publish: true, off: true, on: true},
		{name: "component out of scope", c: restricted, app: "billing", topic: "created"},
		{name: "component in scope", c: restricted, app: "orders", topic: "created", publish: true, off: true, on: true},
		{name: "malformed scopes", c: tenants.Component{Name: "pubsub", Scopes: []string{"a"}, Metadata: meta("publishingScopes", "a")}, app: "a", topic: "t", publish: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, deny := range []bool{false, true} {
				want := tt.off
				if deny {
					want = tt.on
				}
				d := newSet(t, deny).Topic(tt.app, tt.c, tt.topic, tt.publish)
				if d.Allowed != want || d.Reason == "" {
					t.Errorf("deny=%v: Topic(%s, %s) = %+v, want allowed=%v", deny, tt.app, tt.topic, d, want)
				}
				if deny && tt.onRule != "" && !strings.Contains(d.Rule+" "+d.Reason, tt.onRule) {
					t.Errorf("deny=%v: %+v does not say %q", deny, d, tt.onRule)
				}
			}
		})
	}
}

// TestDenyByDefaultInvoke: the switch turns "no configuration" and "no
// defaultAction" into deny, and nothing else.
func TestDenyByDefaultInvoke(t *testing.T) {
	records := []Record{
		{Name: "explicit", Apps: []string{"open"}, Document: config("explicit", "defaultAction: allow")},
		{Name: "implicit", Apps: []string{"implicit"}, Document: config("implicit", "trustDomain: blockgate.example")},
		{Name: "scoped", Apps: []string{"scoped"}, Document: config("scoped", `
defaultAction: deny
policies:
- appId: web
  defaultAction: allow
`)},
	}
	for _, tt := range []struct {
		target  string
		off, on bool
	}{
		{"open", true, true},
		{"implicit", true, false},
		{"nothing", true, false},
		{"scoped", true, true},
	} {
		for _, deny := range []bool{false, true} {
			want := tt.off
			if deny {
				want = tt.on
			}
			if d := newSet(t, deny, records...).Invoke("web", tt.target, "x", "GET", false); d.Allowed != want {
				t.Errorf("deny=%v: invoking %s: %+v, want allowed=%v", deny, tt.target, d, want)
			}
		}
	}
	if !newSet(t, true).DenyByDefault() || newSet(t, false).DenyByDefault() {
		t.Error("DenyByDefault does not report the switch")
	}
}
