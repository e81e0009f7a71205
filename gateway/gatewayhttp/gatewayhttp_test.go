package gatewayhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/blockgate/blockgate/gateway/gatewaytest"
)

func newTestServer(t testing.TB) *httptest.Server {
	t.Helper()
	svcs := gatewaytest.NewServices()
	h := New(Config{
		State:        svcs.State,
		Metadata:     svcs.Metadata,
		Auth:         gatewaytest.Auth{},
		JWKS:         func() []byte { return []byte(`{"keys":[]}`) },
		Ready:        func(context.Context) error { return nil },
		MaxBodyBytes: 64 << 10,
		Logger:       svcs.Logger,
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func call(t testing.TB, srv *httptest.Server, token, method, path string, body []byte, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("dapr-api-token", token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

func errorCode(t testing.TB, r response) string {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("status %d body %q is not a Dapr error body: %v", r.status, r.body, err)
	}
	return e.ErrorCode
}

func TestStateHTTP(t *testing.T) {
	srv := newTestServer(t)
	const tok = "acme/app1"
	tests := []struct {
		name     string
		token    string
		method   string
		path     string
		body     string
		hdr      []string
		status   int
		code     string // expected errorCode, if an error
		wantBody string
	}{
		{name: "no token", method: "GET", path: "/v1.0/state/statestore/k", status: 401, code: "ERR_UNAUTHENTICATED"},
		{name: "bad token", token: "garbage", method: "GET", path: "/v1.0/state/statestore/k", status: 401, code: "ERR_UNAUTHENTICATED"},
		{name: "healthz needs no token", method: "GET", path: "/v1.0/healthz", status: 204},
		{name: "save", token: tok, method: "POST", path: "/v1.0/state/statestore", body: `[{"key":"k","value":{"a":1}}]`, status: 204},
		{name: "get", token: tok, method: "GET", path: "/v1.0/state/statestore/k", status: 200, wantBody: `{"a":1}`},
		{name: "get missing", token: tok, method: "GET", path: "/v1.0/state/statestore/nope", status: 204},
		{name: "unknown store", token: tok, method: "GET", path: "/v1.0/state/other/k", status: 400, code: "ERR_STATE_STORE_NOT_FOUND"},
		{name: "malformed save", token: tok, method: "POST", path: "/v1.0/state/statestore", body: `{"key":`, status: 400, code: "ERR_MALFORMED_REQUEST"},
		{name: "empty key", token: tok, method: "POST", path: "/v1.0/state/statestore", body: `[{"key":"","value":1}]`, status: 400, code: "ERR_MALFORMED_REQUEST"},
		{name: "key with ||", token: tok, method: "POST", path: "/v1.0/state/statestore", body: `[{"key":"a||b","value":1}]`, status: 400, code: "ERR_MALFORMED_REQUEST"},
		{name: "bad concurrency", token: tok, method: "POST", path: "/v1.0/state/statestore", body: `[{"key":"x","value":1,"options":{"concurrency":"yolo"}}]`, status: 400, code: "ERR_MALFORMED_REQUEST"},
		{name: "bad ttl", token: tok, method: "POST", path: "/v1.0/state/statestore", body: `[{"key":"x","value":1,"metadata":{"ttlInSeconds":"soon"}}]`, status: 400, code: "ERR_MALFORMED_REQUEST"},
		{name: "stale etag", token: tok, method: "POST", path: "/v1.0/state/statestore", body: `[{"key":"k","value":2,"etag":"stale"}]`, status: 409, code: "ERR_STATE_SAVE"},
		{name: "value unchanged after stale etag", token: tok, method: "GET", path: "/v1.0/state/statestore/k", status: 200, wantBody: `{"a":1}`},
		{name: "delete stale etag", token: tok, method: "DELETE", path: "/v1.0/state/statestore/k", hdr: []string{"If-Match", "stale"}, status: 409, code: "ERR_STATE_DELETE"},
		{name: "unknown tx op", token: tok, method: "POST", path: "/v1.0/state/statestore/transaction", body: `{"operations":[{"operation":"merge","request":{"key":"k"}}]}`, status: 400, code: "ERR_NOT_SUPPORTED_STATE_OPERATION"},
		{name: "bad query", token: tok, method: "POST", path: "/v1.0-alpha1/state/statestore/query", body: `{"filter":{"LIKE":{"a":1}}}`, status: 400, code: "ERR_MALFORMED_REQUEST"},
		{name: "other tenant sees nothing", token: "other/app1", method: "GET", path: "/v1.0/state/statestore/k", status: 204},
		{name: "other app sees nothing", token: "acme/app2", method: "GET", path: "/v1.0/state/statestore/k", status: 204},
		{name: "unknown route", token: tok, method: "GET", path: "/v1.0/nothing", status: 404, code: "ERR_NOT_FOUND"},
		{name: "body too large", token: tok, method: "POST", path: "/v1.0/state/statestore", body: `[{"key":"big","value":"` + strings.Repeat("x", 70<<10) + `"}]`, status: 413, code: "ERR_BODY_TOO_LARGE"},
		{name: "delete", token: tok, method: "DELETE", path: "/v1.0/state/statestore/k", status: 204},
		{name: "gone", token: tok, method: "GET", path: "/v1.0/state/statestore/k", status: 204},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, srv, tt.token, tt.method, tt.path, []byte(tt.body), tt.hdr...)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.status, r.body)
			}
			if tt.code != "" {
				if got := errorCode(t, r); got != tt.code {
					t.Fatalf("errorCode %q, want %q", got, tt.code)
				}
			}
			if tt.wantBody != "" && string(r.body) != tt.wantBody {
				t.Fatalf("body %q, want %q", r.body, tt.wantBody)
			}
		})
	}
}

