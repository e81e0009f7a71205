package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"github.com/dapr/go-sdk/service/common"
	daprgrpc "github.com/dapr/go-sdk/service/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestDeclarativeApps: apps registered from resources — Dapr's
// HTTPEndpoint with a base path and headers, and blockgate's App with two
// instances — are invoked by name, and re-applying replaces them.
func TestDeclarativeApps(t *testing.T) {
	g := sharedGateway(t)
	ctx := t.Context()
	a := g.admin()
	tok := newTenant(t, g, "decl", "web")
	backend := echoApp(t, "backend")

	applied, err := a.ApplyApp(ctx, "decl", []byte(`apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata:
  name: external
spec:
  baseUrl: `+backend.URL+`/v2
  headers:
  - name: X-Custom
    value: from-the-endpoint
`))
	if err != nil || !applied.Created {
		t.Fatalf("apply HTTPEndpoint: %+v %v", applied, err)
	}
	st, _, body := do(t, g, tok, "POST", "/v1.0/invoke/external/method/items?x=1", strings.NewReader("hi"), "X-Custom", "from-the-caller")
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || st != 200 {
		t.Fatalf("invoke the HTTPEndpoint: %d %s", st, body)
	}
	if m["path"] != "/v2/items" || m["query"] != "x=1" || m["custom"] != "from-the-endpoint" || m["body"] != "hi" || m["caller"] != "web" {
		t.Fatalf("the endpoint got %v", m)
	}

	one, two := echoApp(t, "one"), echoApp(t, "two")
	doc := `{"apiVersion":"blockgate.io/v1alpha1","kind":"App","metadata":{"name":"external"},
		"spec":{"instances":[{"id":"a","endpoint":"` + one.URL + `"},{"id":"b","endpoint":"` + two.URL + `"}],
		"appToken":{"value":"declared-secret"}}}`
	if applied, err := a.ApplyApp(ctx, "decl", []byte(doc)); err != nil || applied.Created {
		t.Fatalf("re-apply as App: %+v %v", applied, err)
	}
	seen := map[string]bool{}
	waitUntil(t, "calls reach both declared instances", func() bool {
		_, hdr, body := do(t, g, tok, "GET", "/v1.0/invoke/external/method/x", nil)
		var m map[string]any
		json.Unmarshal(body, &m)
		if m["token"] != "declared-secret" && hdr.Get("X-App") != "backend" {
			t.Fatalf("declared app token not sent: %s", body)
		}
		seen[hdr.Get("X-App")] = true
		return seen["one"] && seen["two"]
	})

	if _, err := a.ApplyApp(ctx, "decl", []byte(`{"apiVersion":"dapr.io/v1alpha1","kind":"HTTPEndpoint","metadata":{"name":"x"},"spec":{"baseUrl":"file:///etc/passwd"}}`)); err == nil {
		t.Fatal("a file:// endpoint was accepted")
	}
}

// TestInvokeGRPCApp: an app written with the Go SDK's gRPC service gets
// InvokeService calls through its AppCallback, with the verb and query
// string, Dapr's caller metadata and the app token it expects (the SDK
// refuses calls without it).
func TestInvokeGRPCApp(t *testing.T) {
	g := sharedGateway(t)
	ctx := t.Context()
	t.Setenv("APP_API_TOKEN", "billing-secret")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := daprgrpc.NewServiceWithListener(l)
	err = svc.AddServiceInvocationHandler("charge", func(ctx context.Context, in *common.InvocationEvent) (*common.Content, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		if len(md.Get("dapr-caller-app-id")) == 0 {
			return nil, errors.New("no caller app id")
		}
		out, _ := json.Marshal(map[string]string{"data": string(in.Data), "verb": in.Verb, "query": in.QueryString,
			"contentType": in.ContentType, "caller": md.Get("dapr-caller-app-id")[0]})
		return &common.Content{Data: out, ContentType: "application/json"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.AddServiceInvocationHandler("fail", func(context.Context, *common.InvocationEvent) (*common.Content, error) {
		return nil, status.Error(codes.FailedPrecondition, "card declined")
	})
	go svc.Start()
	t.Cleanup(func() { svc.GracefulStop() })

	a := g.admin()
	tok := newTenant(t, g, "grpcapp", "shop")
	if _, err := a.CreateApp(ctx, "grpcapp", "billing", "grpc://"+l.Addr().String(), "billing-secret"); err != nil {
		t.Fatal(err)
	}
	c := goClient(t, g, tok)
	out, err := c.InvokeMethodWithContent(ctx, "billing", "charge", "put", &dapr.DataContent{ContentType: "text/plain", Data: []byte("42 EUR")})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("answer %q: %v", out, err)
	}
	if m["data"] != "42 EUR" || m["verb"] != "PUT" || m["contentType"] != "text/plain" || m["caller"] != "shop" {
		t.Fatalf("the gRPC app got %v", m)
	}
	// The app's error status passes through.
	if _, err := c.InvokeMethod(ctx, "billing", "fail", "post"); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "card declined") {
		t.Fatalf("app error: %v", err)
	}
	// HTTP invocation of a gRPC app is refused with a hint.
	if st, _, body := do(t, g, tok, "POST", "/v1.0/invoke/billing/method/charge", nil); st != 500 || !strings.Contains(string(body), "speaks gRPC") {
		t.Fatalf("HTTP call to a gRPC app: %d %s", st, body)
	}
	// Another tenant with an app of the same name reaches nothing.
	other := goClient(t, g, newTenant(t, g, "grpcapp-b", "shop"))
	if _, err := other.InvokeMethod(ctx, "billing", "charge", "post"); err == nil {
		t.Fatal("tenant B invoked tenant A's gRPC app")
	}
}

// streamingApp implements grpc's interop TestService's client-streaming
// call: it sums the payload sizes it receives.
type streamingApp struct {
	testpb.UnimplementedTestServiceServer
}

func (streamingApp) StreamingInputCall(stream testpb.TestService_StreamingInputCallServer) error {
	total := 0
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			md, _ := metadata.FromIncomingContext(stream.Context())
			stream.SetTrailer(metadata.Pairs("x-caller", strings.Join(md.Get("dapr-caller-app-id"), ",")))
			return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(total)})
		}
		if err != nil {
			return err
		}
		total += len(req.GetPayload().GetBody())
	}
}

