package pubsubjs

import (
	"strconv"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockgate/blockgate/blocks/pubsub"
)

// benchPayload is a small CloudEvent-sized body.
var benchPayload = make([]byte, 256)

// BenchmarkPublish is a synchronous Publish through the Broker: headers,
// dedupe id, PubAck. Compare with BenchmarkRawJetStreamPublish, the same
// publish straight on JetStream, for the Broker's overhead as a ratio:
//
//	go test -run '^$' -bench 'Publish$' -benchtime 5s ./blocks/pubsub/pubsubjs/
func BenchmarkPublish(b *testing.B) {
	e := newEnv(b, Config{})
	msg := pubsub.Message{Tenant: "tenant-a", Pubsub: "ps", Topic: "bench", Data: benchPayload,
		ContentType: "application/cloudevents+json"}
	if err := e.b.ensureStream(b.Context(), msg.Tenant); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(benchPayload)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		msg.ID = strconv.Itoa(i)
		i++
		if err := e.b.Publish(b.Context(), msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawJetStreamPublish is js.Publish on the same kind of server and
// stream, with a Nats-Msg-Id as the Broker sends.
func BenchmarkRawJetStreamPublish(b *testing.B) {
	e := newEnv(b, Config{})
	if err := e.b.ensureStream(b.Context(), "tenant-a"); err != nil {
		b.Fatal(err)
	}
	subj := subject("tenant-a", topicScope("ps", "bench"), unkeyedPart)
	b.SetBytes(int64(len(benchPayload)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := e.js.Publish(b.Context(), subj, benchPayload, jetstream.WithMsgID(strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
