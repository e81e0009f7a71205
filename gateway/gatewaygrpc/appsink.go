package gatewaygrpc

import (
	"context"
	"errors"
	"fmt"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/blockgate/blockgate/appchannel"
	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/tenants"
)

// AppSink delivers a subscription to an app that speaks gRPC, through its
// AppCallback.OnTopicEvent, as daprd delivers to an app with app protocol
// grpc: the app answers SUCCESS, RETRY or DROP; an error status is a retry,
// except Unimplemented (the app has no OnTopicEvent), which drops the event
// as daprd does.
type AppSink struct {
	Channel *appchannel.Channel
	App     tenants.App
	// Timeout bounds one delivery; default 60s.
	Timeout time.Duration
}

var _ pubsub.Sink = AppSink{}

// Deliver implements pubsub.Sink.
func (s AppSink) Deliver(ctx context.Context, d pubsub.Delivered) (pubsub.Verdict, error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cb, err := s.Channel.Callback(s.App)
	if err != nil {
		return pubsub.Retry, err
	}
	ev := d.Event
	md := metadata.MD{}
	if ev.TraceParent != "" {
		md.Set("traceparent", ev.TraceParent)
	}
	if ev.TraceState != "" {
		md.Set("tracestate", ev.TraceState)
	}
	resp, err := cb.OnTopicEvent(appchannel.Outgoing(ctx, md, tenants.Principal{}, s.App), &runtimev1.TopicEventRequest{
		Id: ev.ID, Source: ev.Source, Type: ev.Type, SpecVersion: ev.SpecVersion,
		DataContentType: ev.DataContentType, Data: ev.Data, Topic: ev.Topic, PubsubName: ev.Pubsub, Path: d.Path,
		Extensions: extensions(ev),
	})
	switch {
	case status.Code(err) == codes.Unimplemented:
		return pubsub.Drop, fmt.Errorf("app %s does not implement OnTopicEvent: %w", s.App.ID, err)
	case err != nil:
		return pubsub.Retry, fmt.Errorf("delivering to app %s: %w", s.App.ID, err)
	}
	switch resp.GetStatus() {
	case runtimev1.TopicEventResponse_SUCCESS:
		return pubsub.Success, nil
	case runtimev1.TopicEventResponse_DROP:
		return pubsub.Drop, nil
	}
	return pubsub.Retry, nil
}

// ListSubscriptions asks a gRPC app for its programmatic subscriptions
// (AppCallback.ListTopicSubscriptions), read with the same rules as an
// HTTP app's /dapr/subscribe answer, except that a subscription without
// routes is kept (see pubsub.ParseProgrammaticGRPC). An app that does not implement the
// call has none.
func ListSubscriptions(ctx context.Context, ch *appchannel.Channel, app tenants.App) ([]pubsub.Subscription, error) {
	cb, err := ch.Callback(app)
	if err != nil {
		return nil, err
	}
	resp, err := cb.ListTopicSubscriptions(appchannel.Outgoing(ctx, nil, tenants.Principal{}, app), &emptypb.Empty{})
	switch {
	case status.Code(err) == codes.Unimplemented:
		return nil, nil
	case err != nil:
		return nil, err
	}
	// The programmatic form is the same list in JSON; protojson's field
	// names (pubsubName, deadLetterTopic, bulkSubscribe) are the ones
	// /dapr/subscribe uses.
	body := []byte("[")
	for i, sub := range resp.GetSubscriptions() {
		if i > 0 {
			body = append(body, ',')
		}
		js, err := protojson.Marshal(sub)
		if err != nil {
			return nil, err
		}
		body = append(body, js...)
	}
	body = append(body, ']')
	subs, err := pubsub.ParseProgrammaticGRPC(body)
	if err != nil {
		return nil, errors.Join(errors.New("the app's ListTopicSubscriptions answer is invalid"), err)
	}
	return subs, nil
}
