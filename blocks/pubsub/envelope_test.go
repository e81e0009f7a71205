package pubsub

import (
	"bytes"
	"testing"
	"time"
)

// FuzzAppendEnvelope holds the fast envelope writer to the object encoder
// it replaces on the publish path: the same bytes for every request.
func FuzzAppendEnvelope(f *testing.F) {
	f.Add([]byte(`{"a":1}`), "application/json", "app1", "orders", "", "", "", true)
	f.Add([]byte("hi <there> & \"you\"\n"), "text/plain", "ä<>", "t/ü", "00-abc", "st", "subj\x01", false)
	f.Add([]byte{0xff, 0x00}, "application/octet-stream", "", "x", "", "", "", true)
	f.Fuzz(func(t *testing.T, data []byte, ct, app, topic, traceparent, tracestate, subject string, ttl bool) {
		r := PublishRequest{Tenant: "t", AppID: app, Pubsub: "pubsub", Topic: topic, Data: data, ContentType: ct,
			TraceParent: traceparent, TraceState: tracestate, Metadata: map[string]string{"cloudevent.subject": subject},
			Now: time.Unix(1_800_000_000, 0)}
		newID := func() string { return "id-1" }
		expiration := ""
		ev := envelope(r, r.Now, newID)
		if ttl {
			expiration = r.Now.UTC().Add(time.Minute).Format(time.RFC3339)
			ev[attrExpiration] = jsonString(expiration)
		}
		want := ev.encode()
		got := appendEnvelope(resolveEnvelope(r, newID), r, r.Now, expiration)
		if !bytes.Equal(got, want) {
			t.Fatalf("fast envelope differs:\n got %s\nwant %s", got, want)
		}
	})
}

func BenchmarkNewEnvelope(b *testing.B) {
	data := bytes.Repeat([]byte(`{"k":"v"},`), 100)
	data = append(append([]byte("["), data[:len(data)-1]...), ']')
	r := PublishRequest{Tenant: "t", AppID: "app1", Pubsub: "pubsub", Topic: "orders", Data: data, ContentType: "application/json"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewEnvelope(r); err != nil {
			b.Fatal(err)
		}
	}
}
