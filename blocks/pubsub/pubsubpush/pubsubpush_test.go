package pubsubpush

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/tenants"
)

// direct is a Channel to an app's one endpoint, with no balancing.
type direct struct{}

func (direct) Do(req *http.Request, app tenants.App) (*http.Response, error) {
	u, err := req.URL.Parse(app.Endpoint + req.URL.Path)
	if err != nil {
		return nil, err
	}
	req.URL = u
	return http.DefaultClient.Do(req)
}

func appAt(url string) tenants.App { return tenants.App{ID: "app", Endpoint: url} }

func TestPush(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   pubsub.Verdict
	}{
		{"empty 200", 200, "", pubsub.Success},
		{"204", 204, "", pubsub.Success},
		{"SUCCESS", 200, `{"status":"SUCCESS"}`, pubsub.Success},
		{"lowercase success", 200, `{"status":"success"}`, pubsub.Success},
		{"RETRY", 200, `{"status":"RETRY"}`, pubsub.Retry},
		{"DROP", 200, `{"status":"DROP"}`, pubsub.Drop},
		{"unknown word retries", 200, `{"status":"MAYBE"}`, pubsub.Retry},
		{"non-JSON 2xx is success", 200, `ok`, pubsub.Success},
		{"404 drops", 404, ``, pubsub.Drop},
		{"500 retries", 500, ``, pubsub.Retry},
		{"400 retries", 400, `{"status":"SUCCESS"}`, pubsub.Retry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotType, gotBody string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotType = r.Header.Get("Content-Type")
				b, _ := io.ReadAll(r.Body)
				gotBody = string(b)
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			v, _ := New(direct{}, time.Second).Push(t.Context(), Request{App: appAt(srv.URL), Path: "/orders", Body: []byte(`{"id":"1"}`), ContentType: "application/cloudevents+json"})
			if v != tt.want {
				t.Fatalf("verdict %s, want %s", v, tt.want)
			}
			if gotType != "application/cloudevents+json" || gotBody != `{"id":"1"}` {
				t.Fatalf("app got %q %q", gotType, gotBody)
			}
		})
	}
}

func TestPushUnreachableRetries(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	v, err := New(direct{}, time.Second).Push(t.Context(), Request{App: appAt(url), ContentType: "text/plain"})
	if v != pubsub.Retry || err == nil {
		t.Fatalf("verdict %s err %v, want Retry with an error", v, err)
	}
}

func TestPushBulk(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"statuses":[{"entryId":"a","status":"SUCCESS"},{"entryId":"b","status":"DROP"},{"entryId":"zzz","status":"SUCCESS"}]}`)
	}))
	defer srv.Close()
	got, err := New(direct{}, time.Second).PushBulk(t.Context(), Request{App: appAt(srv.URL), ContentType: "application/json"}, []string{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if got["a"] != pubsub.Success || got["b"] != pubsub.Drop || got["c"] != pubsub.Retry || len(got) != 3 {
		t.Fatalf("verdicts %v", got)
	}
}
