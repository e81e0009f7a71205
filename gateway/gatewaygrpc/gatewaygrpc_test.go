package gatewaygrpc

import (
	"context"
	"net"
	"testing"

	"github.com/blockgate/blockgate/gateway/gatewaytest"
	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func newClient(t *testing.T) runtimev1.DaprClient {
	t.Helper()
	svcs := gatewaytest.NewServices()
	srv := New(Config{State: svcs.State, Metadata: svcs.Metadata, Auth: gatewaytest.Auth{}, Logger: svcs.Logger})
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
	return runtimev1.NewDaprClient(conn)
}

func as(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "dapr-api-token", token)
}

// reason returns the ErrorInfo reason of a status error.
func reason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

func TestStateGRPC(t *testing.T) {
	c := newClient(t)
	ctx := as(t.Context(), "acme/app1")

	if _, err := c.GetState(t.Context(), &runtimev1.GetStateRequest{StoreName: "statestore", Key: "k"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v", err)
	}
	bin := []byte{0, 1, 2, 0xff}
	if _, err := c.SaveState(ctx, &runtimev1.SaveStateRequest{StoreName: "statestore", States: []*commonv1.StateItem{{Key: "k", Value: bin}}}); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetState(ctx, &runtimev1.GetStateRequest{StoreName: "statestore", Key: "k"})
	if err != nil || string(got.GetData()) != string(bin) || got.GetEtag() == "" {
		t.Fatalf("get: %v %v", got, err)
	}
	// Stale ETag: Aborted, value unchanged.
	_, err = c.SaveState(ctx, &runtimev1.SaveStateRequest{StoreName: "statestore", States: []*commonv1.StateItem{
		{Key: "k", Value: []byte("new"), Etag: &commonv1.Etag{Value: "stale"}}}})
	if status.Code(err) != codes.Aborted || reason(err) != "ERR_STATE_SAVE" {
		t.Fatalf("stale etag: %v (reason %q)", err, reason(err))
	}
	// Unknown store: InvalidArgument with Dapr's code.
	_, err = c.GetState(ctx, &runtimev1.GetStateRequest{StoreName: "nope", Key: "k"})
	if status.Code(err) != codes.InvalidArgument || reason(err) != "ERR_STATE_STORE_NOT_FOUND" {
		t.Fatalf("unknown store: %v (reason %q)", err, reason(err))
	}
	// A transaction with a stale ETag changes nothing.
	_, err = c.ExecuteStateTransaction(ctx, &runtimev1.ExecuteStateTransactionRequest{StoreName: "statestore", Operations: []*runtimev1.TransactionalStateOperation{
		{OperationType: "upsert", Request: &commonv1.StateItem{Key: "t1", Value: []byte("1")}},
		{OperationType: "delete", Request: &commonv1.StateItem{Key: "k", Etag: &commonv1.Etag{Value: "stale"}}},
	}})
	if status.Code(err) != codes.Aborted {
		t.Fatalf("stale transaction: %v", err)
	}
	if r, _ := c.GetState(ctx, &runtimev1.GetStateRequest{StoreName: "statestore", Key: "t1"}); len(r.GetData()) != 0 {
		t.Fatal("a rolled-back transaction left t1 behind")
	}
	// Unknown transaction operation.
	_, err = c.ExecuteStateTransaction(ctx, &runtimev1.ExecuteStateTransactionRequest{StoreName: "statestore", Operations: []*runtimev1.TransactionalStateOperation{
		{OperationType: "merge", Request: &commonv1.StateItem{Key: "x"}}}})
	if status.Code(err) != codes.InvalidArgument || reason(err) != "ERR_NOT_SUPPORTED_STATE_OPERATION" {
		t.Fatalf("unknown operation: %v", err)
	}
	// Unimplemented blocks say so.
	if _, err := c.GetSecret(ctx, &runtimev1.GetSecretRequest{StoreName: "s", Key: "k"}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("secrets: %v", err)
	}
	// Another tenant sees nothing.
	r, err := c.GetState(as(t.Context(), "other/app1"), &runtimev1.GetStateRequest{StoreName: "statestore", Key: "k"})
	if err != nil || len(r.GetData()) != 0 {
		t.Fatalf("other tenant read %q (%v)", r.GetData(), err)
	}
	md, err := c.GetMetadata(ctx, &runtimev1.GetMetadataRequest{})
	if err != nil || md.GetId() != "app1" || len(md.GetRegisteredComponents()) != 1 {
		t.Fatalf("metadata: %v %v", md, err)
	}
}
