package appchannel

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/blockgate/blockgate/tenants"
)

func newChannel(t *testing.T, apps func(context.Context) ([]tenants.App, error)) *Channel {
	t.Helper()
	c := New(Config{Apps: apps, ProbeTimeout: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() { c.Close() })
	return c
}

// seen records what an app received.
type seen struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (s *seen) handler(status int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.reqs = append(s.reqs, r)
		s.mu.Unlock()
		w.WriteHeader(status)
	})
}

func (s *seen) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

func (s *seen) last() *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqs[len(s.reqs)-1]
}

func get(t *testing.T, c *Channel, app tenants.App, pathAndQuery string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, pathAndQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req, app)
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

func TestDoResolvesUnderTheBaseURLWithTokenAndHeaders(t *testing.T) {
	var s seen
	srv := httptest.NewServer(s.handler(http.StatusOK))
	defer srv.Close()
	c := newChannel(t, nil)
	app := tenants.App{Tenant: "a", ID: "orders", Endpoint: srv.URL + "/v2/", AppToken: "app-secret",
		Headers: map[string]string{"X-Api-Key": "k1", "dapr-api-token": "not this"}}

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "/items/a%2Fb?x=1&y=2", nil)
	req.Header.Set("X-Api-Key", "from the caller")
	resp, err := c.Do(req, app)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := s.last()
	if got.URL.EscapedPath() != "/v2/items/a%2Fb" || got.URL.RawQuery != "x=1&y=2" || got.Method != http.MethodPost {
		t.Errorf("app got %s %s?%s", got.Method, got.URL.EscapedPath(), got.URL.RawQuery)
	}
	if got.Header.Get("dapr-api-token") != "app-secret" {
		t.Errorf("dapr-api-token %q, want the app's token", got.Header.Get("dapr-api-token"))
	}
	if got.Header.Get("X-Api-Key") != "k1" {
		t.Errorf("X-Api-Key %q, want the registered header", got.Header.Get("X-Api-Key"))
	}
}

func TestDoRoundRobinsAndSkipsUnhealthyInstances(t *testing.T) {
	var a, b seen
	healthyA := httptest.NewServer(a.handler(http.StatusOK))
	defer healthyA.Close()
	var mu sync.Mutex
	bHealthy := false
	sickB := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ok := bHealthy
		mu.Unlock()
		if r.URL.Path == "/healthz" && !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		b.handler(http.StatusOK).ServeHTTP(w, r)
	}))
	defer sickB.Close()
	app := tenants.App{Tenant: "a", ID: "orders", Endpoint: healthyA.URL,
		Instances: []tenants.Instance{{ID: "b", Endpoint: sickB.URL}},
		Health:    tenants.HealthCheck{Path: "/healthz", Interval: 50 * time.Millisecond, Threshold: 1}}
	c := newChannel(t, func(context.Context) ([]tenants.App, error) { return []tenants.App{app}, nil })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "instance b marked unhealthy", func() bool {
		_, ok := c.health.pick(tenants.App{Tenant: "a", ID: "orders", Instances: []tenants.Instance{{Endpoint: sickB.URL}}, Health: app.Health})
		return !ok
	})
	before := b.count()
	for range 10 {
		if _, err := get(t, c, app, "/work"); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.count() - before; n != 0 {
		t.Fatalf("the unhealthy instance got %d calls", n)
	}

	mu.Lock()
	bHealthy = true
	mu.Unlock()
	waitFor(t, "instance b healthy again", func() bool {
		n := b.count()
		get(t, c, app, "/work")
		get(t, c, app, "/work")
		return b.count() > n
	})
}

func TestPickWithoutEndpoint(t *testing.T) {
	c := newChannel(t, nil)
	_, err := get(t, c, tenants.App{Tenant: "a", ID: "cli-only"}, "/x")
	if !errors.Is(err, tenants.ErrNoInstance) {
		t.Fatalf("err %v, want ErrNoInstance", err)
	}
}

func TestProtocolMismatch(t *testing.T) {
	c := newChannel(t, nil)
	if _, err := get(t, c, tenants.App{ID: "g", Endpoint: "grpc://127.0.0.1:1"}, "/x"); !errors.Is(err, ErrProtocol) {
		t.Errorf("HTTP call to a gRPC app: %v, want ErrProtocol", err)
	}
	if _, err := c.Conn(tenants.App{ID: "h", Endpoint: "http://127.0.0.1:1"}); !errors.Is(err, ErrProtocol) {
		t.Errorf("gRPC conn to an HTTP app: %v, want ErrProtocol", err)
	}
	if _, err := get(t, c, tenants.App{ID: "bad", Endpoint: "ftp://x"}, "/x"); err == nil {
		t.Error("an ftp endpoint was called")
	}
}

// callbackApp is a gRPC app: Dapr's AppCallback with OnInvoke echoing the
// method and the metadata it got.
type callbackApp struct {
	runtimev1.UnimplementedAppCallbackServer
}

func (callbackApp) OnInvoke(ctx context.Context, in *commonv1.InvokeRequest) (*commonv1.InvokeResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	out := in.GetMethod()
	for _, k := range []string{"dapr-api-token", "dapr-caller-app-id", "dapr-callee-app-id", "x-trace", "authorization"} {
		out += "|" + k + "=" + first(md.Get(k))
	}
	return &commonv1.InvokeResponse{Data: &anypb.Any{Value: []byte(out)}, ContentType: "text/plain"}, nil
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func TestCallbackReachesAGRPCApp(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	runtimev1.RegisterAppCallbackServer(gs, callbackApp{})
	go gs.Serve(lis)
	defer gs.Stop()

	c := newChannel(t, nil)
	app := tenants.App{Tenant: "a", ID: "billing", Endpoint: "grpc://" + lis.Addr().String(), AppToken: "billing-secret"}
	cb, err := c.Callback(app)
	if err != nil {
		t.Fatal(err)
	}
	in := metadata.Pairs("x-trace", "t1", "dapr-api-token", "caller-token", "authorization", "Bearer caller")
	ctx := Outgoing(t.Context(), in, tenants.Principal{Tenant: "a", AppID: "web"}, app)
	resp, err := cb.OnInvoke(ctx, &commonv1.InvokeRequest{Method: "charge"})
	if err != nil {
		t.Fatal(err)
	}
	want := "charge|dapr-api-token=billing-secret|dapr-caller-app-id=web|dapr-callee-app-id=billing|x-trace=t1|authorization="
	if got := string(resp.GetData().GetValue()); got != want {
		t.Fatalf("app saw %q\nwant %q", got, want)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
