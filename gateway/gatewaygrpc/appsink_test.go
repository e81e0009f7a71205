package gatewaygrpc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/dapr/go-sdk/service/common"
	daprgrpc "github.com/dapr/go-sdk/service/grpc"

	"github.com/blockgate/blockgate/appchannel"
	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/tenants"
)

// sdkApp starts an app on the Go SDK's gRPC service with one topic handler
// that answers with verdicts in turn.
func sdkApp(t *testing.T, verdicts ...error) (tenants.App, <-chan *common.TopicEvent) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *common.TopicEvent, 16)
	svc := daprgrpc.NewServiceWithListener(l)
	i := 0
	err = svc.AddTopicEventHandler(&common.Subscription{PubsubName: "pubsub", Topic: "invoices", Route: "/invoices",
		DeadLetterTopic: "dead"},
		func(ctx context.Context, e *common.TopicEvent) (bool, error) {
			got <- e
			v := verdicts[i%len(verdicts)]
			i++
			return v != nil, v
		})
	if err != nil {
		t.Fatal(err)
	}
	go svc.Start()
	t.Cleanup(func() { svc.GracefulStop() })
	return tenants.App{Tenant: "t", ID: "ledger", Endpoint: "grpc://" + l.Addr().String()}, got
}

func TestListSubscriptionsFromAnSDKApp(t *testing.T) {
	app, _ := sdkApp(t, nil)
	ch := appchannel.New(appchannel.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer ch.Close()
	subs, err := ListSubscriptions(t.Context(), ch, app)
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 1 || subs[0].Pubsub != "pubsub" || subs[0].Topic != "invoices" || subs[0].DeadLetterTopic != "dead" {
		t.Fatalf("subscriptions %+v", subs)
	}
	// The Go SDK lists a topic's default handler without a route: its
	// events arrive with an empty path.
	if subs[0].Routes.Default != "" || len(subs[0].Routes.Rules) != 0 {
		t.Fatalf("routes %+v", subs[0].Routes)
	}
}

func TestAppSinkVerdicts(t *testing.T) {
	app, got := sdkApp(t, nil, errors.New("try again"))
	ch := appchannel.New(appchannel.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer ch.Close()
	sink := AppSink{Channel: ch, App: app}
	d := pubsub.Delivered{Event: pubsub.Event{ID: "e1", Topic: "invoices", Pubsub: "pubsub", SpecVersion: "1.0",
		DataContentType: "application/json", Data: []byte(`{"n":1}`), Source: "shop", Type: "com.dapr.event.sent"}}
	if v, err := sink.Deliver(t.Context(), d); err != nil || v != pubsub.Success {
		t.Fatalf("first: %v %v", v, err)
	}
	e := <-got
	if e.ID != "e1" || string(e.RawData) != `{"n":1}` || e.Topic != "invoices" {
		t.Fatalf("the app got %+v", e)
	}
	if v, _ := sink.Deliver(t.Context(), d); v != pubsub.Retry {
		t.Fatalf("second: %v, want Retry", v)
	}
}
