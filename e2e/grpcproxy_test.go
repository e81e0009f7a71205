package e2e

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestGRPCProxying: a gRPC service of an app (grpc's health service) is
// reached through the gateway's gRPC port with dapr-app-id metadata, unary
// and server-streaming, and only from the app's own tenant.
func TestGRPCProxying(t *testing.T) {
	g := sharedGateway(t)
	ctx := t.Context()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	hs.SetServingStatus("orders", healthpb.HealthCheckResponse_SERVING)
	var callers []string
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		callers = append(callers, md.Get("dapr-caller-app-id")...)
		if len(md.Get("dapr-api-token")) > 0 && md.Get("dapr-api-token")[0] != "app-secret" {
			return nil, status.Error(codes.PermissionDenied, "the caller's token leaked")
		}
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(l)
	defer srv.Stop()

	a := g.admin()
	a.CreateTenant(ctx, "gproxy")
	if _, err := a.CreateApp(ctx, "gproxy", "orders", "grpc://"+l.Addr().String(), "app-secret"); err != nil {
		t.Fatal(err)
	}
	a.CreateApp(ctx, "gproxy", "client", "")
	tok, _ := a.IssueToken(ctx, "gproxy", "client", time.Hour)

	conn, err := grpc.NewClient(g.grpcAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	cctx := metadata.AppendToOutgoingContext(ctx, "dapr-app-id", "orders", "dapr-api-token", tok.Text)

	resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{Service: "orders"})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("unary through the proxy: %v %v", resp, err)
	}
	if len(callers) != 1 || callers[0] != "client" {
		t.Fatalf("the app saw callers %v", callers)
	}
	// The app's own errors pass through.
	if _, err := hc.Check(cctx, &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("app error: %v", err)
	}
	// Server streaming: Watch sends the current status, then each change.
	w, err := hc.Watch(cctx, &healthpb.HealthCheckRequest{Service: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := w.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first watch message: %v %v", m, err)
	}
	hs.SetServingStatus("orders", healthpb.HealthCheckResponse_NOT_SERVING)
	if m, err := w.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("second watch message: %v %v", m, err)
	}

	// Without dapr-app-id, an unknown service is Unimplemented.
	if _, err := hc.Check(metadata.AppendToOutgoingContext(ctx, "dapr-api-token", tok.Text), &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("no app id: %v", err)
	}
	// Another tenant's app id of the same name is not reachable.
	other := newTenant(t, g, "gproxy-b", "client")
	octx := metadata.AppendToOutgoingContext(ctx, "dapr-app-id", "orders", "dapr-api-token", other)
	if _, err := hc.Check(octx, &healthpb.HealthCheckRequest{Service: "orders"}); status.Code(err) == codes.OK {
		t.Fatal("tenant B reached tenant A's gRPC app")
	}
	// Without a token, nothing.
	if _, err := hc.Check(metadata.AppendToOutgoingContext(ctx, "dapr-app-id", "orders"), &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v", err)
	}
}
