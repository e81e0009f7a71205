package gatewaygrpc

import (
	"context"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/blocks/state"
)

var concurrencyNames = map[commonv1.StateOptions_StateConcurrency]string{
	commonv1.StateOptions_CONCURRENCY_UNSPECIFIED: "",
	commonv1.StateOptions_CONCURRENCY_FIRST_WRITE: "first-write",
	commonv1.StateOptions_CONCURRENCY_LAST_WRITE:  "last-write",
}

var consistencyNames = map[commonv1.StateOptions_StateConsistency]string{
	commonv1.StateOptions_CONSISTENCY_UNSPECIFIED: "",
	commonv1.StateOptions_CONSISTENCY_EVENTUAL:    "eventual",
	commonv1.StateOptions_CONSISTENCY_STRONG:      "strong",
}

// options maps protobuf enums to Dapr's option strings; an unknown enum
// value passes through as a name the service rejects.
func options(o *commonv1.StateOptions) state.Options {
	if o == nil {
		return state.Options{}
	}
	conc, ok := concurrencyNames[o.GetConcurrency()]
	if !ok {
		conc = o.GetConcurrency().String()
	}
	cons, ok := consistencyNames[o.GetConsistency()]
	if !ok {
		cons = o.GetConsistency().String()
	}
	return state.Options{Concurrency: conc, Consistency: cons}
}

func etag(e *commonv1.Etag) *string {
	if e == nil || e.GetValue() == "" {
		return nil
	}
	v := e.GetValue()
	return &v
}

func setItem(it *commonv1.StateItem) state.SetItem {
	return state.SetItem{
		Key: it.GetKey(), Value: it.GetValue(), ETag: etag(it.GetEtag()),
		Options: options(it.GetOptions()), Metadata: it.GetMetadata(),
	}
}

