package pubsub

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/blockgate/blockgate/blocks"
)

var testNow = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)

// request is a publish request with a fixed clock and id, so that
// envelopes are byte-for-byte predictable.
func request(data, contentType string, md map[string]string) PublishRequest {
	return PublishRequest{
		Tenant: "acme", AppID: "checkout", Pubsub: "orders-ps", Topic: "orders",
		Data: []byte(data), ContentType: contentType, Metadata: md,
		Now: testNow, NewID: func() string { return "id-1" },
	}
}

// golden builds the expected envelope from the default attributes with
// some members replaced (a "" value removes the member).
func golden(t *testing.T, set map[string]string) string {
	t.Helper()
	obj := object{
		"datacontenttype": json.RawMessage(`"text/plain"`),
		"id":              json.RawMessage(`"id-1"`),
		"pubsubname":      json.RawMessage(`"orders-ps"`),
		"source":          json.RawMessage(`"checkout"`),
		"specversion":     json.RawMessage(`"1.0"`),
		"time":            json.RawMessage(`"2024-05-06T07:08:09Z"`),
		"topic":           json.RawMessage(`"orders"`),
		"traceid":         json.RawMessage(`""`),
		"traceparent":     json.RawMessage(`""`),
		"tracestate":      json.RawMessage(`""`),
		"type":            json.RawMessage(`"com.dapr.event.sent"`),
	}
	for k, v := range set {
		if v == "" {
			delete(obj, k)
			continue
		}
		if !json.Valid([]byte(v)) {
			t.Fatalf("golden %s: invalid JSON %s", k, v)
		}
		obj[k] = json.RawMessage(v)
	}
	return string(obj.encode())
}

