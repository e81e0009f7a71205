package pubsub

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/blockgate/blockgate/blocks"
	"github.com/blockgate/blockgate/tenants"
)

func TestCheckPublish(t *testing.T) {
	c := tenants.Component{Name: "pubsub", Type: "pubsub.jetstream", Metadata: []tenants.MetadataItem{
		{Name: "publishingScopes", Value: "app1=orders"},
	}}
	tests := []struct {
		app, topic string
		status     int // 0: allowed
	}{
		{"app1", "orders", 0},
		{"app1", "invoices", http.StatusForbidden},
		{"app2", "invoices", 0},
		{"app1", "", http.StatusNotFound},
	}
	for _, tc := range tests {
		err := CheckPublish(c, tc.app, tc.topic)
		got := 0
		if err != nil {
			got = blocks.As(err).HTTPStatus
		}
		if got != tc.status {
			t.Errorf("CheckPublish(%s, %q) = %v, want status %d", tc.app, tc.topic, err, tc.status)
		}
	}
}

func TestEnvelopeExtensions(t *testing.T) {
	m, err := NewEnvelope(PublishRequest{
		Tenant: "acme", AppID: "app1", Pubsub: "pubsub", Topic: "orders", Data: []byte(`{"a":1}`),
		ContentType: "application/json", Now: time.Unix(0, 0), NewID: func() string { return "id1" },
		Extensions: map[string]string{"tenantregion": "eu", "type": "not-this-way", "data": "nor-this"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		t.Fatal(err)
	}
	if ev["tenantregion"] != "eu" || ev["type"] != DefaultEventType || ev["data"].(map[string]any)["a"] != 1.0 {
		t.Fatalf("event = %v", ev)
	}
	// A passed-through CloudEvent keeps its own attributes only.
	m, err = NewEnvelope(PublishRequest{
		Tenant: "acme", Pubsub: "pubsub", Topic: "orders", Data: []byte(`{"id":"x","specversion":"1.0"}`),
		ContentType: ContentTypeCloudEvent, Extensions: map[string]string{"tenantregion": "eu"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ev = nil
	json.Unmarshal(m.Data, &ev)
	if _, ok := ev["tenantregion"]; ok {
		t.Fatalf("extensions applied to a passed-through CloudEvent: %v", ev)
	}
}

func TestTopicAllowed(t *testing.T) {
	c := tenants.Component{Name: "pubsub", Type: "pubsub.jetstream", Metadata: []tenants.MetadataItem{
		{Name: "allowedTopics", Value: "orders,invoices,audit"},
		{Name: "publishingScopes", Value: "app1=orders;app3="},
		{Name: "subscriptionScopes", Value: "app2=orders,invoices"},
	}}
	tests := []struct {
		name             string
		app, topic       string
		publishing       bool
		open, listedOnly bool // the answer without and with listedOnly
	}{
		{name: "listed publisher, its topic", app: "app1", topic: "orders", publishing: true, open: true, listedOnly: true},
		{name: "listed publisher, other topic", app: "app1", topic: "invoices", publishing: true},
		{name: "listed with no topics", app: "app3", topic: "orders", publishing: true},
		{name: "unlisted publisher", app: "app2", topic: "invoices", publishing: true, open: true},
		{name: "unlisted publisher, topic outside allowedTopics", app: "app2", topic: "other", publishing: true},
		{name: "listed subscriber", app: "app2", topic: "invoices", open: true, listedOnly: true},
		{name: "unlisted subscriber", app: "app1", topic: "audit", open: true},
		{name: "unlisted subscriber, topic outside allowedTopics", app: "app1", topic: "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, listedOnly := range []bool{false, true} {
				want := tt.open
				if listedOnly {
					want = tt.listedOnly
				}
				got, err := TopicAllowed(c, tt.app, tt.topic, tt.publishing, listedOnly)
				if err != nil || got != want {
					t.Errorf("TopicAllowed(listedOnly=%v) = %v, %v; want %v", listedOnly, got, err, want)
				}
				// The publish path applies the same rules.
				if !listedOnly && tt.publishing && (CheckPublish(c, tt.app, tt.topic) == nil) != want {
					t.Errorf("CheckPublish disagrees with TopicAllowed")
				}
			}
		})
	}
	bad := tenants.Component{Name: "pubsub", Metadata: []tenants.MetadataItem{{Name: "publishingScopes", Value: "app1"}}}
	if _, err := TopicAllowed(bad, "app1", "orders", true, false); err == nil {
		t.Error("malformed publishingScopes accepted")
	}
}
