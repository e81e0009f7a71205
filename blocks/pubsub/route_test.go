package pubsub

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// event publishes data with content type ct and metadata md, and decodes
// it as a subscriber would.
func event(t *testing.T, data, ct string, md map[string]string) Event {
	t.Helper()
	m, err := NewEnvelope(request(data, ct, md))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := DecodeEvent(m)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func compile(t *testing.T, r Routes) *Router {
	t.Helper()
	router, err := CompileRoutes(r)
	if err != nil {
		t.Fatalf("CompileRoutes: %v", err)
	}
	return router
}

func TestRouterDaprExamples(t *testing.T) {
	// The routes of Dapr's "Route messages to different event handlers" page.
	docs := compile(t, Routes{Rules: []Rule{
		{Match: `event.type == "widget"`, Path: "/widgets"},
		{Match: `event.type == "gadget"`, Path: "/gadgets"},
	}, Default: "/products"})
	price := compile(t, Routes{Rules: []Rule{{Match: `event.data.price > 100`, Path: "/expensive"}}, Default: "/cheap"})
	has := compile(t, Routes{Rules: []Rule{{Match: `has(event.data.x)`, Path: "/x"}}, Default: "/no-x"})

	tests := []struct {
		name   string
		router *Router
		ev     Event
		want   string
	}{
		{"widget", docs, event(t, "{}", "application/json", map[string]string{"cloudevent.type": "widget"}), "/widgets"},
		{"gadget", docs, event(t, "{}", "application/json", map[string]string{"cloudevent.type": "gadget"}), "/gadgets"},
		{"other type: default", docs, event(t, "{}", "application/json", nil), "/products"},
		{"price above", price, event(t, `{"price": 150}`, "application/json", nil), "/expensive"},
		{"price fractional above", price, event(t, `{"price": 100.5}`, "application/json", nil), "/expensive"},
		{"price equal", price, event(t, `{"price": 100}`, "application/json", nil), "/cheap"},
		{"price missing: no match", price, event(t, `{}`, "application/json", nil), "/cheap"},
		{"price in a text event: no match", price, event(t, `{"price": 150}`, "text/plain", nil), "/cheap"},
		{"has x", has, event(t, `{"x": null}`, "application/json", nil), "/x"},
		{"has no x", has, event(t, `{"y": 1}`, "application/json", nil), "/no-x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := tt.router.Match(tt.ev)
			if got != tt.want {
				t.Errorf("Match = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRouterEventFields(t *testing.T) {
	r := request(`{"items":[{"sku":"a"},{"sku":"b"}],"n":3}`, "application/json", map[string]string{
		"cloudevent.subject": "orders/7", "cloudevent.source": "shop",
	})
	r.TraceParent = "00-abc-def-01"
	m, err := NewEnvelope(r)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := DecodeEvent(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, expr := range []string{
		`event.id == "id-1"`,
		`event.source == "shop"`,
		`event.type == "com.dapr.event.sent"`,
		`event.specversion == "1.0"`,
		`event.datacontenttype == "application/json"`,
		`event.topic == "orders" && event.pubsubname == "orders-ps"`,
		`event.subject.startsWith("orders/")`,
		`event.traceparent == "00-abc-def-01" && event.traceid == event.traceparent`,
		`timestamp(event.time) > timestamp("2024-01-01T00:00:00Z")`,
		`event.data.items.exists(i, i.sku == "b")`,
		`size(event.data.items) == 2`,
		`event.data.n == 3`,   // a JSON number is a double; CEL compares across numeric types
		`event.data.n == 3.0`, //
		`event.data.n in [1, 2, 3]`,
		`event.source.matches("^sh")`,
	} {
		router := compile(t, Routes{Rules: []Rule{{Match: expr, Path: "/yes"}}})
		if got, err := router.Match(ev); got != "/yes" {
			t.Errorf("%s: Match = %q, %v", expr, got, err)
		}
	}
}

func TestRouterExtensionsAndRaw(t *testing.T) {
	ext := event(t, `{"id":"1","myext":"blue","data":{"a":1}}`, ContentTypeCloudEvent, nil)
	router := compile(t, Routes{Rules: []Rule{
		{Match: `event.myext == "blue"`, Path: "/blue"},
	}, Default: "/other"})
	if got, err := router.Match(ext); got != "/blue" {
		t.Errorf("extension: Match = %q, %v", got, err)
	}

	m, err := NewEnvelope(request("raw", "text/plain", map[string]string{"rawPayload": "true"}))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := DecodeEvent(m)
	if err != nil {
		t.Fatal(err)
	}
	rawRouter := compile(t, Routes{Rules: []Rule{
		{Match: `event.datacontenttype == "application/octet-stream" && event.data_base64 == "cmF3"`, Path: "/raw"},
	}})
	if got, err := rawRouter.Match(raw); got != "/raw" {
		t.Errorf("raw: Match = %q, %v", got, err)
	}
}

func TestRouterOrderAndDefault(t *testing.T) {
	ev := event(t, `{"a":1,"b":2}`, "application/json", nil)
	tests := []struct {
		name   string
		routes Routes
		want   string
	}{
		{"first match wins", Routes{Rules: []Rule{
			{Match: `event.data.a == 1`, Path: "/first"},
			{Match: `event.data.b == 2`, Path: "/second"},
		}, Default: "/d"}, "/first"},
		{"later match", Routes{Rules: []Rule{
			{Match: `event.data.a == 2`, Path: "/first"},
			{Match: `event.data.b == 2`, Path: "/second"},
		}, Default: "/d"}, "/second"},
		{"default", Routes{Rules: []Rule{{Match: `false`, Path: "/never"}}, Default: "/d"}, "/d"},
		{"no rule matches, no default: drop", Routes{Rules: []Rule{{Match: `false`, Path: "/never"}}}, ""},
		{"only a default", Routes{Default: "/d"}, "/d"},
		{"empty match is a catch-all, as in Dapr", Routes{Rules: []Rule{
			{Match: `false`, Path: "/never"},
			{Match: "  ", Path: "/all"},
			{Match: `true`, Path: "/late"},
		}, Default: "/d"}, "/all"},
		{"nothing at all", Routes{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := compile(t, tt.routes).Match(ev)
			if err != nil || got != tt.want {
				t.Errorf("Match = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	var nilRouter *Router
	if got, err := nilRouter.Match(ev); got != "" || err != nil {
		t.Errorf("nil router: %q, %v", got, err)
	}
}

func TestRouterEvaluationErrorsDoNotMatch(t *testing.T) {
	ev := event(t, `{"name":"x","list":[1]}`, "application/json", nil)
	router := compile(t, Routes{Rules: []Rule{
		{Match: `event.data.missing > 1`, Path: "/missing"},       // no such key
		{Match: `event.data.name > 1`, Path: "/types"},            // string vs int
		{Match: `event.data.name`, Path: "/not-bool"},             // dyn, a string at run time
		{Match: `event.data.list[5] == 1`, Path: "/out-of-range"}, // index out of range
		{Match: `event.data.name == "x"`, Path: "/ok"},
	}, Default: "/d"})
	got, err := router.Match(ev)
	if got != "/ok" {
		t.Fatalf("Match = %q, want /ok", got)
	}
	var re *RuleError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want *RuleError", err)
	}
	for i, want := range []string{"no such key", "no such overload", "not a bool", "index"} {
		if !strings.Contains(err.Error(), fmt.Sprintf("routes.rules[%d]", i)) || !strings.Contains(err.Error(), want) {
			t.Errorf("err %q does not report rule %d (%s)", err, i, want)
		}
	}
	if strings.Contains(err.Error(), "routes.rules[4]") {
		t.Errorf("err %q reports the matching rule", err)
	}
}

func TestCompileRoutesRefuses(t *testing.T) {
	tests := []struct {
		name  string
		match string
		want  string
	}{
		{"syntax error", `event.type ==`, "Syntax error"},
		{"unbalanced", `(event.type == "a"`, "Syntax error"},
		{"string result", `event.type + "x"`, "must be a bool"},
		{"int result", `1 + 2`, "must be a bool"},
		{"string literal", `"true"`, "must be a bool"},
		{"undeclared variable", `foo == 1`, "undeclared reference"},
		{"unknown function", `frobnicate(event)`, "undeclared reference"},
		{"too long", `event.type == "` + strings.Repeat("a", maxRuleLen) + `"`, "longer than"},
		{"too deep", strings.Repeat("(", 200) + "true" + strings.Repeat(")", 200), "recursion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CompileRoutes(Routes{Rules: []Rule{{Match: `true`, Path: "/a"}, {Match: tt.match, Path: "/b"}}})
			if err == nil {
				t.Fatalf("CompileRoutes(%q) succeeded", tt.match)
			}
			if !strings.Contains(err.Error(), "routes.rules[1]") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name rule 1 and say %q", err, tt.want)
			}
		})
	}
}

func TestRouterCostLimit(t *testing.T) {
	items := make([]string, 200)
	for i := range items {
		items[i] = fmt.Sprint(i)
	}
	ev := event(t, `{"l":[`+strings.Join(items, ",")+`]}`, "application/json", nil)
	// 200³ iterations: far beyond MaxRuleCost.
	router := compile(t, Routes{Rules: []Rule{
		{Match: `event.data.l.all(a, event.data.l.all(b, event.data.l.all(c, a + b + c >= 0.0)))`, Path: "/spin"},
	}, Default: "/d"})
	start := time.Now()
	got, err := router.Match(ev)
	if got != "/d" || err == nil || !strings.Contains(err.Error(), "cost") {
		t.Errorf("Match = %q, %v; want the default and a cost error", got, err)
	}
	t.Logf("a rule over the cost limit stopped after %v", time.Since(start))

	// A modest rule over the same list is fine.
	ok := compile(t, Routes{Rules: []Rule{{Match: `event.data.l.exists(x, x == 199.0)`, Path: "/found"}}})
	if got, err := ok.Match(ev); got != "/found" {
		t.Errorf("Match = %q, %v", got, err)
	}
}

func TestRouterConcurrent(t *testing.T) {
	router := compile(t, Routes{Rules: []Rule{
		{Match: `int(event.data.n) % 2 == 0`, Path: "/even"},
	}, Default: "/odd"})
	events := make([]Event, 400)
	for n := range events {
		events[n] = event(t, fmt.Sprintf(`{"n":%d}`, n), "application/json", nil)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for n := i; n < len(events); n += 8 {
				want := "/odd"
				if n%2 == 0 {
					want = "/even"
				}
				if got, err := router.Match(events[n]); got != want {
					t.Errorf("n=%d: Match = %q, %v", n, got, err)
				}
			}
		})
	}
	wg.Wait()
}
