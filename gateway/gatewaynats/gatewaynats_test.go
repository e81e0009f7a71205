package gatewaynats

import (
	"io"
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestStartJetStreamClose(t *testing.T) {
	s, err := Start(t.Context(), Config{Port: 0, StoreDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Healthy(); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "probe", Subjects: []string{"probe.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), "probe.x", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close() // idempotent
	if err := s.Healthy(); err == nil {
		t.Fatal("healthy after Close")
	}
}

func TestStartNeedsStoreDir(t *testing.T) {
	if _, err := Start(t.Context(), Config{Logger: slog.Default()}); err == nil {
		t.Fatal("started without a store dir")
	}
}