// TestGRPCClientStreamingProxy: a client-streaming call is proxied to the
// app by dapr-app-id, every message in order, and the app's trailer comes
// back.
func TestGRPCClientStreamingProxy(t *testing.T) {
	g := sharedGateway(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, streamingApp{})
	go srv.Serve(l)
	defer srv.Stop()

	a := g.admin()
	tok := newTenant(t, g, "gstream", "uploader")
	if _, err := a.CreateApp(ctx, "gstream", "sink", "grpc://"+l.Addr().String()); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(g.grpcAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := testpb.NewTestServiceClient(conn).StreamingInputCall(
		metadata.AppendToOutgoingContext(ctx, "dapr-app-id", "sink", "dapr-api-token", tok))
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for i := range 200 {
		body := make([]byte, 100+i)
		want += len(body)
		if err := stream.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: body}}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	if int(resp.GetAggregatedPayloadSize()) != want {
		t.Fatalf("the app summed %d bytes, want %d", resp.GetAggregatedPayloadSize(), want)
	}
	if got := stream.Trailer().Get("x-caller"); len(got) != 1 || got[0] != "uploader" {
		t.Fatalf("trailer x-caller %v", got)
	}
}

// TestGRPCAppSubscriptions: an app written with the Go SDK's gRPC service
// declares its subscriptions in ListTopicSubscriptions and gets events
// through OnTopicEvent; asking for a retry brings the same event back.
func TestGRPCAppSubscriptions(t *testing.T) {
	g := sharedGateway(t)
	ctx := t.Context()
	t.Setenv("APP_API_TOKEN", "")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	type got struct{ id, data, topic string }
	events := make(chan got, 16)
	svc := daprgrpc.NewServiceWithListener(l)
	retried := false
	err = svc.AddTopicEventHandler(&common.Subscription{PubsubName: "pubsub", Topic: "invoices", Route: "/invoices"},
		func(ctx context.Context, e *common.TopicEvent) (retry bool, err error) {
			events <- got{e.ID, string(e.RawData), e.Topic}
			if !retried {
				retried = true
				return true, errors.New("not yet")
			}
			return false, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	go svc.Start()
	t.Cleanup(func() { svc.GracefulStop() })

	tok := newTenant(t, g, "grpcsub", "publisher", pubsubComponent)
	if _, err := g.admin().CreateApp(ctx, "grpcsub", "ledger", "grpc://"+l.Addr().String()); err != nil {
		t.Fatal(err)
	}
	c := goClient(t, g, tok)
	// The app's subscription is found by the delivery loop; publish until
	// the first event arrives.
	var first got
	defer func() {
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.logs.String())
		}
	}()
	waitUntil(t, "the gRPC app receives an event", func() bool {
		if err := c.PublishEvent(ctx, "pubsub", "invoices", []byte(`{"n":1}`)); err != nil {
			t.Fatal(err)
		}
		select {
		case first = <-events:
			return true
		case <-time.After(200 * time.Millisecond):
			return false
		}
	})
	if first.topic != "invoices" || first.data != `{"n":1}` {
		t.Fatalf("first delivery %+v", first)
	}
	select {
	case again := <-events:
		if again.id != first.id {
			t.Fatalf("after RETRY got event %s, want %s again", again.id, first.id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the retried event did not come back")
	}
}
