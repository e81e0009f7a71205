package gatewaygrpc

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/blockgate/blockgate/blocks"
	"github.com/blockgate/blockgate/blocks/pubsub"
)

// traceContext reads the caller's W3C trace context from gRPC metadata.
func traceContext(ctx context.Context) (parent, state string) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("traceparent"); len(v) > 0 {
		parent = v[0]
	}
	if v := md.Get("tracestate"); len(v) > 0 {
		state = v[0]
	}
	return parent, state
}

// PublishEvent implements runtimev1.DaprServer.
func (s *Server) PublishEvent(ctx context.Context, req *runtimev1.PublishEventRequest) (*emptypb.Empty, error) {
	tp, ts := traceContext(ctx)
	err := s.cfg.Pubsub.Publish(ctx, principal(ctx), pubsub.Publication{
		Pubsub: req.GetPubsubName(), Topic: req.GetTopic(), Data: req.GetData(),
		ContentType: req.GetDataContentType(), Metadata: req.GetMetadata(), TraceParent: tp, TraceState: ts,
	})
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// BulkPublishEventAlpha1 implements runtimev1.DaprServer.
func (s *Server) BulkPublishEventAlpha1(ctx context.Context, req *runtimev1.BulkPublishRequest) (*runtimev1.BulkPublishResponse, error) {
	return s.BulkPublishEvent(ctx, req)
}

// BulkPublishEvent implements runtimev1.DaprServer. Entries that fail are
// listed in the answer; the call itself fails only for request-level errors.
func (s *Server) BulkPublishEvent(ctx context.Context, req *runtimev1.BulkPublishRequest) (*runtimev1.BulkPublishResponse, error) {
	entries := make([]pubsub.BulkEntry, len(req.GetEntries()))
	for i, e := range req.GetEntries() {
		entries[i] = pubsub.BulkEntry{EntryID: e.GetEntryId(), Data: e.GetEvent(), ContentType: e.GetContentType(), Metadata: e.GetMetadata()}
	}
	failed, err := s.cfg.Pubsub.BulkPublish(ctx, principal(ctx), req.GetPubsubName(), req.GetTopic(), req.GetMetadata(), entries)
	if err != nil {
		return nil, err
	}
	out := &runtimev1.BulkPublishResponse{}
	for _, f := range failed {
		out.FailedEntries = append(out.FailedEntries, &runtimev1.BulkPublishResponseFailedEntry{EntryId: f.EntryID, Error: f.Error})
	}
	return out, nil
}

// SubscribeTopicEventsAlpha1 implements runtimev1.DaprServer: a streaming
// subscription for an app with no inbound port. The first client message
// names the subscription; the server answers with an initial response and
// then sends events, each of which the client settles with event_processed.
func (s *Server) SubscribeTopicEventsAlpha1(stream runtimev1.Dapr_SubscribeTopicEventsAlpha1Server) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	initial := first.GetInitialRequest()
	if initial == nil {
		return blocks.ErrMalformedRequest("the first message of a topic subscription must be initial_request")
	}
	p := principal(ctx)
	sink := &streamSink{stream: stream, pending: map[string]chan pubsub.Verdict{}, timeout: s.cfg.StreamAckTimeout}
	run, err := s.cfg.Pubsub.Open(ctx, pubsub.Subscriber{
		Tenant: p.Tenant, AppID: p.AppID, Stream: true, Origin: pubsub.OriginStreaming, Sink: sink,
		Sub: pubsub.Subscription{
			Pubsub: initial.GetPubsubName(), Topic: initial.GetTopic(),
			Metadata: initial.GetMetadata(), DeadLetterTopic: initial.GetDeadLetterTopic(),
		},
	})
	if err != nil {
		return err
	}
	if err := sink.send(&runtimev1.SubscribeTopicEventsResponseAlpha1{
		SubscribeTopicEventsResponseType: &runtimev1.SubscribeTopicEventsResponseAlpha1_InitialResponse{
			InitialResponse: &runtimev1.SubscribeTopicEventsResponseInitialAlpha1{},
		},
	}); err != nil {
		return err
	}
	// When the node stops, end the stream for the client to come back
	// elsewhere; the deliveries it has not settled are redelivered.
	var stopping atomic.Bool
	go func() {
		select {
		case <-s.cfg.Stopping:
			stopping.Store(true)
			cancel()
		case <-ctx.Done():
		}
	}()
	// Settlements arrive on the stream; when it ends, stop delivering.
	go func() {
		defer cancel()
		for {
			msg, err := stream.Recv()
			if err != nil {
				return
			}
			if done := msg.GetEventProcessed(); done != nil {
				sink.settle(done.GetId(), done.GetStatus().GetStatus())
			}
		}
	}()
	err = run(ctx)
	if stopping.Load() {
		return blocks.ErrUnavailable("this node, which is shutting down,", nil)
	}
	return err
}