// SaveState implements runtimev1.DaprServer.
func (s *Server) SaveState(ctx context.Context, req *runtimev1.SaveStateRequest) (*emptypb.Empty, error) {
	items := make([]state.SetItem, len(req.GetStates()))
	for i, it := range req.GetStates() {
		items[i] = setItem(it)
	}
	if err := s.cfg.State.Save(ctx, principal(ctx), req.GetStoreName(), items); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// GetState implements runtimev1.DaprServer.
func (s *Server) GetState(ctx context.Context, req *runtimev1.GetStateRequest) (*runtimev1.GetStateResponse, error) {
	opts := state.Options{Consistency: consistencyNames[req.GetConsistency()]}
	res, err := s.cfg.State.Get(ctx, principal(ctx), req.GetStoreName(), req.GetKey(), opts)
	if err != nil {
		return nil, err
	}
	return &runtimev1.GetStateResponse{Data: res.Value, Etag: res.ETag, Metadata: res.Metadata}, nil
}

// GetBulkState implements runtimev1.DaprServer.
func (s *Server) GetBulkState(ctx context.Context, req *runtimev1.GetBulkStateRequest) (*runtimev1.GetBulkStateResponse, error) {
	res, err := s.cfg.State.BulkGet(ctx, principal(ctx), req.GetStoreName(), req.GetKeys())
	if err != nil {
		return nil, err
	}
	out := &runtimev1.GetBulkStateResponse{Items: make([]*runtimev1.BulkStateItem, len(res))}
	for i, r := range res {
		out.Items[i] = &runtimev1.BulkStateItem{Key: r.Key, Data: r.Value, Etag: r.ETag, Metadata: r.Metadata, Error: r.Error}
	}
	return out, nil
}

// DeleteState implements runtimev1.DaprServer.
func (s *Server) DeleteState(ctx context.Context, req *runtimev1.DeleteStateRequest) (*emptypb.Empty, error) {
	it := state.DeleteItem{Key: req.GetKey(), ETag: etag(req.GetEtag()), Options: options(req.GetOptions()), Metadata: req.GetMetadata()}
	if err := s.cfg.State.Delete(ctx, principal(ctx), req.GetStoreName(), []state.DeleteItem{it}); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// DeleteBulkState implements runtimev1.DaprServer.
func (s *Server) DeleteBulkState(ctx context.Context, req *runtimev1.DeleteBulkStateRequest) (*emptypb.Empty, error) {
	items := make([]state.DeleteItem, len(req.GetStates()))
	for i, it := range req.GetStates() {
		items[i] = state.DeleteItem{Key: it.GetKey(), ETag: etag(it.GetEtag()), Options: options(it.GetOptions()), Metadata: it.GetMetadata()}
	}
	if err := s.cfg.State.Delete(ctx, principal(ctx), req.GetStoreName(), items); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// ExecuteStateTransaction implements runtimev1.DaprServer.
func (s *Server) ExecuteStateTransaction(ctx context.Context, req *runtimev1.ExecuteStateTransactionRequest) (*emptypb.Empty, error) {
	ops := make([]state.TxOperation, len(req.GetOperations()))
	for i, op := range req.GetOperations() {
		ops[i] = state.TxOperation{Operation: op.GetOperationType(), Item: setItem(op.GetRequest())}
	}
	if err := s.cfg.State.Transact(ctx, principal(ctx), req.GetStoreName(), ops); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// QueryStateAlpha1 implements runtimev1.DaprServer.
func (s *Server) QueryStateAlpha1(ctx context.Context, req *runtimev1.QueryStateRequest) (*runtimev1.QueryStateResponse, error) {
	res, err := s.cfg.State.Query(ctx, principal(ctx), req.GetStoreName(), []byte(req.GetQuery()))
	if err != nil {
		return nil, err
	}
	out := &runtimev1.QueryStateResponse{Token: res.Token, Results: make([]*runtimev1.QueryStateItem, len(res.Results))}
	for i, r := range res.Results {
		out.Results[i] = &runtimev1.QueryStateItem{Key: r.Key, Data: r.Value, Etag: r.ETag}
	}
	return out, nil
}

// GetMetadata implements runtimev1.DaprServer.
func (s *Server) GetMetadata(ctx context.Context, _ *runtimev1.GetMetadataRequest) (*runtimev1.GetMetadataResponse, error) {
	md, err := s.cfg.Metadata.Get(ctx, principal(ctx))
	if err != nil {
		return nil, err
	}
	out := &runtimev1.GetMetadataResponse{
		Id:               md.AppID,
		RuntimeVersion:   md.RuntimeVersion,
		EnabledFeatures:  md.EnabledFeatures,
		ExtendedMetadata: md.Extended,
	}
	for _, a := range md.Subscriptions {
		rules := &runtimev1.PubsubSubscriptionRules{}
		for _, r := range a.Routes.Rules {
			rules.Rules = append(rules.Rules, &runtimev1.PubsubSubscriptionRule{Match: r.Match, Path: r.Path})
		}
		if a.Routes.Default != "" {
			rules.Rules = append(rules.Rules, &runtimev1.PubsubSubscriptionRule{Path: a.Routes.Default})
		}
		out.Subscriptions = append(out.Subscriptions, &runtimev1.PubsubSubscription{
			PubsubName: a.Pubsub, Topic: a.Topic, Metadata: a.Metadata, Rules: rules,
			DeadLetterTopic: a.DeadLetterTopic, Type: subscriptionTypes[a.Origin],
		})
	}
	for _, c := range md.Components {
		out.RegisteredComponents = append(out.RegisteredComponents, &runtimev1.RegisteredComponents{
			Name: c.Name, Type: c.Type, Version: c.Version, Capabilities: c.Capabilities,
		})
	}
	return out, nil
}

// SetMetadata implements runtimev1.DaprServer.
func (s *Server) SetMetadata(ctx context.Context, req *runtimev1.SetMetadataRequest) (*emptypb.Empty, error) {
	if err := s.cfg.Metadata.Set(ctx, principal(ctx), req.GetKey(), req.GetValue()); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

var subscriptionTypes = map[string]runtimev1.PubsubSubscriptionType{
	pubsub.OriginDeclarative:  runtimev1.PubsubSubscriptionType_DECLARATIVE,
	pubsub.OriginProgrammatic: runtimev1.PubsubSubscriptionType_PROGRAMMATIC,
	pubsub.OriginStreaming:    runtimev1.PubsubSubscriptionType_STREAMING,
}