func TestNewEnvelope(t *testing.T) {
	tests := []struct {
		name string
		req  PublishRequest
		want map[string]string // members that differ from the defaults
	}{
		{
			name: "text default content type",
			req:  request("hello", "", nil),
			want: map[string]string{"data": `"hello"`},
		},
		{
			name: "text/plain with charset",
			req:  request("héllo\n", "text/plain; charset=utf-8", nil),
			want: map[string]string{"data": `"héllo\n"`, "datacontenttype": `"text/plain; charset=utf-8"`},
		},
		{
			name: "json object embedded as is",
			req:  request(" \n{\"b\": 1, \"a\": [1, 2.50, 12345678901234567890123]}\n", "application/json", nil),
			want: map[string]string{"data": `{"b": 1, "a": [1, 2.50, 12345678901234567890123]}`, "datacontenttype": `"application/json"`},
		},
		{
			name: "json string value",
			req:  request(`"just a string"`, "application/json", nil),
			want: map[string]string{"data": `"just a string"`, "datacontenttype": `"application/json"`},
		},
		{
			name: "json with parameters and upper case",
			req:  request(`[1,true,null]`, "Application/JSON; charset=utf-8", nil),
			want: map[string]string{"data": `[1,true,null]`, "datacontenttype": `"Application/JSON; charset=utf-8"`},
		},
		{
			name: "+json suffix",
			req:  request(`{"k":"<v>"}`, "application/vnd.api+json", nil),
			want: map[string]string{"data": `{"k":"<v>"}`, "datacontenttype": `"application/vnd.api+json"`},
		},
		{
			name: "json content type, body not json: a string as daprd",
			req:  request(`{not json`, "application/json", nil),
			want: map[string]string{"data": `"{not json"`, "datacontenttype": `"application/json"`},
		},
		{
			name: "json content type, empty body",
			req:  request(``, "application/json", nil),
			want: map[string]string{"data": `""`, "datacontenttype": `"application/json"`},
		},
		{
			name: "octet-stream is base64",
			req:  request("hello", "application/octet-stream", nil),
			want: map[string]string{"data_base64": `"aGVsbG8="`, "datacontenttype": `"application/octet-stream"`},
		},
		{
			name: "binary image is base64",
			req:  request("\x89PNG\r\n\x1a\n\x00", "image/png", nil),
			want: map[string]string{"data_base64": `"iVBORw0KGgoA"`, "datacontenttype": `"image/png"`},
		},
		{
			name: "text that is not UTF-8 is base64",
			req:  request("caf\xe9", "text/plain", nil),
			want: map[string]string{"data_base64": `"Y2Fm6Q=="`},
		},
		{
			name: "xml is a string",
			req:  request(`<a href="x">&amp;</a>`, "application/xml", nil),
			want: map[string]string{"data": `"\u003ca href=\"x\"\u003e\u0026amp;\u003c/a\u003e"`, "datacontenttype": `"application/xml"`},
		},
		{
			name: "other UTF-8 content is a string",
			req:  request("a: 1\n", "application/yaml", nil),
			want: map[string]string{"data": `"a: 1\n"`, "datacontenttype": `"application/yaml"`},
		},
		{
			name: "overrides",
			req: request("hi", "", map[string]string{
				"cloudevent.id": "my-id", "cloudevent.source": "my-source", "cloudevent.type": "my.type",
				"cloudevent.subject": "my-subject", "cloudevent.traceid": "tid", "cloudevent.tracestate": "k=v",
			}),
			want: map[string]string{"data": `"hi"`, "id": `"my-id"`, "source": `"my-source"`, "type": `"my.type"`,
				"subject": `"my-subject"`, "traceid": `"tid"`, "traceparent": `"tid"`, "tracestate": `"k=v"`},
		},
		{
			name: "override keys ignore case",
			req:  request("hi", "", map[string]string{"CloudEvent.Type": "upper.type", "CLOUDEVENT.ID": "upper-id"}),
			want: map[string]string{"data": `"hi"`, "id": `"upper-id"`, "type": `"upper.type"`},
		},
		{
			name: "traceparent override wins over traceid",
			req: request("hi", "", map[string]string{
				"cloudevent.traceid":     "00-aaaa-bbbb-01",
				"cloudevent.traceparent": "00-cccc-dddd-01",
			}),
			want: map[string]string{"data": `"hi"`, "traceid": `"00-cccc-dddd-01"`, "traceparent": `"00-cccc-dddd-01"`},
		},
		{
			name: "empty overrides fall back to daprd's defaults",
			req: request("hi", "", map[string]string{
				"cloudevent.id": "", "cloudevent.source": "", "cloudevent.type": "", "cloudevent.subject": "",
			}),
			want: map[string]string{"data": `"hi"`, "source": `"Dapr"`},
		},
		{
			name: "trace context from the transport",
			req: func() PublishRequest {
				r := request("hi", "", nil)
				r.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
				r.TraceState = "congo=t61rcWkgMzE"
				return r
			}(),
			want: map[string]string{"data": `"hi"`,
				"traceid":     `"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"`,
				"traceparent": `"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"`,
				"tracestate":  `"congo=t61rcWkgMzE"`},
		},
		{
			name: "ttl adds expiration",
			req:  request("hi", "", map[string]string{"ttlInSeconds": "60"}),
			want: map[string]string{"data": `"hi"`, "expiration": `"2024-05-06T07:09:09Z"`},
		},
		{
			name: "rawPayload=false is an envelope",
			req:  request("hi", "", map[string]string{"rawPayload": "false"}),
			want: map[string]string{"data": `"hi"`},
		},
		{
			name: "no app id: source Dapr",
			req:  func() PublishRequest { r := request("hi", "", nil); r.AppID = ""; return r }(),
			want: map[string]string{"data": `"hi"`, "source": `"Dapr"`},
		},
		{
			name: "cloudevent passthrough, minimal",
			req:  request(`{"specversion":"1.0","id":"ce-1","source":"src","type":"t.x","data":{"x": 1},"myext":"v"}`, "application/cloudevents+json", nil),
			want: map[string]string{"id": `"ce-1"`, "source": `"src"`, "type": `"t.x"`, "data": `{"x": 1}`,
				"myext": `"v"`, "datacontenttype": `"application/json"`},
		},
		{
			name: "cloudevent passthrough keeps every field, overwrites topic and pubsubname",
			req: request(`{"specversion":"1.0","id":"ce-2","source":"src","type":"t","datacontenttype":"text/plain",
				"data":"plain","time":"2020-01-01T00:00:00Z","subject":"sub","topic":"elsewhere","pubsubname":"other",
				"traceparent":"00-own-01","traceid":"00-own-01","tracestate":"own=1","num":12345678901234567890123,
				"nested":{"z":1,"a":[null]}}`, "application/cloudevents+json; charset=utf-8", nil),
			want: map[string]string{"id": `"ce-2"`, "source": `"src"`, "type": `"t"`, "data": `"plain"`,
				"time": `"2020-01-01T00:00:00Z"`, "subject": `"sub"`, "traceparent": `"00-own-01"`, "traceid": `"00-own-01"`,
				"tracestate": `"own=1"`, "num": `12345678901234567890123`, "nested": `{"z":1,"a":[null]}`},
		},
		{
			name: "cloudevent passthrough fills missing attributes",
			req:  request(`{"data_base64":"AAE="}`, "application/cloudevents+json", nil),
			want: map[string]string{"source": `"Dapr"`, "data_base64": `"AAE="`, "datacontenttype": `"application/octet-stream"`},
		},
		{
			name: "cloudevent passthrough: empty id replaced, null attributes defaulted",
			req:  request(`{"id":"","type":null,"data":null}`, "application/cloudevents+json", nil),
			want: map[string]string{"source": `"Dapr"`, "data": `null`, "datacontenttype": `"application/json"`},
		},
		{
			name: "cloudevent passthrough: transport trace replaces the event's",
			req: func() PublishRequest {
				r := request(`{"id":"x","traceparent":"00-old-01"}`, "application/cloudevents+json", nil)
				r.TraceParent, r.TraceState = "00-new-01", ""
				return r
			}(),
			want: map[string]string{"id": `"x"`, "source": `"Dapr"`, "datacontenttype": `"application/json"`,
				"traceid": `"00-new-01"`, "traceparent": `"00-new-01"`},
		},
		{
			name: "cloudevent passthrough ignores cloudevent.* overrides, as daprd",
			req:  request(`{"id":"keep"}`, "application/cloudevents+json", map[string]string{"cloudevent.id": "other", "cloudevent.type": "other"}),
			want: map[string]string{"id": `"keep"`, "source": `"Dapr"`, "datacontenttype": `"application/json"`},
		},
		{
			name: "cloudevent passthrough with ttl",
			req:  request(`{"id":"x","source":"s"}`, "application/cloudevents+json", map[string]string{"ttlInSeconds": "3600"}),
			want: map[string]string{"id": `"x"`, "source": `"s"`, "datacontenttype": `"application/json"`, "expiration": `"2024-05-06T08:08:09Z"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewEnvelope(tt.req)
			if err != nil {
				t.Fatalf("NewEnvelope: %v", err)
			}
			if want := golden(t, tt.want); string(m.Data) != want {
				t.Errorf("envelope\n got %s\nwant %s", m.Data, want)
			}
			if m.ContentType != ContentTypeCloudEvent {
				t.Errorf("ContentType = %q", m.ContentType)
			}
			id, _ := object(mustDecode(t, m.Data)).string("id")
			if m.ID != id || m.ID == "" {
				t.Errorf("Message.ID = %q, event id %q", m.ID, id)
			}
			if m.Tenant != "acme" || m.Pubsub != "orders-ps" || m.Topic != "orders" {
				t.Errorf("Message names = %q %q %q", m.Tenant, m.Pubsub, m.Topic)
			}
		})
	}
}

func mustDecode(t *testing.T, b []byte) object {
	t.Helper()
	obj, err := decodeObject(b)
	if err != nil {
		t.Fatalf("envelope is not a JSON object: %v\n%s", err, b)
	}
	return obj
}

func TestNewEnvelopeMessageFields(t *testing.T) {
	m, err := NewEnvelope(request("hi", "", map[string]string{"ttlInSeconds": "90", "partitionKey": "customer-7"}))
	if err != nil {
		t.Fatal(err)
	}
	if m.PartitionKey != "customer-7" {
		t.Errorf("PartitionKey = %q", m.PartitionKey)
	}
	if want := testNow.Add(90 * time.Second); !m.Expires.Equal(want) {
		t.Errorf("Expires = %v, want %v", m.Expires, want)
	}

	m, err = NewEnvelope(request("hi", "", nil))
	if err != nil {
		t.Fatal(err)
	}
	if !m.Expires.IsZero() || m.PartitionKey != "" || m.Metadata != nil {
		t.Errorf("unexpected Expires %v, PartitionKey %q, Metadata %v", m.Expires, m.PartitionKey, m.Metadata)
	}

	// A huge TTL is clamped, not overflowed.
	m, err = NewEnvelope(request("hi", "", map[string]string{"ttlInSeconds": "9223372036854775807"}))
	if err != nil {
		t.Fatal(err)
	}
	if !m.Expires.After(testNow.AddDate(200, 0, 0)) {
		t.Errorf("Expires = %v for a huge ttl", m.Expires)
	}
}

func TestNewEnvelopeDefaults(t *testing.T) {
	r := request("hi", "", nil)
	r.Now, r.NewID = time.Time{}, nil
	before := time.Now().Add(-time.Second)
	m, err := NewEnvelope(r)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := DecodeEvent(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.ID) != 36 || ev.ID[14] != '4' {
		t.Errorf("id %q is not a UUID v4", ev.ID)
	}
	at, err := time.Parse(time.RFC3339, ev.Time)
	if err != nil || at.Before(before.Truncate(time.Second)) || at.After(time.Now()) {
		t.Errorf("time = %q (%v)", ev.Time, err)
	}
	m2, _ := NewEnvelope(r)
	if m2.ID == m.ID {
		t.Error("two publishes got the same id")
	}
}

func TestNewEnvelopeRawPayload(t *testing.T) {
	payloads := []string{"", "hello", "{\"a\":1}", "\x00\xff\xfe binary \x89PNG", "caf\xe9"}
	for _, p := range payloads {
		r := request(p, "application/x-custom", map[string]string{
			"rawPayload": "true", "partitionKey": "k", "ttlInSeconds": "5", "cloudevent.id": "ignored",
		})
		r.TraceParent, r.TraceState = "00-t-01", "s=1"
		m, err := NewEnvelope(r)
		if err != nil {
			t.Fatalf("%q: %v", p, err)
		}
		if !bytes.Equal(m.Data, []byte(p)) {
			t.Errorf("raw data = %q, want %q", m.Data, p)
		}
		if m.ContentType != "application/x-custom" || m.ID != "id-1" || m.PartitionKey != "k" ||
			!m.Expires.Equal(testNow.Add(5*time.Second)) {
			t.Errorf("raw message = %+v", m)
		}
		want := map[string]string{"traceid": "00-t-01", "traceparent": "00-t-01", "tracestate": "s=1"}
		if !maps.Equal(m.Metadata, want) {
			t.Errorf("raw metadata = %v, want %v", m.Metadata, want)
		}
	}
	// rawPayload parses like strconv.ParseBool, as daprd.
	for _, v := range []string{"1", "t", "TRUE", "True"} {
		m, err := NewEnvelope(request("x", "", map[string]string{"rawPayload": v}))
		if err != nil || string(m.Data) != "x" {
			t.Errorf("rawPayload=%s: %q, %v", v, m.Data, err)
		}
	}
}

func TestNewEnvelopeErrors(t *testing.T) {
	tests := []struct {
		name string
		req  PublishRequest
		code string
	}{
		{"rawPayload not a bool", request("x", "", map[string]string{"rawPayload": "maybe"}), "ERR_PUBSUB_REQUEST_METADATA"},
		{"ttl not a number", request("x", "", map[string]string{"ttlInSeconds": "ten"}), "ERR_PUBSUB_REQUEST_METADATA"},
		{"ttl zero", request("x", "", map[string]string{"ttlInSeconds": "0"}), "ERR_PUBSUB_REQUEST_METADATA"},
		{"ttl negative", request("x", "", map[string]string{"ttlInSeconds": "-5"}), "ERR_PUBSUB_REQUEST_METADATA"},
		{"ttl on a raw payload too", request("x", "", map[string]string{"rawPayload": "true", "ttlInSeconds": "1.5"}), "ERR_PUBSUB_REQUEST_METADATA"},
		{"cloudevent not JSON", request(`{"id":`, ContentTypeCloudEvent, nil), "ERR_PUBSUB_CLOUD_EVENTS_SER"},
		{"cloudevent with trailing data", request(`{"id":"x"} {}`, ContentTypeCloudEvent, nil), "ERR_PUBSUB_CLOUD_EVENTS_SER"},
		{"cloudevent an array", request(`[{"id":"x"}]`, ContentTypeCloudEvent, nil), "ERR_PUBSUB_CLOUD_EVENTS_SER"},
		{"cloudevent null", request(`null`, ContentTypeCloudEvent, nil), "ERR_PUBSUB_CLOUD_EVENTS_SER"},
		{"cloudevent empty", request(``, ContentTypeCloudEvent, nil), "ERR_PUBSUB_CLOUD_EVENTS_SER"},
		{"cloudevent id not a string", request(`{"id":5}`, ContentTypeCloudEvent, nil), "ERR_PUBSUB_CLOUD_EVENTS_SER"},
		{"cloudevent type not a string", request(`{"type":{"a":1}}`, ContentTypeCloudEvent, nil), "ERR_PUBSUB_CLOUD_EVENTS_SER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewEnvelope(tt.req)
			var be *blocks.Error
			if !errors.As(err, &be) {
				t.Fatalf("error %v is not a *blocks.Error", err)
			}
			if be.Code != tt.code || be.HTTPStatus != http.StatusBadRequest || be.Kind != blocks.InvalidArgument {
				t.Errorf("error = %s %d %s, want %s 400 InvalidArgument", be.Code, be.HTTPStatus, be.Kind, tt.code)
			}
		})
	}
}

func TestDecodeEvent(t *testing.T) {
	tests := []struct {
		name     string
		req      PublishRequest
		wantData string
		wantCT   string
	}{
		{"text", request("hello", "", nil), "hello", "text/plain"},
		{"json", request(` {"a":[1,2]} `, "application/json", nil), `{"a":[1,2]}`, "application/json"},
		{"json string", request(`"s"`, "application/json", nil), `"s"`, "application/json"},
		{"json fallback string keeps quotes, as daprd", request(`oops`, "application/json", nil), `"oops"`, "application/json"},
		{"octet-stream", request("\x00\x01\x02", "application/octet-stream", nil), "\x00\x01\x02", "application/octet-stream"},
		{"binary", request("\xff\xfe", "image/png", nil), "\xff\xfe", "image/png"},
		{"xml", request("<a/>", "application/xml", nil), "<a/>", "application/xml"},
		{"passthrough json data", request(`{"id":"x","data":{"k":"v"}}`, ContentTypeCloudEvent, nil), `{"k":"v"}`, "application/json"},
		{"passthrough text data", request(`{"id":"x","datacontenttype":"text/plain","data":"t"}`, ContentTypeCloudEvent, nil), "t", "text/plain"},
		{"passthrough no data", request(`{"id":"x"}`, ContentTypeCloudEvent, nil), "", "application/json"},
		{"passthrough number data of another type stays JSON", request(`{"id":"x","datacontenttype":"x/y","data":42}`, ContentTypeCloudEvent, nil), "42", "x/y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewEnvelope(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := DecodeEvent(m)
			if err != nil {
				t.Fatalf("DecodeEvent: %v", err)
			}
			if string(ev.Data) != tt.wantData {
				t.Errorf("Data = %q, want %q", ev.Data, tt.wantData)
			}
			if ev.DataContentType != tt.wantCT {
				t.Errorf("DataContentType = %q, want %q", ev.DataContentType, tt.wantCT)
			}
			if ev.Raw || ev.ID != m.ID || ev.Topic != "orders" || ev.Pubsub != "orders-ps" || ev.SpecVersion != "1.0" {
				t.Errorf("event = %+v", ev)
			}
			if !bytes.Equal(ev.JSON, m.Data) {
				t.Error("JSON is not the envelope")
			}
		})
	}
}

func TestDecodeEventAttributes(t *testing.T) {
	r := request(`{"n":1}`, "application/json", map[string]string{
		"cloudevent.subject": "sub", "cloudevent.type": "order.created", "ttlInSeconds": "10",
	})
	r.TraceParent, r.TraceState = "00-abc-def-01", "a=b"
	m, err := NewEnvelope(r)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := DecodeEvent(m)
	if err != nil {
		t.Fatal(err)
	}
	want := Event{
		ID: "id-1", Source: "checkout", Type: "order.created", SpecVersion: "1.0",
		DataContentType: "application/json", Subject: "sub", Time: "2024-05-06T07:08:09Z",
		Topic: "orders", Pubsub: "orders-ps", TraceID: "00-abc-def-01", TraceParent: "00-abc-def-01", TraceState: "a=b",
	}
	got := ev
	got.Data, got.JSON, got.Fields, got.Expiration = nil, nil, nil, time.Time{}
	if got.ID != want.ID || got.Source != want.Source || got.Type != want.Type || got.Subject != want.Subject ||
		got.Time != want.Time || got.TraceID != want.TraceID || got.TraceParent != want.TraceParent ||
		got.TraceState != want.TraceState || got.DataContentType != want.DataContentType {
		t.Errorf("event\n got %+v\nwant %+v", got, want)
	}
	if want := testNow.Add(10 * time.Second).Truncate(time.Second); !ev.Expiration.Equal(want) {
		t.Errorf("Expiration = %v, want %v", ev.Expiration, want)
	}
	if ev.Expired(testNow) || !ev.Expired(testNow.Add(11*time.Second)) {
		t.Error("Expired is wrong")
	}
	ext := ev.Extensions()
	for _, k := range []string{"topic", "pubsubname", "traceid", "traceparent", "tracestate", "time", "subject", "expiration"} {
		if _, ok := ext[k]; !ok {
			t.Errorf("extension %s missing from %v", k, ext)
		}
	}
	for _, k := range []string{"id", "source", "type", "specversion", "datacontenttype", "data", "data_base64"} {
		if _, ok := ext[k]; ok {
			t.Errorf("%s is not an extension", k)
		}
	}
}

func TestDecodeEventRaw(t *testing.T) {
	payload := "\x00raw \xff bytes"
	r := request(payload, "application/json", map[string]string{"rawPayload": "true"})
	r.TraceParent = "00-raw-01"
	m, err := NewEnvelope(r)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := DecodeEvent(m)
	if err != nil {
		t.Fatal(err)
	}
	if !ev.Raw || string(ev.Data) != payload || ev.ID != "id-1" || ev.DataContentType != "application/octet-stream" ||
		ev.Source != "Dapr" || ev.Type != DefaultEventType || ev.TraceParent != "00-raw-01" || ev.TraceID != "00-raw-01" {
		t.Errorf("raw event = %+v", ev)
	}
	obj := mustDecode(t, ev.JSON)
	if b64, _ := obj.string("data_base64"); b64 != "AHJhdyD/IGJ5dGVz" {
		t.Errorf("synthesized data_base64 = %q", b64)
	}
	if topic, _ := obj.string("topic"); topic != "orders" {
		t.Errorf("synthesized topic = %q", topic)
	}
}

func TestDecodeEventTraceFromMetadata(t *testing.T) {
	m := Message{Topic: "t", Pubsub: "p", ContentType: ContentTypeCloudEvent, Data: []byte(`{"id":"1","data":"x"}`),
		Metadata: map[string]string{"traceparent": "00-md-01", "tracestate": "m=1"}}
	ev, err := DecodeEvent(m)
	if err != nil {
		t.Fatal(err)
	}
	if ev.TraceParent != "00-md-01" || ev.TraceID != "00-md-01" || ev.TraceState != "m=1" {
		t.Errorf("trace = %q %q %q", ev.TraceID, ev.TraceParent, ev.TraceState)
	}
	// The event's own trace context wins over metadata.
	m.Data = []byte(`{"id":"1","traceparent":"00-ev-01","traceid":"00-ev-01"}`)
	if ev, _ = DecodeEvent(m); ev.TraceParent != "00-ev-01" || ev.TraceID != "00-ev-01" {
		t.Errorf("trace = %q %q", ev.TraceID, ev.TraceParent)
	}
}

func TestDecodeEventErrors(t *testing.T) {
	for _, data := range []string{``, `nope`, `[1]`, `null`, `"s"`, `{"id":"x"} trailing`,
		`{"data_base64":"!!!"}`, `{"data_base64":5}`} {
		m := Message{ID: "m", ContentType: ContentTypeCloudEvent, Data: []byte(data)}
		if _, err := DecodeEvent(m); err == nil {
			t.Errorf("DecodeEvent(%s) succeeded", data)
		}
	}
	// Non-string attributes read as empty, as daprd reads them.
	ev, err := DecodeEvent(Message{ContentType: ContentTypeCloudEvent, Data: []byte(`{"id":5,"type":["x"],"data":"d"}`)})
	if err != nil || ev.ID != "" || ev.Type != "" || string(ev.Data) != "d" {
		t.Errorf("event = %+v, %v", ev, err)
	}
}

func FuzzNewEnvelope(f *testing.F) {
	f.Add([]byte("hello"), "", "", "", "", "")
	f.Add([]byte(`{"a":1}`), "application/json", "ttlInSeconds", "10", "cloudevent.id", "x")
	f.Add([]byte(`{"id":"1","data":{"a":1}}`), "application/cloudevents+json", "cloudevent.type", "t", "", "")
	f.Add([]byte("\xff\x00"), "image/png", "rawPayload", "true", "partitionKey", "k")
	f.Add([]byte("\xff\x00"), "text/plain", "rawPayload", "maybe", "", "")
	f.Add([]byte(`not json`), "application/ld+json", "ttlInSeconds", "-1", "cloudevent.traceparent", "00-x-01")
	f.Fuzz(func(t *testing.T, data []byte, ct, k1, v1, k2, v2 string) {
		md := map[string]string{k1: v1, k2: v2}
		r := PublishRequest{Tenant: "t", AppID: "app", Pubsub: "ps", Topic: "topic", Data: data, ContentType: ct,
			Metadata: md, TraceParent: v2, Now: testNow}
		m, err := NewEnvelope(r)
		if err != nil {
			var be *blocks.Error
			if !errors.As(err, &be) || be.HTTPStatus < 400 || be.HTTPStatus >= 500 {
				t.Fatalf("error %v is not a 4xx *blocks.Error", err)
			}
			return
		}
		if m.ID == "" {
			t.Fatal("message without an id")
		}
		raw, _ := rawPayload(md)
		if raw {
			if !bytes.Equal(m.Data, data) || m.ContentType != ct {
				t.Fatalf("raw payload changed: %q %q", m.Data, m.ContentType)
			}
			return
		}
		if !json.Valid(m.Data) {
			t.Fatalf("envelope is not valid JSON: %s", m.Data)
		}
		ev, err := DecodeEvent(m)
		if err != nil {
			t.Fatalf("DecodeEvent of an envelope: %v\n%s", err, m.Data)
		}
		if ev.ID != m.ID || ev.Topic != "topic" || ev.Pubsub != "ps" {
			t.Fatalf("decoded attributes %+v", ev)
		}
		if isCloudEventContentType(ct) {
			return
		}
		// The data survives the round trip.
		mt := mediaType(ct)
		trimmed := trimJSONSpace(data)
		switch {
		case isJSONMediaType(mt) && json.Valid(trimmed) && utf8.Valid(trimmed):
			if !bytes.Equal(ev.Data, trimmed) {
				t.Fatalf("JSON data = %q, want %q", ev.Data, trimmed)
			}
		case isJSONMediaType(mt):
			if utf8.Valid(data) {
				var s string
				if err := json.Unmarshal(ev.Data, &s); err != nil || s != string(data) {
					t.Fatalf("JSON-typed string data = %q, want %q", ev.Data, data)
				}
			} else if !bytes.Equal(ev.Data, data) {
				t.Fatalf("base64 data = %q, want %q", ev.Data, data)
			}
		default:
			if !bytes.Equal(ev.Data, data) {
				t.Fatalf("data = %q, want %q", ev.Data, data)
			}
		}
	})
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"id":"1","type":"widget","data":{"price":150}}`), ContentTypeCloudEvent)
	f.Add([]byte(`{"data_base64":"AAE=","datacontenttype":"application/octet-stream"}`), ContentTypeCloudEvent)
	f.Add([]byte(`{"data":"x","datacontenttype":"text/plain","traceparent":5}`), ContentTypeCloudEvent)
	f.Add([]byte("raw \xff"), "application/octet-stream")
	f.Add([]byte(`[]`), ContentTypeCloudEvent)
	router, err := CompileRoutes(Routes{Rules: []Rule{
		{Match: `event.type == "widget"`, Path: "/w"},
		{Match: `event.data.price > 100`, Path: "/p"},
		{Match: `has(event.data.x) && event.data.x.size() > 1`, Path: "/x"},
		{Match: `event.source.startsWith("a")`, Path: "/a"},
	}, Default: "/d"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, ct string) {
		m := Message{ID: "m", Topic: "t", Pubsub: "p", Data: data, ContentType: ct}
		ev, err := DecodeEvent(m)
		if err != nil {
			return
		}
		if ev.Raw != !isCloudEventContentType(ct) {
			t.Fatalf("Raw = %v for content type %q", ev.Raw, ct)
		}
		if ev.Raw && !bytes.Equal(ev.Data, data) {
			t.Fatal("raw data changed")
		}
		if !json.Valid(ev.JSON) || ev.Fields == nil {
			t.Fatalf("event JSON %q, fields %v", ev.JSON, ev.Fields)
		}
		path, _ := router.Match(ev)
		if !strings.HasPrefix(path, "/") {
			t.Fatalf("path %q", path)
		}
	})
}