func TestStateKeysInPath(t *testing.T) {
	srv := newTestServer(t)
	const tok = "acme/app1"
	for _, key := range []string{"a/b", "a b", "100%", "ünï", "a?b", "a#b", "a+b"} {
		t.Run(key, func(t *testing.T) {
			body, _ := json.Marshal([]map[string]any{{"key": key, "value": key}})
			if r := call(t, srv, tok, "POST", "/v1.0/state/statestore", body); r.status != 204 {
				t.Fatalf("save: %d %s", r.status, r.body)
			}
			r := call(t, srv, tok, "GET", "/v1.0/state/statestore/"+escapeKey(key), nil)
			want, _ := json.Marshal(key)
			if r.status != 200 || string(r.body) != string(want) {
				t.Fatalf("get %q: %d %s", key, r.status, r.body)
			}
		})
	}
	// Like daprd, a literal '+' in the path reads as a space.
	call(t, srv, tok, "POST", "/v1.0/state/statestore", []byte(`[{"key":"x y","value":1}]`))
	if r := call(t, srv, tok, "GET", "/v1.0/state/statestore/x+y", nil); r.status != 200 {
		t.Fatalf("x+y should read key %q: %d", "x y", r.status)
	}
}

func TestBulkGetAndQuery(t *testing.T) {
	srv := newTestServer(t)
	const tok = "acme/app1"
	call(t, srv, tok, "POST", "/v1.0/state/statestore", []byte(`[
		{"key":"p1","value":{"city":"Lisbon","n":1}},
		{"key":"p2","value":{"city":"Porto","n":2}},
		{"key":"p3","value":{"city":"Lisbon","n":3}}]`))
	r := call(t, srv, tok, "POST", "/v1.0/state/statestore/bulk", []byte(`{"keys":["p1","missing"]}`))
	var items []bulkItem
	if err := json.Unmarshal(r.body, &items); err != nil || len(items) != 2 {
		t.Fatalf("bulk: %d %s", r.status, r.body)
	}
	if items[0].Key != "p1" || string(items[0].Data) != `{"city":"Lisbon","n":1}` || items[0].ETag == "" {
		t.Fatalf("bulk p1: %+v", items[0])
	}
	if items[1].Key != "missing" || items[1].Data != nil {
		t.Fatalf("bulk missing: %+v", items[1])
	}

	r = call(t, srv, tok, "POST", "/v1.0-alpha1/state/statestore/query",
		[]byte(`{"filter":{"EQ":{"city":"Lisbon"}},"sort":[{"key":"n","order":"DESC"}],"page":{"limit":1}}`))
	var page struct {
		Results []struct {
			Key string `json:"key"`
		} `json:"results"`
		Token string `json:"token"`
	}
	if err := json.Unmarshal(r.body, &page); err != nil || len(page.Results) != 1 || page.Results[0].Key != "p3" || page.Token == "" {
		t.Fatalf("query page 1: %d %s", r.status, r.body)
	}
	r = call(t, srv, tok, "POST", "/v1.0-alpha1/state/statestore/query",
		[]byte(`{"filter":{"EQ":{"city":"Lisbon"}},"sort":[{"key":"n","order":"DESC"}],"page":{"limit":1,"token":"`+page.Token+`"}}`))
	if err := json.Unmarshal(r.body, &page); err != nil || len(page.Results) != 1 || page.Results[0].Key != "p1" {
		t.Fatalf("query page 2: %d %s", r.status, r.body)
	}
}

// escapeKey escapes a key for the path as daprd expects: '+' as %2B.
func escapeKey(key string) string {
	return strings.ReplaceAll(url.PathEscape(key), "+", "%2B")
}

// FuzzStateKey sends arbitrary keys through every keyed route: the gateway
// answers 2xx or a 4xx with a Dapr error body, never a 5xx.
func FuzzStateKey(f *testing.F) {
	for _, s := range []string{"k", "", "a||b", "%", "a/b", "..", "\x00", "ü", strings.Repeat("k", 2000)} {
		f.Add(s)
	}
	srv := newTestServer(f)
	f.Fuzz(func(t *testing.T, key string) {
		body, _ := json.Marshal([]map[string]any{{"key": key, "value": 1}})
		for _, r := range []response{
			call(t, srv, "acme/app1", "POST", "/v1.0/state/statestore", body),
			call(t, srv, "acme/app1", "GET", "/v1.0/state/statestore/"+url.PathEscape(key), nil),
			call(t, srv, "acme/app1", "DELETE", "/v1.0/state/statestore/"+url.PathEscape(key), nil),
		} {
			checkNoServerError(t, r)
		}
	})
}

// FuzzStateBodies sends arbitrary bodies to every state route that takes one.
func FuzzStateBodies(f *testing.F) {
	for _, s := range []string{`[{"key":"k","value":1}]`, `{"keys":["a"]}`, `{"operations":[]}`,
		`{"filter":{"EQ":{"a":1}}}`, `null`, `[]`, `{}`, `[{"key":1}]`, `{"filter":{"AND":[]}}`,
		`{"page":{"limit":-1}}`, `[{"key":"k","etag":"","options":{"concurrency":"first-write"}}]`} {
		f.Add(s)
	}
	srv := newTestServer(f)
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range []string{"/v1.0/state/statestore", "/v1.0/state/statestore/bulk",
			"/v1.0/state/statestore/transaction", "/v1.0-alpha1/state/statestore/query"} {
			checkNoServerError(t, call(t, srv, "acme/app1", "POST", path, []byte(body)))
		}
	})
}

func checkNoServerError(t *testing.T, r response) {
	t.Helper()
	if r.status >= 500 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if r.status >= 400 {
		errorCode(t, r)
	}
}
