package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/blockgate/blockgate/blocks"
	"github.com/blockgate/blockgate/tenants"
)

// oneComponent is a registry of one pub/sub component, ps, in every app's
// scope.
type oneComponent struct{}

func (oneComponent) Component(_ context.Context, tenant tenants.ID, name string) (tenants.Component, bool, error) {
	return tenants.Component{Tenant: tenant, Name: "ps", Type: "pubsub.jetstream", Version: "v1"}, name == "ps", nil
}

func (oneComponent) HasKind(context.Context, tenants.ID, string) (bool, error) { return true, nil }

// failingBroker fails every Consume with err.
type failingBroker struct{ err error }

func (b failingBroker) Publish(context.Context, Message) error { return b.err }
func (b failingBroker) PublishBatch(_ context.Context, msgs []Message) []error {
	return make([]error, len(msgs))
}
func (b failingBroker) Consume(context.Context, Spec, func(Delivery)) error { return b.err }

// TestConsumeErrors: a subscription whose broker is unavailable ends with
// Unavailable, which tells a streaming subscriber to subscribe again; any
// other failure stays internal.
func TestConsumeErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want blocks.Kind
	}{
		{"unavailable", fmt.Errorf("creating consumer c: %w: context deadline exceeded", ErrUnavailable), blocks.Unavailable},
		{"other", errors.New("consumer deleted"), blocks.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := NewService(oneComponent{}, failingBroker{tt.err}, slog.New(slog.DiscardHandler))
			run, err := svc.Open(t.Context(), Subscriber{Tenant: "tenant-a", AppID: "app", Stream: true,
				Sub: Subscription{Pubsub: "ps", Topic: "orders"}})
			if err != nil {
				t.Fatal(err)
			}
			err = run(t.Context())
			if got := blocks.As(err); got.Kind != tt.want || !errors.Is(err, tt.err) {
				t.Fatalf("run: %v (kind %v), want kind %v wrapping the broker's error", err, got.Kind, tt.want)
			}
		})
	}
}
