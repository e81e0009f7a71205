package pubsub

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseSubscription(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want Subscription
	}{
		{
			name: "v2alpha1 from Dapr's routing docs",
			doc: `
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: myevent-subscription
spec:
  pubsubname: pubsub
  topic: inventory
  routes:
    rules:
      - match: event.type == "widget"
        path: /widgets
      - match: event.type == "gadget"
        path: /gadgets
    default: /products
scopes:
  - app1
  - app2
`,
			want: Subscription{
				Name: "myevent-subscription", Pubsub: "pubsub", Topic: "inventory",
				Routes: Routes{Rules: []Rule{
					{Match: `event.type == "widget"`, Path: "/widgets"},
					{Match: `event.type == "gadget"`, Path: "/gadgets"},
				}, Default: "/products"},
				Scopes: []string{"app1", "app2"},
			},
		},
		{
			name: "v2alpha1 with every field",
			doc: `
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: orders
  namespace: default
  labels: {team: shop}
spec:
  pubsubname: orders-ps
  topic: orders.created
  routes:
    default: /orders
  deadLetterTopic: orders-dead
  metadata:
    rawPayload: "true"
    maxConcurrency: "4"
  bulkSubscribe:
    enabled: true
    maxMessagesCount: 50
    maxAwaitDurationMs: 200
`,
			want: Subscription{
				Name: "orders", Pubsub: "orders-ps", Topic: "orders.created",
				Routes: Routes{Default: "/orders"}, DeadLetterTopic: "orders-dead",
				Metadata:      map[string]string{"rawPayload": "true", "maxConcurrency": "4"},
				BulkSubscribe: &BulkSubscribe{Enabled: true, MaxMessagesCount: 50, MaxAwaitDurationMs: 200},
			},
		},
		{
			name: "v1alpha1 route becomes the default",
			doc: `
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata:
  name: legacy
spec:
  topic: deathStarStatus
  route: /dsstatus
  pubsubname: pubsub
scopes: [app1]
`,
			want: Subscription{Name: "legacy", Pubsub: "pubsub", Topic: "deathStarStatus",
				Routes: Routes{Default: "/dsstatus"}, Scopes: []string{"app1"}},
		},
		{
			name: "JSON",
			doc: `{"apiVersion":"dapr.io/v2alpha1","kind":"Subscription","metadata":{"name":"j"},
				"spec":{"pubsubname":"ps","topic":"t","routes":{"rules":[{"match":"","path":"catch-all"}]},"metadata":{}}}`,
			want: Subscription{Name: "j", Pubsub: "ps", Topic: "t", Routes: Routes{Rules: []Rule{{Path: "catch-all"}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSubscription([]byte(tt.doc))
			if err != nil {
				t.Fatalf("ParseSubscription: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %#v\nwant %#v", got, tt.want)
			}
			// Document round-trips.
			again, err := ParseSubscription(got.Document())
			if err != nil {
				t.Fatalf("parsing Document(): %v\n%s", err, got.Document())
			}
			if !reflect.DeepEqual(again, got) {
				t.Errorf("round trip\n got %#v\nwant %#v\n%s", again, got, got.Document())
			}
		})
	}
}

func TestSubscriptionDocument(t *testing.T) {
	s := Subscription{Name: "n", Pubsub: "ps", Topic: "t", Routes: Routes{Default: "/x"}}
	want := `{"apiVersion":"dapr.io/v2alpha1","kind":"Subscription","metadata":{"name":"n"},` +
		`"spec":{"pubsubname":"ps","topic":"t","routes":{"default":"/x"}}}`
	if got := string(s.Document()); got != want {
		t.Errorf("Document\n got %s\nwant %s", got, want)
	}
}

func TestParseSubscriptionRefuses(t *testing.T) {
	const head = "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: s\n"
	spec := func(body string) string { return head + "spec:\n" + body }
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"not YAML", "a: [", "neither YAML nor JSON"},
		{"unknown top-level field", head + "spec: {pubsubname: ps, topic: t, route: /x}\nscope: [a]\n", "unknown field"},
		{"unknown spec field", spec("  pubsubname: ps\n  topic: t\n  routes: {default: /x}\n  topics: [a]\n"), "unknown field"},
		{"v1 field in v2", spec("  pubsubname: ps\n  topic: t\n  route: /x\n"), "unknown field"},
		{"unknown rule field", spec("  pubsubname: ps\n  topic: t\n  routes: {rules: [{match: 'true', path: /a, prio: 1}]}\n"), "unknown field"},
		{"metadata value not a string", spec("  pubsubname: ps\n  topic: t\n  routes: {default: /x}\n  metadata: {rawPayload: true}\n"), "cannot unmarshal"},
		{"wrong kind", "apiVersion: dapr.io/v2alpha1\nkind: Component\nmetadata: {name: s}\nspec: {}\n", "want Subscription"},
		{"wrong apiVersion", "apiVersion: dapr.io/v3\nkind: Subscription\nmetadata: {name: s}\nspec: {}\n", "apiVersion"},
		{"no spec", head, "spec is required"},
		{"no name", "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nspec: {pubsubname: ps, topic: t, routes: {default: /x}}\n", "name"},
		{"bad name", strings.Replace(spec("  pubsubname: ps\n  topic: t\n  routes: {default: /x}\n"), "name: s", "name: Bad_Name", 1), "name"},
		{"no pubsubname", spec("  topic: t\n  routes: {default: /x}\n"), "pubsubname is required"},
		{"bad pubsubname", spec("  pubsubname: My.PubSub\n  topic: t\n  routes: {default: /x}\n"), "pubsubname"},
		{"no topic", spec("  pubsubname: ps\n  routes: {default: /x}\n"), "topic is empty"},
		{"topic with NUL", `{"apiVersion":"dapr.io/v2alpha1","kind":"Subscription","metadata":{"name":"s"},"spec":{"pubsubname":"ps","topic":"a\u0000b","routes":{"default":"/x"}}}`, "NUL"},
		{"no route", spec("  pubsubname: ps\n  topic: t\n"), "no route"},
		{"rule without path", spec("  pubsubname: ps\n  topic: t\n  routes: {rules: [{match: 'true'}]}\n"), "path is required"},
		{"path with a space", spec("  pubsubname: ps\n  topic: t\n  routes: {default: /a b}\n"), "space"},
		{"rule does not compile", spec("  pubsubname: ps\n  topic: t\n  routes: {rules: [{match: 'event.type ==', path: /a}]}\n"), "routes.rules[0]"},
		{"rule not a bool", spec("  pubsubname: ps\n  topic: t\n  routes: {rules: [{match: 'event.type', path: /a}, {match: '1', path: /b}]}\n"), "must be a bool"},
		{"dead letter is the topic", spec("  pubsubname: ps\n  topic: t\n  routes: {default: /x}\n  deadLetterTopic: t\n"), "differ"},
		{"rawPayload not a bool", spec("  pubsubname: ps\n  topic: t\n  routes: {default: /x}\n  metadata: {rawPayload: 'yes please'}\n"), "rawPayload"},
		{"negative bulk", spec("  pubsubname: ps\n  topic: t\n  routes: {default: /x}\n  bulkSubscribe: {enabled: true, maxMessagesCount: -1}\n"), "negative"},
		{"bulk count not a number", spec("  pubsubname: ps\n  topic: t\n  routes: {default: /x}\n  bulkSubscribe: {enabled: true, maxMessagesCount: many}\n"), "cannot unmarshal"},
		{"bad scope", spec("  pubsubname: ps\n  topic: t\n  routes: {default: /x}\n") + "scopes: ['-app']\n", "scopes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSubscription([]byte(tt.doc))
			if err == nil {
				t.Fatalf("ParseSubscription succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestParseProgrammatic(t *testing.T) {
	// The shapes the SDKs answer /dapr/subscribe with (the Go SDK always
	// sends deadLetterTopic, the JS SDK adds fields of its own).
	body := `[
	  {"pubsubname":"orders-ps","topic":"orders","route":"/orders","deadLetterTopic":"",
	   "metadata":{"rawPayload":"true"},"bulkSubscribe":{"enabled":true,"maxMessagesCount":10},"extra":{"x":1}},
	  {"pubsubname":"orders-ps","topic":"inventory","routes":{"rules":[{"match":"event.type == \"widget\"","path":"/widgets"}],"default":"/products"}},
	  {"pubsubname":"orders-ps","topic":"legacy","route":"/fallback","routes":{"rules":[{"match":"event.data.x > 1","path":"/big"}]}},
	  {"pubsubname":"orders-ps","topic":"no-route"},
	  {"pubsubName":"orders-ps","Topic":"cased","route":"dead","deadLetterTopic":"cased-dlq"}
	]`
	got, err := ParseProgrammatic([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := []Subscription{
		{Pubsub: "orders-ps", Topic: "orders", Routes: Routes{Default: "/orders"},
			Metadata: map[string]string{"rawPayload": "true"}, BulkSubscribe: &BulkSubscribe{Enabled: true, MaxMessagesCount: 10}},
		{Pubsub: "orders-ps", Topic: "inventory", Routes: Routes{
			Rules: []Rule{{Match: `event.type == "widget"`, Path: "/widgets"}}, Default: "/products"}},
		{Pubsub: "orders-ps", Topic: "legacy", Routes: Routes{
			Rules: []Rule{{Match: `event.data.x > 1`, Path: "/big"}}, Default: "/fallback"}},
		{Pubsub: "orders-ps", Topic: "cased", Routes: Routes{Default: "dead"}, DeadLetterTopic: "cased-dlq"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
	if !got[0].RawPayload() || got[1].RawPayload() {
		t.Error("RawPayload is wrong")
	}

	for _, empty := range []string{"", "  \n", "null", "[]"} {
		subs, err := ParseProgrammatic([]byte(empty))
		if err != nil || len(subs) != 0 {
			t.Errorf("ParseProgrammatic(%q) = %v, %v", empty, subs, err)
		}
	}
}

func TestParseProgrammaticRefuses(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string
	}{
		{"not JSON", `[{"pubsubname":`, "reading the app's subscriptions"},
		{"an object", `{"pubsubname":"ps","topic":"t","route":"/x"}`, "cannot unmarshal"},
		{"metadata value a number", `[{"pubsubname":"ps","topic":"t","route":"/x","metadata":{"n":1}}]`, "cannot unmarshal"},
		{"route a list", `[{"pubsubname":"ps","topic":"t","route":["/x"]}]`, "cannot unmarshal"},
		{"bulk enabled a string", `[{"pubsubname":"ps","topic":"t","route":"/x","bulkSubscribe":{"enabled":"yes"}}]`, "cannot unmarshal"},
		{"rule does not compile", `[{"pubsubname":"ps","topic":"t","route":"/x"},{"pubsubname":"ps","topic":"u","routes":{"rules":[{"match":"event.","path":"/a"}]}}]`, "invalid subscription 1"},
		{"no topic", `[{"pubsubname":"ps","route":"/x"}]`, "topic is empty"},
		{"no pubsub", `[{"topic":"t","route":"/x"}]`, "pubsubname is required"},
		{"trailing data", `[] []`, "reading the app's subscriptions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseProgrammatic([]byte(tt.body))
			if err == nil {
				t.Fatal("ParseProgrammatic succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestSubscriptionScopes(t *testing.T) {
	all := Subscription{}
	some := Subscription{Scopes: []string{"a", "b"}}
	if !all.InScope("x") || !some.InScope("b") || some.InScope("c") {
		t.Error("InScope is wrong")
	}
}

func TestValidateTopic(t *testing.T) {
	for _, ok := range []string{"orders", "a.b.c", "a/b", "*", ">", "with space", "ünïcode", strings.Repeat("x", MaxTopicLen)} {
		if err := ValidateTopic(ok); err != nil {
			t.Errorf("ValidateTopic(%q) = %v", ok, err)
		}
	}
	for bad, code := range map[string]string{
		"":                                 "ERR_TOPIC_NAME_EMPTY",
		"a\x00b":                           "ERR_MALFORMED_REQUEST",
		"\xff":                             "ERR_MALFORMED_REQUEST",
		strings.Repeat("x", MaxTopicLen+1): "ERR_MALFORMED_REQUEST",
	} {
		err := ValidateTopic(bad)
		if err == nil || !strings.HasPrefix(err.Error(), code) {
			t.Errorf("ValidateTopic(%q) = %v, want %s", bad, err, code)
		}
	}
}

func FuzzParseSubscription(f *testing.F) {
	f.Add([]byte("apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: s}\nspec: {pubsubname: ps, topic: t, routes: {rules: [{match: 'event.type == \"a\"', path: /a}], default: /d}}\n"))
	f.Add([]byte(`{"apiVersion":"dapr.io/v1alpha1","kind":"Subscription","metadata":{"name":"s"},"spec":{"pubsubname":"ps","topic":"t","route":"/x","bulkSubscribe":{"enabled":true}}}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		s, err := ParseSubscription(doc)
		if err != nil {
			return
		}
		again, err := ParseSubscription(s.Document())
		if err != nil {
			t.Fatalf("Document does not parse: %v\n%s", err, s.Document())
		}
		if !reflect.DeepEqual(again, s) {
			t.Fatalf("round trip\n got %#v\nwant %#v", again, s)
		}
	})
}