// streamSink delivers events over one subscription stream.
type streamSink struct {
	stream  runtimev1.Dapr_SubscribeTopicEventsAlpha1Server
	timeout time.Duration

	sendMu  sync.Mutex // grpc streams allow one sender at a time
	mu      sync.Mutex
	pending map[string]chan pubsub.Verdict
}

func (k *streamSink) send(m *runtimev1.SubscribeTopicEventsResponseAlpha1) error {
	k.sendMu.Lock()
	defer k.sendMu.Unlock()
	return k.stream.Send(m)
}

var verdicts = map[runtimev1.TopicEventResponse_TopicEventResponseStatus]pubsub.Verdict{
	runtimev1.TopicEventResponse_SUCCESS: pubsub.Success,
	runtimev1.TopicEventResponse_RETRY:   pubsub.Retry,
	runtimev1.TopicEventResponse_DROP:    pubsub.Drop,
}

func (k *streamSink) settle(id string, status runtimev1.TopicEventResponse_TopicEventResponseStatus) {
	k.mu.Lock()
	ch, ok := k.pending[id]
	delete(k.pending, id)
	k.mu.Unlock()
	if !ok {
		return // settled twice, or after its timeout
	}
	v, known := verdicts[status]
	if !known {
		v = pubsub.Retry
	}
	ch <- v
}

// Deliver implements pubsub.Sink.
func (k *streamSink) Deliver(ctx context.Context, d pubsub.Delivered) (pubsub.Verdict, error) {
	ev := d.Event
	ch := make(chan pubsub.Verdict, 1)
	k.mu.Lock()
	if _, busy := k.pending[ev.ID]; busy {
		k.mu.Unlock()
		return pubsub.Retry, nil // the same id is still with the app
	}
	k.pending[ev.ID] = ch
	k.mu.Unlock()
	forget := func() {
		k.mu.Lock()
		delete(k.pending, ev.ID)
		k.mu.Unlock()
	}
	req := &runtimev1.TopicEventRequest{
		Id: ev.ID, Source: ev.Source, Type: ev.Type, SpecVersion: ev.SpecVersion,
		DataContentType: ev.DataContentType, Data: ev.Data, Topic: ev.Topic, PubsubName: ev.Pubsub, Path: d.Path,
		Extensions: extensions(ev),
	}
	if err := k.send(&runtimev1.SubscribeTopicEventsResponseAlpha1{
		SubscribeTopicEventsResponseType: &runtimev1.SubscribeTopicEventsResponseAlpha1_EventMessage{EventMessage: req},
	}); err != nil {
		forget()
		return pubsub.Retry, pubsub.ErrStreamClosed
	}
	timeout := k.timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case v := <-ch:
		return v, nil
	case <-ctx.Done():
		forget()
		return pubsub.Retry, pubsub.ErrStreamClosed
	case <-t.C:
		forget()
		return pubsub.Retry, context.DeadlineExceeded
	}
}

// extensions converts the event's extension attributes for the wire; one
// that cannot be represented is left out rather than failing the event.
func extensions(ev pubsub.Event) *structpb.Struct {
	ext := ev.Extensions()
	if len(ext) == 0 {
		return nil
	}
	fields := make(map[string]any, len(ext))
	for k, raw := range ext {
		var v any
		if json.Unmarshal(raw, &v) == nil {
			fields[k] = v
		}
	}
	st, err := structpb.NewStruct(fields)
	if err != nil {
		return nil
	}
	return st
}
