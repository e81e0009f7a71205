package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// echoApp answers every request with what it received.
func echoApp(t *testing.T, name string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/teapot" {
			w.WriteHeader(http.StatusTeapot)
			io.WriteString(w, "short and stout")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-App", name)
		json.NewEncoder(w).Encode(map[string]any{
			"app": name, "method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery, "body": string(body),
			"caller": r.Header.Get("dapr-caller-app-id"), "callee": r.Header.Get("dapr-callee-app-id"),
			"token": r.Header.Get("dapr-api-token"), "auth": r.Header.Get("Authorization"),
			"forwarded": r.Header.Get("Forwarded"), "xff": r.Header.Get("X-Forwarded-For"),
			"custom": r.Header.Get("X-Custom"), "traceparent": r.Header.Get("traceparent"),
		})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestInvoke: HTTP and the Go SDK reach an app by its id with the verb,
// path, query, body and Dapr's headers right, and without the caller's
// credentials.
func TestInvoke(t *testing.T) {
	g := sharedGateway(t)
	ctx := t.Context()
	app := echoApp(t, "orders")
	a := g.admin()
	if _, err := a.CreateTenant(ctx, "inv-a"); err != nil {
		t.Fatal(err)
	}
	a.CreateApp(ctx, "inv-a", "orders", app.URL)
	a.CreateApp(ctx, "inv-a", "frontend", "")
	tok, err := a.IssueToken(ctx, "inv-a", "frontend", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	decode := func(b []byte) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("app answer %q: %v", b, err)
		}
		return m
	}

	st, hdr, body := do(t, g, tok.Text, "PUT", "/v1.0/invoke/orders/method/items/42?expand=true&x=%2F",
		strings.NewReader(`{"qty":1}`), "X-Custom", "yes", "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if st != 200 || hdr.Get("X-App") != "orders" {
		t.Fatalf("invoke: %d %v %s", st, hdr, body)
	}
	m := decode(body)
	for k, want := range map[string]string{"method": "PUT", "path": "/items/42", "query": "expand=true&x=%2F", "body": `{"qty":1}`,
		"caller": "frontend", "callee": "orders", "token": "", "auth": "", "custom": "yes",
		"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"} {
		if m[k] != want {
			t.Errorf("%s = %q, want %q", k, m[k], want)
		}
	}
	if !strings.HasPrefix(m["forwarded"].(string), "for=127.0.0.1") || m["xff"] != "127.0.0.1" {
		t.Errorf("forwarding headers: %v %v", m["forwarded"], m["xff"])
	}

	// The dapr-app-id header form: the path is the method.
	st, _, body = do(t, g, tok.Text, "GET", "/status?full=1", nil, "dapr-app-id", "orders")
	if m := decode(body); st != 200 || m["path"] != "/status" || m["query"] != "full=1" || m["method"] != "GET" {
		t.Fatalf("dapr-app-id form: %d %s", st, body)
	}
	// The app's own status passes through.
	if st, _, body := do(t, g, tok.Text, "POST", "/v1.0/invoke/orders/method/teapot", nil); st != http.StatusTeapot || string(body) != "short and stout" {
		t.Fatalf("upstream status: %d %s", st, body)
	}
	// Unknown app: daprd's 500 ERR_DIRECT_INVOKE.
	if st, _, body := do(t, g, tok.Text, "GET", "/v1.0/invoke/nobody/method/x", nil); st != 500 || !strings.Contains(string(body), "ERR_DIRECT_INVOKE") {
		t.Fatalf("unknown app: %d %s", st, body)
	}

	// The Go SDK over gRPC.
	c := goClient(t, g, tok.Text)
	out, err := c.InvokeMethodWithContent(ctx, "orders", "items/7", "post", &dapr.DataContent{ContentType: "application/json", Data: []byte(`{"a":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if m := decode(out); m["method"] != "POST" || m["path"] != "/items/7" || m["body"] != `{"a":1}` || m["caller"] != "frontend" || m["token"] != "" {
		t.Fatalf("SDK invoke: %s", out)
	}
	_, err = c.InvokeMethod(ctx, "orders", "teapot", "get")
	if status.Code(err) == codes.OK {
		t.Fatal("an app's 418 came back as success over gRPC")
	}

	// An app registered with an app token gets that token, and only that.
	secured := echoApp(t, "secured")
	if _, err := a.CreateApp(ctx, "inv-a", "secured", secured.URL, "app-secret"); err != nil {
		t.Fatal(err)
	}
	st, _, body = do(t, g, tok.Text, "GET", "/v1.0/invoke/secured/method/x", nil)
	if m := decode(body); st != 200 || m["token"] != "app-secret" {
		t.Fatalf("app token: %d %s", st, body)
	}
}

// TestInvokeTenantIsolation: an app id resolves only inside the caller's
// tenant, even when another tenant has an app of the same name.
func TestInvokeTenantIsolation(t *testing.T) {
	g := sharedGateway(t)
	ctx := t.Context()
	appA := echoApp(t, "tenant-a-orders")
	a := g.admin()
	for _, ten := range []string{"iso-inv-a", "iso-inv-b"} {
		if _, err := a.CreateTenant(ctx, ten); err != nil {
			t.Fatal(err)
		}
		a.CreateApp(ctx, ten, "caller", "")
	}
	a.CreateApp(ctx, "iso-inv-a", "orders", appA.URL)
	tokB, _ := a.IssueToken(ctx, "iso-inv-b", "caller", time.Hour)
	st, _, body := do(t, g, tokB.Text, "GET", "/v1.0/invoke/orders/method/x", nil)
	if st != 500 || strings.Contains(string(body), "tenant-a-orders") {
		t.Fatalf("tenant B reached tenant A's app: %d %s", st, body)
	}
	// With its own app of the same id, B reaches its own.
	appB := echoApp(t, "tenant-b-orders")
	a.CreateApp(ctx, "iso-inv-b", "orders", appB.URL)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		st, _, body = do(t, g, tokB.Text, "GET", "/v1.0/invoke/orders/method/x", nil)
		if st == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tenant B's own app: %d %s", st, body)
		}
	}
	if !strings.Contains(string(body), "tenant-b-orders") {
		t.Fatalf("tenant B reached %s", body)
	}
}

// TestInvokeLargeBody streams a 100 MiB body through the gateway and checks
// that the gateway's peak memory grows by far less than the body: the body
// is streamed, never buffered.
func TestInvokeLargeBody(t *testing.T) {
	g := sharedGateway(t)
	ctx := t.Context()
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	}))
	defer sink.Close()
	a := g.admin()
	a.CreateTenant(ctx, "big")
	a.CreateApp(ctx, "big", "sink", sink.URL)
	a.CreateApp(ctx, "big", "src", "")
	tok, _ := a.IssueToken(ctx, "big", "src", time.Hour)
	const size = 100 << 20
	before, peak := memoryOf(t, g)
	req, _ := http.NewRequestWithContext(ctx, "POST", g.httpURL()+"/v1.0/invoke/sink/method/upload", io.LimitReader(zeros{}, size))
	req.ContentLength = size
	req.Header.Set("dapr-api-token", tok.Text)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != fmt.Sprint(size) {
		t.Fatalf("large body: %d %s", resp.StatusCode, b)
	}
	if grew := peak() - before; grew > 32<<20 {
		t.Fatalf("the gateway's peak memory grew by %d MiB while a %d MiB body went through", grew>>20, size>>20)
	} else {
		t.Logf("peak memory grew by %.1f MiB for a %d MiB body", float64(grew)/(1<<20), size>>20)
	}
}

// memoryOf returns g's resident memory now, and a function that reads its
// peak resident memory since now (Linux: /proc/PID/status, with the peak
// reset through clear_refs).
func memoryOf(t *testing.T, g *gateway) (int64, func() int64) {
	t.Helper()
	pid := g.cmd.Process.Pid
	read := func(field string) int64 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatalf("reading the gateway's memory: %v", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, field+":"); ok {
				var kb int64
				fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
				return kb << 10
			}
		}
		t.Fatalf("no %s in /proc/%d/status", field, pid)
		return 0
	}
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Fatalf("resetting the gateway's peak memory: %v", err)
	}
	return read("VmRSS"), func() int64 { return read("VmHWM") }
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
