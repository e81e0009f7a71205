package gatewaygrpc

import (
	"context"
	"net"
	"testing"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/gateway/gatewaytest"
	"github.com/blockgate/blockgate/tenants"
)

// pubsubComponents gives every tenant one pub/sub component, "pubsub".
type pubsubComponents struct{}

func (pubsubComponents) Component(_ context.Context, t tenants.ID, name string) (tenants.Component, bool, error) {
	return tenants.Component{Tenant: t, Name: "pubsub", Type: "pubsub.jetstream", Version: "v1"}, name == "pubsub", nil
}

func (pubsubComponents) HasKind(context.Context, tenants.ID, string) (bool, error) { return true, nil }

// idleBroker stores nothing and delivers nothing; Consume waits for its
// ctx.
type idleBroker struct{}

func (idleBroker) Publish(context.Context, pubsub.Message) error { return nil }
func (idleBroker) PublishBatch(_ context.Context, msgs []pubsub.Message) []error {
	return make([]error, len(msgs))
}

func (idleBroker) Consume(ctx context.Context, _ pubsub.Spec, _ func(pubsub.Delivery)) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestSubscriptionStreamEndsOnStop: when the node begins to stop, an open
// subscription stream ends with Unavailable — which has the Dapr SDKs
// subscribe again, elsewhere — and a graceful stop need not wait for it.
func TestSubscriptionStreamEndsOnStop(t *testing.T) {
	svcs := gatewaytest.NewServices()
	stopping := make(chan struct{})
	srv := New(Config{Pubsub: pubsub.NewService(pubsubComponents{}, idleBroker{}, svcs.Logger), Auth: gatewaytest.Auth{},
		Stopping: stopping, Logger: svcs.Logger})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // fails rather than hangs
	defer cancel()
	stream, err := runtimev1.NewDaprClient(conn).SubscribeTopicEventsAlpha1(as(ctx, "acme/app1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&runtimev1.SubscribeTopicEventsRequestAlpha1{
		SubscribeTopicEventsRequestType: &runtimev1.SubscribeTopicEventsRequestAlpha1_InitialRequest{
			InitialRequest: &runtimev1.SubscribeTopicEventsRequestInitialAlpha1{PubsubName: "pubsub", Topic: "orders"},
		},
	}); err != nil {
		t.Fatal(err)
	}
	if first, err := stream.Recv(); err != nil || first.GetInitialResponse() == nil {
		t.Fatalf("initial response: %v %v", first, err)
	}

	close(stopping)
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	_, err = stream.Recv()
	if status.Code(err) != codes.Unavailable || reason(err) != "ERR_UNAVAILABLE" {
		t.Fatalf("stream after the node began to stop: %v (reason %q), want Unavailable", err, reason(err))
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the graceful stop still waits for the subscription stream")
	}
}
