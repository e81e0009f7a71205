package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestSecurityTable sends bad input of every kind a hostile or careless
// client can produce — forged, expired and revoked credentials, another
// tenant's credentials, oversized headers and bodies, malformed CSRs and
// resources, path traversal in names — and expects each to be answered
// with a clear 4xx (or the matching gRPC code) carrying an error code, never
// a 5xx or a panic. The gateway must still serve afterwards.
func TestSecurityTable(t *testing.T) {
	g := sharedGateway(t)
	ctx := t.Context()
	a := g.admin()
	tok := newTenant(t, g, "sec-a", "app", stateComponent, pubsubComponent)
	newTenant(t, g, "sec-b", "app", stateComponent)
	revoked, err := a.IssueToken(ctx, "sec-a", "app", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.RevokeToken(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	tenantAdmin, err := a.IssueAdminToken(ctx, "sec-a", "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, claims := decodeToken(t, tok)
	weakKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	weakCSR, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, weakKey)
	weakCSRPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: weakCSR}))
	adminURL := g.env["BLOCKGATE_ADMIN_URL"]
	platform := g.env["BLOCKGATE_ADMIN_TOKEN"]

	type req struct {
		method, url, body string
		header            []string
	}
	api := func(method, path, body string, hdr ...string) req {
		return req{method, g.httpURL() + path, body, hdr}
	}
	adm := func(token, method, path, body string) req {
		return req{method, adminURL + path, body, []string{"Authorization", "Bearer " + token}}
	}
	withTok := func(token string) []string { return []string{"dapr-api-token", token} }
	huge := strings.Repeat("a", 2<<20)

	tests := []struct {
		name string
		req  req
		want int // 0: any 4xx
	}{
		{"no credential", api("GET", "/v1.0/state/statestore/k", ""), 401},
		{"garbage token", api("GET", "/v1.0/state/statestore/k", "", withTok("garbage")...), 401},
		{"alg none", api("GET", "/v1.0/state/statestore/k", "", withTok(noneToken(t, claims))...), 401},
		{"expiry moved forward, signature kept", api("GET", "/v1.0/state/statestore/k", "", withTok(swapPayload(t, tok, func(c map[string]any) {
			c["exp"] = time.Now().Add(24 * 365 * time.Hour).Unix()
		}))...), 401},
		{"already expired claims", api("GET", "/v1.0/state/statestore/k", "", withTok(swapPayload(t, tok, func(c map[string]any) {
			c["exp"] = time.Now().Add(-time.Hour).Unix()
		}))...), 401},
		{"wrong audience", api("GET", "/v1.0/state/statestore/k", "", withTok(swapPayload(t, tok, func(c map[string]any) { c["aud"] = "someone-else" }))...), 401},
		{"other tenant named in the claims", api("GET", "/v1.0/state/statestore/k", "", withTok(swapPayload(t, tok, func(c map[string]any) { c["tenant"] = "sec-b" }))...), 401},
		{"revoked token", api("GET", "/v1.0/state/statestore/k", "", withTok(revoked.Text)...), 401},
		{"empty bearer", api("GET", "/v1.0/state/statestore/k", "", "Authorization", "Bearer "), 401},
		{"tenant admin token on the Dapr API", api("GET", "/v1.0/state/statestore/k", "", withTok(tenantAdmin.Text)...), 401},
		{"app token on the admin API", adm(tok, "GET", "/v1/tenants/sec-a/apps", ""), 401},
		{"tenant admin on another tenant", adm(tenantAdmin.Text, "GET", "/v1/tenants/sec-b/apps", ""), 403},
		{"tenant admin on a platform route", adm(tenantAdmin.Text, "PUT", "/v1/tenants/sec-a/limits", `{"requestsPerSecond": 1e9}`), 403},
		{"oversized header", api("GET", "/v1.0/state/statestore/k", "", "X-Big", huge), 431},
		{"oversized state body", api("POST", "/v1.0/state/statestore", `[{"key":"k","value":"`+huge+huge+`"}]`, withTok(tok)...), 413},
		{"malformed state JSON", api("POST", "/v1.0/state/statestore", `[{"key":`, withTok(tok)...), 400},
		{"state key with the prefix separator", api("POST", "/v1.0/state/statestore", `[{"key":"a||b","value":1}]`, withTok(tok)...), 400},
		{"path traversal in the store name", api("GET", "/v1.0/state/..%2F..%2Fetc/k", "", withTok(tok)...), 0},
		{"unknown state store", api("GET", "/v1.0/state/nostore/k", "", withTok(tok)...), 0},
		{"bad query filter", api("POST", "/v1.0-alpha1/state/statestore/query", `{"filter":{"LIKE":{"a":"b"}}}`, withTok(tok)...), 400},
		{"transaction with an unknown operation", api("POST", "/v1.0/state/statestore/transaction", `{"operations":[{"operation":"drop","request":{"key":"k"}}]}`, withTok(tok)...), 400},
		{"path traversal in the app id", api("GET", "/v1.0/invoke/..%2Fadmin/method/x", "", withTok(tok)...), 400},
		{"app id with a NUL", api("GET", "/v1.0/invoke/a%00b/method/x", "", withTok(tok)...), 400},
		{"unknown pub/sub", api("POST", "/v1.0/publish/nopubsub/t", `{}`, withTok(tok)...), 0},
		{"malformed bulk publish", api("POST", "/v1.0-alpha1/publish/bulk/pubsub/t", `{"entries":`, withTok(tok)...), 400},
		{"malformed CSR", api("POST", "/v1.0-alpha1/identity/svid", `{"csr":"-----BEGIN CERTIFICATE REQUEST-----\nZm9v\n-----END CERTIFICATE REQUEST-----\n"}`, withTok(tok)...), 400},
		{"CSR with a 1024-bit RSA key", api("POST", "/v1.0-alpha1/identity/svid", `{"csr":`+jsonString(weakCSRPEM)+`}`, withTok(tok)...), 400},
		{"SVID lifetime of a year", api("POST", "/v1.0-alpha1/identity/svid", `{"csr":`+jsonString(weakCSRPEM)+`,"ttlSeconds":31536000}`, withTok(tok)...), 400},
		{"CSR without a token", api("POST", "/v1.0-alpha1/identity/svid", `{"csr":"x"}`), 401},
		{"tenant name with traversal", adm(platform, "POST", "/v1/tenants", `{"name":"../etc"}`), 400},
		{"component name with traversal", adm(platform, "PUT", "/v1/tenants/sec-a/components", "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: ../../x}\nspec: {type: state.postgresql, version: v1}"), 400},
		{"app endpoint on file://", adm(platform, "PUT", "/v1/tenants/sec-a/apps", `{"apiVersion":"dapr.io/v1alpha1","kind":"HTTPEndpoint","metadata":{"name":"x"},"spec":{"baseUrl":"file:///etc/passwd"}}`), 400},
		{"federation over plain http", adm(platform, "PUT", "/v1/tenants/sec-a/federations", "apiVersion: blockgate.io/v1alpha1\nkind: FederatedIssuer\nmetadata: {name: f}\nspec: {issuer: 'http://evil.example', audience: a}"), 400},
		{"access policy with an unknown verb", adm(platform, "PUT", "/v1/tenants/sec-a/access-policies", "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: c}\nspec:\n  accessControl:\n    policies:\n    - appId: x\n      operations: [{name: /a, httpVerb: [FETCH], action: allow}]"), 400},
		{"subscription with a route outside the app", adm(platform, "PUT", "/v1/tenants/sec-a/subscriptions", "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: s}\nspec: {pubsubname: pubsub, topic: t, routes: {default: 'http://evil.example/x'}}"), 400},
		{"SVID for an app of another tenant", adm(tenantAdmin.Text, "POST", "/v1/tenants/sec-b/apps/app/svid", `{"csr":"x"}`), 403},
		{"limits that are not numbers", adm(platform, "PUT", "/v1/tenants/sec-a/limits", `{"requestsPerSecond":"fast"}`), 400},
	}
	if len(tests) < 30 {
		t.Fatalf("the table has %d cases; keep at least 30", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := http.NewRequestWithContext(ctx, tt.req.method, tt.req.url, strings.NewReader(tt.req.body))
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i+1 < len(tt.req.header); i += 2 {
				r.Header.Set(tt.req.header[i], tt.req.header[i+1])
			}
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case tt.want != 0 && resp.StatusCode != tt.want:
				t.Fatalf("%d %s, want %d", resp.StatusCode, body, tt.want)
			case resp.StatusCode < 400 || resp.StatusCode > 499:
				t.Fatalf("%d %s, want a 4xx", resp.StatusCode, body)
			case resp.StatusCode != 431 && !bytes.Contains(body, []byte(`"errorCode":"ERR_`)):
				t.Fatalf("%d %s: no Dapr error code", resp.StatusCode, body)
			}
		})
	}

	// The same over gRPC: clear codes, never Internal or Unknown.
	conn, err := grpc.NewClient(g.grpcAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dc := runtimev1.NewDaprClient(conn)
	authed := metadata.AppendToOutgoingContext(ctx, "dapr-api-token", tok)
	grpcTests := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"no token", func() error {
			_, err := dc.GetState(ctx, &runtimev1.GetStateRequest{StoreName: "statestore", Key: "k"})
			return err
		}, codes.Unauthenticated},
		{"revoked token", func() error {
			_, err := dc.GetState(metadata.AppendToOutgoingContext(ctx, "dapr-api-token", revoked.Text), &runtimev1.GetStateRequest{StoreName: "statestore", Key: "k"})
			return err
		}, codes.Unauthenticated},
		{"unknown store", func() error {
			_, err := dc.GetState(authed, &runtimev1.GetStateRequest{StoreName: "../etc", Key: "k"})
			return err
		}, codes.InvalidArgument},
		{"invoke without an app id", func() error {
			_, err := dc.InvokeService(authed, &runtimev1.InvokeServiceRequest{Message: &commonv1.InvokeRequest{Method: "x"}})
			return err
		}, codes.InvalidArgument},
		{"invoke without a message", func() error {
			_, err := dc.InvokeService(authed, &runtimev1.InvokeServiceRequest{Id: "app"})
			return err
		}, codes.InvalidArgument},
		{"Sentry with a garbage CSR", func() error {
			_, err := sentryv1.NewCAClient(conn).SignCertificate(ctx, &sentryv1.SignCertificateRequest{Token: tok, CertificateSigningRequest: []byte("nope")})
			return err
		}, codes.InvalidArgument},
		{"Sentry for another app id", func() error {
			_, err := sentryv1.NewCAClient(conn).SignCertificate(ctx, &sentryv1.SignCertificateRequest{Id: "root", Token: tok, CertificateSigningRequest: []byte(weakCSRPEM)})
			return err
		}, codes.PermissionDenied},
		{"message over the size limit", func() error {
			_, err := dc.SaveState(authed, &runtimev1.SaveStateRequest{StoreName: "statestore",
				States: []*commonv1.StateItem{{Key: "k", Value: []byte(huge + huge + huge)}}})
			return err
		}, codes.ResourceExhausted},
	}
	for _, tt := range grpcTests {
		t.Run("grpc "+tt.name, func(t *testing.T) {
			err := tt.call()
			if c := status.Code(err); c != tt.want {
				t.Fatalf("%v, want %s", err, tt.want)
			}
		})
	}

	// Still serving, and no panic was logged.
	if st, _, _ := do(t, g, tok, "GET", "/v1.0/state/statestore/k", nil); st != 204 {
		t.Fatalf("after the table: %d", st)
	}
	if strings.Contains(g.logs.String(), "panic") {
		t.Fatal("the gateway logged a panic")
	}
}

// noneToken is an unsigned token with the given claims.
func noneToken(t *testing.T, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	c, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(c) + "."
}
