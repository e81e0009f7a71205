package state_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/blockgate/blockgate/blocks"
	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/blocks/state"
	"github.com/blockgate/blockgate/blocks/state/statemem"
	"github.com/blockgate/blockgate/tenants"
)

// registry serves a fixed set of components to every tenant.
type registry map[string]tenants.Component

func (r registry) Component(_ context.Context, t tenants.ID, name string) (tenants.Component, bool, error) {
	c, ok := r[name]
	c.Tenant = t
	return c, ok, nil
}

func (r registry) HasKind(_ context.Context, _ tenants.ID, kind string) (bool, error) {
	for _, c := range r {
		if c.Kind() == kind {
			return true, nil
		}
	}
	return false, nil
}

var (
	app1 = tenants.Principal{Tenant: "acme", AppID: "app1"}

	outboxMeta = []tenants.MetadataItem{
		{Name: "outboxPublishPubsub", Value: "pubsub"},
		{Name: "outboxPublishTopic", Value: "orders"},
	}
	pubsubComponent = tenants.Component{Name: "pubsub", Type: "pubsub.jetstream", Version: "v1", Revision: 1}
)

// outboxService returns a service over an "outbox" store (with the outbox
// on), a "plain" store (without) and the pub/sub component ps, each state
// store an in-memory store of its own.
func outboxService(t *testing.T, ps tenants.Component) (*state.Service, map[string]*statemem.Store) {
	t.Helper()
	reg := registry{
		"outbox": {Name: "outbox", Type: "state.in-memory", Version: "v1", Revision: 1, Metadata: outboxMeta},
		"plain":  {Name: "plain", Type: "state.in-memory", Version: "v1", Revision: 1},
	}
	if ps.Name != "" {
		reg[ps.Name] = ps
	}
	stores := map[string]*statemem.Store{"outbox": statemem.New(), "plain": statemem.New()}
	svc := state.NewService(reg, map[string]state.Opener{
		"state.in-memory": func(c tenants.Component) (state.Store, error) { return stores[c.Name], nil },
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return svc, stores
}

func upsert(key, value string, md ...string) state.TxOperation {
	op := state.TxOperation{Operation: "upsert", Item: state.SetItem{Key: key, Value: []byte(value)}}
	if len(md) > 0 {
		op.Item.Metadata = map[string]string{}
		for i := 0; i+1 < len(md); i += 2 {
			op.Item.Metadata[md[i]] = md[i+1]
		}
	}
	return op
}

// event decodes a published message's CloudEvent.
func event(t *testing.T, m pubsub.Message) map[string]any {
	t.Helper()
	if m.ContentType != pubsub.ContentTypeCloudEvent {
		t.Fatalf("message content type %q, want a CloudEvent", m.ContentType)
	}
	var ev map[string]any
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		t.Fatalf("the message is not a CloudEvent: %v: %s", err, m.Data)
	}
	return ev
}

func TestOutboxPublishesUpserts(t *testing.T) {
	svc, stores := outboxService(t, pubsubComponent)
	ctx := t.Context()
	if err := svc.Save(ctx, app1, "outbox", []state.SetItem{{Key: "old", Value: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if got := stores["outbox"].Outbox(); len(got) != 0 {
		t.Fatalf("a plain save published %d messages; only transactions publish", len(got))
	}
	err := svc.Transact(ctx, app1, "outbox", []state.TxOperation{
		upsert("order1", `{"qty":3}`),
		{Operation: "delete", Item: state.SetItem{Key: "old"}},
		upsert("order2", "plain text", "contentType", "text/plain"),
		upsert("order3", "\xff\x00", "ttlInSeconds", "60"),
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs := stores["outbox"].Outbox()
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want one per upsert (deletes are not published)", len(msgs))
	}
	tests := []struct {
		ct   string
		data string // the data member as JSON
	}{
		{"application/json", `{"qty":3}`},
		{"text/plain", `"plain text"`},
		{"text/plain", `null`}, // not UTF-8: carried as data_base64
	}
	for i, m := range msgs {
		ev := event(t, m)
		if m.Tenant != "acme" || m.Pubsub != "pubsub" || m.Topic != "orders" || m.ID != ev["id"] ||
			!strings.HasPrefix(m.ID, "outbox-") || !m.Expires.IsZero() {
			t.Fatalf("message %d: %+v", i, m)
		}
		if ev["source"] != "app1" || ev["type"] != pubsub.DefaultEventType || ev["specversion"] != "1.0" ||
			ev["topic"] != "orders" || ev["pubsubname"] != "pubsub" || ev["datacontenttype"] != tests[i].ct {
			t.Fatalf("event %d: %v", i, ev)
		}
		data, _ := json.Marshal(ev["data"])
		if string(data) != tests[i].data {
			t.Fatalf("event %d data = %s, want %s", i, data, tests[i].data)
		}
		if _, ok := ev["expiration"]; ok {
			t.Fatalf("event %d: the state's ttlInSeconds became an event expiration: %v", i, ev)
		}
	}
	if ev := event(t, msgs[2]); ev["data_base64"] != "/wA=" {
		t.Fatalf("binary value: %v", ev)
	}
}

func TestOutboxProjection(t *testing.T) {
	svc, stores := outboxService(t, pubsubComponent)
	ctx := t.Context()
	err := svc.Transact(ctx, app1, "outbox", []state.TxOperation{
		upsert("order1", `{"id":1,"secret":"s","items":[1,2,3]}`),
		upsert("order1", `{"id":1}`, "outbox.projection", "true", "outbox.cloudevent.type", "OrderCreated"),
		upsert("order1", `{"ignored":true}`, "outbox.projection", "TRUE"), // the first projection wins
		upsert("order2", "2"),
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := svc.Get(ctx, app1, "outbox", "order1", state.Options{})
	if err != nil || string(got.Value) != `{"id":1,"secret":"s","items":[1,2,3]}` {
		t.Fatalf("the state = %s, %v; the projection must not be saved", got.Value, err)
	}
	msgs := stores["outbox"].Outbox()
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2 (projections are not messages of their own)", len(msgs))
	}
	ev := event(t, msgs[0])
	data, _ := json.Marshal(ev["data"])
	if string(data) != `{"id":1}` || ev["type"] != "OrderCreated" {
		t.Fatalf("projected event = %v", ev)
	}
	if ev := event(t, msgs[1]); ev["data"] != 2.0 {
		t.Fatalf("unprojected event = %v", ev)
	}

	// A projection needs an upsert of its key in the same transaction.
	err = svc.Transact(ctx, app1, "outbox", []state.TxOperation{
		upsert("order9", "x", "outbox.projection", "true"),
		{Operation: "delete", Item: state.SetItem{Key: "order9"}},
	})
	if be := blocks.As(err); be.HTTPStatus != http.StatusBadRequest || !strings.Contains(be.Message, "order9") {
		t.Fatalf("unmatched projection: %v", err)
	}
	if got := stores["outbox"].Outbox(); len(got) != 2 {
		t.Fatalf("the refused transaction added messages: %d", len(got))
	}
}

func TestOutboxCloudEventMetadata(t *testing.T) {
	svc, stores := outboxService(t, pubsubComponent)
	err := svc.Transact(t.Context(), app1, "outbox", []state.TxOperation{
		upsert("k", `{"a":1}`,
			"cloudevent.id", "ignored-for-the-outbox-form",
			"outbox.cloudevent.id", "business-id-1",
			"outbox.cloudevent.source", "CustomersApp",
			"cloudevent.subject", "123",
			"outbox.cloudevent.my-custom-ce-field", "abc",
			"outbox.cloudevent.topic", "not-overridable",
			"outbox.cloudevent.datacontenttype", "application/vnd.acme+json",
			"cloudevent.traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
			"partitionKey", "customer-7"),
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs := stores["outbox"].Outbox()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	ev := event(t, m)
	want := map[string]any{
		"id": "business-id-1", "source": "CustomersApp", "subject": "123", "my-custom-ce-field": "abc",
		"topic": "orders", "datacontenttype": "application/vnd.acme+json",
		"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	}
	for k, v := range want {
		if ev[k] != v {
			t.Errorf("%s = %v, want %v", k, ev[k], v)
		}
	}
	if m.ID != "business-id-1" || m.PartitionKey != "customer-7" {
		t.Fatalf("message id %q, partition key %q", m.ID, m.PartitionKey)
	}
}

func TestOutboxOffPublishesNothing(t *testing.T) {
	svc, stores := outboxService(t, pubsubComponent)
	ctx := t.Context()
	err := svc.Transact(ctx, app1, "plain", []state.TxOperation{
		upsert("k", "v"),
		upsert("k", "projected", "outbox.projection", "true"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := stores["plain"].Outbox(); len(got) != 0 {
		t.Fatalf("a store without the outbox queued %d messages", len(got))
	}
	// As in daprd, outbox.projection means nothing without the outbox: the
	// operation is an ordinary upsert.
	if got, _ := svc.Get(ctx, app1, "plain", "k", state.Options{}); string(got.Value) != "projected" {
		t.Fatalf("k = %q", got.Value)
	}
}

func TestOutboxRollback(t *testing.T) {
	svc, stores := outboxService(t, pubsubComponent)
	ctx := t.Context()
	if err := svc.Save(ctx, app1, "outbox", []state.SetItem{{Key: "k", Value: []byte("v1")}}); err != nil {
		t.Fatal(err)
	}
	stale := "stale"
	op := upsert("k", "v2")
	op.Item.ETag = &stale
	err := svc.Transact(ctx, app1, "outbox", []state.TxOperation{upsert("other", "x"), op})
	if be := blocks.As(err); be.HTTPStatus != http.StatusConflict || be.Code != "ERR_STATE_TRANSACTION" {
		t.Fatalf("stale ETag: %v", err)
	}
	if got := stores["outbox"].Outbox(); len(got) != 0 {
		t.Fatalf("a rolled-back transaction queued %d messages", len(got))
	}
}

func TestOutboxPubsubChecks(t *testing.T) {
	scoped := pubsubComponent
	scoped.Metadata = []tenants.MetadataItem{{Name: "publishingScopes", Value: "app1=invoices"}}
	otherApp := pubsubComponent
	otherApp.Scopes = []string{"app2"}
	tests := []struct {
		name   string
		ps     tenants.Component
		status int
		code   string
	}{
		{"no such pubsub", tenants.Component{}, http.StatusInternalServerError, "ERR_PUBLISH_OUTBOX"},
		{"pubsub out of the app's scope", otherApp, http.StatusInternalServerError, "ERR_PUBLISH_OUTBOX"},
		{"topic not in the app's publishing scopes", scoped, http.StatusForbidden, "ERR_PUBSUB_FORBIDDEN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc, stores := outboxService(t, tc.ps)
			err := svc.Transact(t.Context(), app1, "outbox", []state.TxOperation{upsert("k", "v")})
			if be := blocks.As(err); be.HTTPStatus != tc.status || be.Code != tc.code {
				t.Fatalf("err = %v (%d %s), want %d %s", err, be.HTTPStatus, be.Code, tc.status, tc.code)
			}
			if _, ok, _ := stores["outbox"].Get(t.Context(), "app1||k"); ok {
				t.Fatal("the state was written although its message cannot be")
			}
			// Deletes publish nothing, so they need no pub/sub.
			if err := svc.Transact(t.Context(), app1, "outbox", []state.TxOperation{{Operation: "delete", Item: state.SetItem{Key: "k"}}}); err != nil {
				t.Fatalf("a transaction of deletes: %v", err)
			}
		})
	}
}

func TestOutboxTooLarge(t *testing.T) {
	svc, stores := outboxService(t, pubsubComponent)
	big := strings.Repeat("x", state.MaxOutboxMessageBytes)
	err := svc.Transact(t.Context(), app1, "outbox", []state.TxOperation{upsert("k", big)})
	if be := blocks.As(err); be.HTTPStatus != http.StatusBadRequest || be.Code != "ERR_PUBLISH_OUTBOX" {
		t.Fatalf("err = %v", err)
	}
	if len(stores["outbox"].Outbox()) != 0 {
		t.Fatal("queued a message that does not fit the broker")
	}
}

func TestOutboxNeedsOutboxTransactor(t *testing.T) {
	reg := registry{
		"outbox": {Name: "outbox", Type: "state.x", Version: "v1", Revision: 1, Metadata: outboxMeta},
		"pubsub": pubsubComponent,
	}
	svc := state.NewService(reg, map[string]state.Opener{
		"state.x": func(tenants.Component) (state.Store, error) {
			// Transactions, but no outbox.
			mem := statemem.New()
			return struct {
				state.Store
				state.Transactor
			}{mem, mem}, nil
		},
	}, slog.New(slog.DiscardHandler))
	err := svc.Transact(t.Context(), app1, "outbox", []state.TxOperation{upsert("k", "v")})
	if be := blocks.As(err); be.Code != "ERR_STATE_STORE_NOT_SUPPORTED" || !strings.Contains(be.Message, "outbox") {
		t.Fatalf("err = %v", err)
	}
}

func TestValidateOutboxComponent(t *testing.T) {
	svc, _ := outboxService(t, pubsubComponent)
	md := func(kv ...string) []tenants.MetadataItem {
		var out []tenants.MetadataItem
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, tenants.MetadataItem{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	tests := []struct {
		name    string
		md      []tenants.MetadataItem
		wantErr string
	}{
		{"off", nil, ""},
		{"on", md("outboxPublishPubsub", "pubsub", "outboxPublishTopic", "orders"), ""},
		{"with the optional fields", md("outboxPublishPubsub", "pubsub", "outboxPublishTopic", "orders",
			"outboxPubsub", "internal", "outboxDiscardWhenMissingState", "true"), ""},
		{"pubsub without topic", md("outboxPublishPubsub", "pubsub"), "outboxPublishTopic"},
		{"topic without pubsub", md("outboxPublishTopic", "orders"), "outboxPublishPubsub"},
		{"bad pubsub name", md("outboxPublishPubsub", "Pub Sub", "outboxPublishTopic", "orders"), "invalid component name"},
		{"bad topic", md("outboxPublishPubsub", "pubsub", "outboxPublishTopic", "a\x00b"), "NUL"},
		{"bad discard flag", md("outboxPublishPubsub", "pubsub", "outboxPublishTopic", "orders",
			"outboxDiscardWhenMissingState", "maybe"), "true or false"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := svc.ValidateComponent(tenants.Component{Name: "s", Type: "state.in-memory", Version: "v1", Metadata: tc.md})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want one about %q", err, tc.wantErr)
			}
		})
	}
}
