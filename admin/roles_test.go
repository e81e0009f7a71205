package admin

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/blockgate/blockgate/auth"
	"github.com/blockgate/blockgate/auth/authjwt"
	"github.com/blockgate/blockgate/internal/pgtest"
	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const platformToken = "bgadm_test-platform-token"

// env is an admin API over a fresh database, with tenants acme and globex,
// each with an app orders, a component statestore and an app token, and a
// tenant admin token for acme.
type env struct {
	t        *testing.T
	pool     *pgxpool.Pool
	svc      *Service
	h        *handler
	e        *echo.Echo
	srv      *httptest.Server
	authn    *auth.Authenticator
	jwt      *authjwt.Authority
	failures prometheus.Counter

	acmeAdmin      IssuedAdminToken // a tenant admin of acme
	globexAdmin    IssuedAdminToken
	acmeAppToken   IssuedToken
	globexAppToken IssuedToken
}

const (
	componentDoc    = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: statestore}\nspec: {type: state.in-memory, version: v1}\n"
	subscriptionDoc = "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: orders-sub}\nspec: {pubsubname: pubsub, topic: orders, routes: {default: /orders}}\n"
	resiliencyDoc   = "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: res}\nspec: {policies: {timeouts: {short: 5s}}, targets: {apps: {orders: {timeout: short}}}}\n"
	// appSecret is sent in a request body; it must never reach the audit log.
	appSecret = "app-endpoint-secret-c0ffee"
)

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := t.Context()
	logger := slog.New(slog.DiscardHandler)
	pool := pgtest.New(t)
	reg := tenantspg.New(pool, logger)
	a := authjwt.New(reg, authjwt.Config{}, logger)
	if err := a.Load(ctx); err != nil {
		t.Fatal(err)
	}
	authn := auth.NewAuthenticator(a, reg, logger, auth.Options{})
	ok := func(tenants.Component) error { return nil }
	svc := NewService(reg, a, authn, map[string]ComponentValidator{"state": ok, "pubsub": ok}, logger)
	failures := prometheus.NewCounter(prometheus.CounterOpts{Name: "audit_failures"})
	h, e := newHandler(svc, HandlerConfig{Token: platformToken, JWKS: a.JWKS, Logger: logger, AuditFailures: failures})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	ev := &env{t: t, pool: pool, svc: svc, h: h, e: e, srv: srv, authn: authn, jwt: a, failures: failures}

	for _, tenant := range []string{"acme", "globex"} {
		ev.must(platformToken, "POST", "/v1/tenants", `{"name":"`+tenant+`"}`, http.StatusCreated)
		ev.must(platformToken, "POST", "/v1/tenants/"+tenant+"/apps", `{"appId":"orders"}`, http.StatusCreated)
		ev.must(platformToken, "PUT", "/v1/tenants/"+tenant+"/components", componentDoc, http.StatusOK)
		ev.must(platformToken, "PUT", "/v1/tenants/"+tenant+"/apps/orders/instances/i1", `{"endpoint":"http://127.0.0.1:1"}`, http.StatusNoContent)
		ev.must(platformToken, "PUT", "/v1/tenants/"+tenant+"/subscriptions", subscriptionDoc, http.StatusOK)
		ev.must(platformToken, "PUT", "/v1/tenants/"+tenant+"/resiliencies", resiliencyDoc, http.StatusOK)
	}
	ev.decode(ev.must(platformToken, "POST", "/v1/tenants/acme/admin-tokens", `{"name":"alice","ttl":"720h"}`, http.StatusCreated), &ev.acmeAdmin)
	ev.decode(ev.must(platformToken, "POST", "/v1/tenants/globex/admin-tokens", `{"name":"gary"}`, http.StatusCreated), &ev.globexAdmin)
	ev.decode(ev.must(platformToken, "POST", "/v1/tenants/acme/tokens", `{"appId":"orders"}`, http.StatusCreated), &ev.acmeAppToken)
	ev.decode(ev.must(platformToken, "POST", "/v1/tenants/globex/tokens", `{"appId":"orders"}`, http.StatusCreated), &ev.globexAppToken)
	return ev
}

// do sends a request with token as bearer ("" for none) and returns the
// status and body.
func (ev *env) do(token, method, path, body string) (int, []byte) {
	ev.t.Helper()
	req, err := http.NewRequestWithContext(ev.t.Context(), method, ev.srv.URL+path, strings.NewReader(body))
	if err != nil {
		ev.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ev.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		ev.t.Fatal(err)
	}
	return resp.StatusCode, b
}

func (ev *env) must(token, method, path, body string, want int) []byte {
	ev.t.Helper()
	got, b := ev.do(token, method, path, body)
	if got != want {
		ev.t.Fatalf("%s %s = %d %s, want %d", method, path, got, b, want)
	}
	return b
}

func (ev *env) decode(b []byte, v any) {
	ev.t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		ev.t.Fatalf("decoding %s: %v", b, err)
	}
}

// errorCode returns the errorCode of a Dapr-style error body.
func errorCode(b []byte) string {
	var e struct {
		Code string `json:"errorCode"`
	}
	_ = json.Unmarshal(b, &e)
	return e.Code
}

// auditRows returns every audit entry, oldest first, read straight from the
// table with platform scope.
func (ev *env) auditRows() []tenantspg.AuditEntry {
	ev.t.Helper()
	entries, err := ev.svc.registry.AuditLog(ev.t.Context(), tenantspg.AuditQuery{})
	if err != nil {
		ev.t.Fatal(err)
	}
	for i, j := 0, len(entries)-1; i < j; i, j = i+1, j-1 {
		entries[i], entries[j] = entries[j], entries[i]
	}
	return entries
}

func TestPlatformAdminDoesEverything(t *testing.T) {
	ev := newEnv(t)
	p := platformToken
	steps := []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/v1/tenants", "", 200},
		{"POST", "/v1/tenants", `{"name":"initech"}`, 201},
		{"GET", "/v1/tenants/globex", "", 200},
		{"PUT", "/v1/tenants/globex/limits", `{"requestsPerSecond":100}`, 200},
		{"POST", "/v1/tenants/globex/apps", `{"appId":"billing"}`, 201},
		{"PUT", "/v1/tenants/globex/apps", "apiVersion: blockgate.io/v1alpha1\nkind: App\nmetadata: {name: shipping}\nspec: {instances: [{id: i1, endpoint: \"http://127.0.0.1:5\"}]}\n", 201},
		{"GET", "/v1/tenants/globex/apps", "", 200},
		{"PUT", "/v1/tenants/globex/apps/billing/instances/i1", `{"endpoint":"http://127.0.0.1:2"}`, 204},
		{"DELETE", "/v1/tenants/globex/apps/billing/instances/i1", "", 204},
		{"PUT", "/v1/tenants/globex/apps/billing/health", `{"path":"/healthz"}`, 204},
		{"POST", "/v1/tenants/globex/tokens", `{"appId":"billing"}`, 201},
		{"GET", "/v1/tenants/globex/tokens", "", 200},
		{"POST", "/v1/tokens/" + ev.globexAppToken.ID + "/revoke", "", 200},
		{"GET", "/v1/tenants/globex/components", "", 200},
		{"DELETE", "/v1/tenants/globex/components/statestore", "", 204},
		{"GET", "/v1/tenants/globex/subscriptions", "", 200},
		{"DELETE", "/v1/tenants/globex/subscriptions/orders-sub", "", 204},
		{"GET", "/v1/tenants/globex/resiliencies", "", 200},
		{"DELETE", "/v1/tenants/globex/resiliencies/res", "", 204},
		{"GET", "/v1/tenants/globex/admin-tokens", "", 200},
		{"POST", "/v1/admin-tokens/" + ev.globexAdmin.ID + "/revoke", "", 200},
		{"GET", "/v1/audit", "", 200},
		{"GET", "/v1/audit?tenant=globex&limit=5", "", 200},
		{"POST", "/v1/signing-keys/rotate", "", 200},
		{"DELETE", "/v1/tenants/globex/apps/billing", "", 204},
		{"DELETE", "/v1/tenants/globex", "", 204},
	}
	for _, s := range steps {
		ev.must(p, s.method, s.path, s.body, s.want)
	}
	var ts []tenants.Tenant
	ev.decode(ev.must(p, "GET", "/v1/tenants", "", 200), &ts)
	if len(ts) != 2 || ts[0].ID != "acme" || ts[1].ID != "initech" {
		t.Errorf("tenants after the run: %+v", ts)
	}
}

func TestTenantAdminManagesItsTenant(t *testing.T) {
	ev := newEnv(t)
	tok := ev.acmeAdmin.Text
	if !strings.HasPrefix(tok, AdminTokenPrefix) || ev.acmeAdmin.ID == "" || ev.acmeAdmin.Tenant != "acme" ||
		ev.acmeAdmin.Name != "alice" || ev.acmeAdmin.ExpiresAt.Sub(ev.acmeAdmin.IssuedAt) != 720*time.Hour {
		t.Fatalf("issued admin token: %+v", ev.acmeAdmin.AdminToken)
	}

	var issued IssuedToken
	ev.decode(ev.must(tok, "POST", "/v1/tenants/acme/tokens", `{"appId":"orders","ttl":"1h"}`, 201), &issued)
	steps := []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/v1/tenants/acme", "", 200},
		{"POST", "/v1/tenants/acme/apps", `{"appId":"billing","endpoint":"http://127.0.0.1:3","appToken":"` + appSecret + `"}`, 201},
		{"PUT", "/v1/tenants/acme/apps", "apiVersion: blockgate.io/v1alpha1\nkind: App\nmetadata: {name: shipping}\nspec: {instances: [{id: i1, endpoint: \"http://127.0.0.1:5\"}]}\n", 201},
		{"GET", "/v1/tenants/acme/apps", "", 200},
		{"PUT", "/v1/tenants/acme/apps/billing/instances/i2", `{"endpoint":"http://127.0.0.1:4"}`, 204},
		{"DELETE", "/v1/tenants/acme/apps/billing/instances/i2", "", 204},
		{"PUT", "/v1/tenants/acme/apps/billing/health", `{"path":"/healthz"}`, 204},
		{"GET", "/v1/tenants/acme/tokens", "", 200},
		{"POST", "/v1/tokens/" + issued.ID + "/revoke", "", 200},
		{"PUT", "/v1/tenants/acme/components", strings.Replace(componentDoc, "statestore", "cache", 1), 200},
		{"GET", "/v1/tenants/acme/components", "", 200},
		{"DELETE", "/v1/tenants/acme/components/cache", "", 204},
		{"PUT", "/v1/tenants/acme/subscriptions", subscriptionDoc, 200},
		{"GET", "/v1/tenants/acme/subscriptions", "", 200},
		{"DELETE", "/v1/tenants/acme/subscriptions/orders-sub", "", 204},
		{"PUT", "/v1/tenants/acme/resiliencies", resiliencyDoc, 200},
		{"GET", "/v1/tenants/acme/resiliencies", "", 200},
		{"DELETE", "/v1/tenants/acme/resiliencies/res", "", 204},
		{"DELETE", "/v1/tenants/acme/apps/billing", "", 204},
		{"GET", "/v1/tenants/acme/nothing-here", "", 404},
	}
	for _, s := range steps {
		ev.must(tok, s.method, s.path, s.body, s.want)
	}

	var ts []tenants.Tenant
	ev.decode(ev.must(tok, "GET", "/v1/tenants", "", 200), &ts)
	if len(ts) != 1 || ts[0].ID != "acme" {
		t.Errorf("a tenant admin lists %+v, want only its tenant", ts)
	}
	var log []tenantspg.AuditEntry
	ev.decode(ev.must(tok, "GET", "/v1/audit?limit=1000", "", 200), &log)
	if len(log) == 0 {
		t.Fatal("a tenant admin reads an empty audit log")
	}
	for _, e := range log {
		if e.Tenant != "acme" {
			t.Errorf("a tenant admin reads another log's entry: %+v", e)
		}
	}
	ev.decode(ev.must(tok, "GET", "/v1/audit?tenant=acme&limit=2", "", 200), &log)
	if len(log) != 2 {
		t.Errorf("limit=2 gave %d entries", len(log))
	}
}

// concretePath fills a route pattern's parameters for tenant, with
// existing objects where they matter.
func (ev *env) concretePath(rt *route, tenant string) string {
	path := rt.path
	switch rt.path {
	case "/v1/tokens/:id/revoke":
		id := ev.globexAppToken.ID
		if tenant == "acme" {
			id = ev.acmeAppToken.ID
		}
		path = strings.Replace(path, ":id", id, 1)
	case "/v1/admin-tokens/:id/revoke":
		id := ev.globexAdmin.ID
		if tenant == "acme" {
			id = ev.acmeAdmin.ID
		}
		path = strings.Replace(path, ":id", id, 1)
	case "/v1/audit":
		path += "?tenant=" + tenant
	}
	r := strings.NewReplacer(":tenant", tenant, ":app", "orders", ":name", "statestore", ":id", "i1")
	return r.Replace(path)
}

// TestTenantAdminRefused walks the whole route table: a tenant admin gets
// 403 ERR_FORBIDDEN on every route of another tenant and on every
// platform route, even for its own tenant, and nothing changes.
func TestTenantAdminRefused(t *testing.T) {
	ev := newEnv(t)
	tok := ev.acmeAdmin.Text
	before := ev.snapshot()
	n := 0
	for _, rt := range ev.h.routes {
		var tenant string
		switch rt.access {
		case public:
			continue
		case tenantScoped, anyAdmin:
			tenant = "globex" // another tenant
		case platformOnly:
			tenant = "acme" // its own
		}
		if rt.path == "/v1/tenants" && rt.access == anyAdmin {
			continue // names no tenant; narrowed instead (TestTenantAdminManagesItsTenant)
		}
		path := ev.concretePath(rt, tenant)
		t.Run(rt.method+" "+path, func(t *testing.T) {
			code, body := ev.do(tok, rt.method, path, "{}")
			if code != http.StatusForbidden || errorCode(body) != "ERR_FORBIDDEN" {
				t.Errorf("%s %s (%s) = %d %s, want 403 ERR_FORBIDDEN", rt.method, path, rt.access, code, body)
			}
		})
		n++
	}
	if n < 25 {
		t.Errorf("only %d routes checked", n)
	}
	if after := ev.snapshot(); after != before {
		t.Errorf("refused requests changed the registry:\n before %s\n after  %s", before, after)
	}
	ev.must(platformToken, "GET", "/v1/tenants/globex/apps", "", 200)
}

// snapshot summarises the registry, to see that refused requests changed
// nothing.
func (ev *env) snapshot() string {
	ev.t.Helper()
	var b strings.Builder
	for _, tenant := range []string{"acme", "globex"} {
		for _, what := range []string{"", "/apps", "/tokens", "/components", "/subscriptions", "/resiliencies", "/admin-tokens"} {
			_, body := ev.do(platformToken, "GET", "/v1/tenants/"+tenant+what, "")
			b.Write(body)
		}
	}
	_, body := ev.do(platformToken, "GET", "/v1/tenants", "")
	b.Write(body)
	return b.String()
}

func TestRefusedTokens(t *testing.T) {
	ev := newEnv(t)

	revoked := IssuedAdminToken{}
	ev.decode(ev.must(platformToken, "POST", "/v1/tenants/acme/admin-tokens", `{"name":"bob"}`, 201), &revoked)
	ev.must(revoked.Text, "GET", "/v1/tenants/acme/apps", "", 200)
	ev.must(platformToken, "POST", "/v1/admin-tokens/"+revoked.ID+"/revoke", "", 200)

	expiring := IssuedAdminToken{}
	ev.decode(ev.must(platformToken, "POST", "/v1/tenants/acme/admin-tokens", `{"ttl":"1m"}`, 201), &expiring)
	ev.must(expiring.Text, "GET", "/v1/tenants/acme/apps", "", 200)

	later := time.Now().Add(2 * time.Minute)
	ev.svc.now = func() time.Time { return later }

	tests := []struct {
		name, token string
	}{
		{"none", ""},
		{"revoked tenant admin token", revoked.Text},
		{"expired tenant admin token", expiring.Text},
		{"unknown tenant admin token", AdminTokenPrefix + strings.Repeat("0", 64)},
		{"app token", ev.acmeAppToken.Text},
		{"other tenant's app token", ev.globexAppToken.Text},
		{"platform token with a suffix", platformToken + "x"},
		{"token id instead of the token", ev.acmeAdmin.ID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, r := range []struct{ method, path string }{
				{"GET", "/v1/tenants/acme/apps"},
				{"POST", "/v1/tenants/acme/apps"},
				{"GET", "/v1/tenants"},
				{"POST", "/v1/signing-keys/rotate"},
			} {
				code, body := ev.do(tt.token, r.method, r.path, `{"appId":"x"}`)
				if code != http.StatusUnauthorized || errorCode(body) != "ERR_UNAUTHENTICATED" {
					t.Errorf("%s %s = %d %s, want 401", r.method, r.path, code, body)
				}
			}
		})
	}
	// The acme admin token, issued for 720h, still works at the later time.
	ev.must(ev.acmeAdmin.Text, "GET", "/v1/tenants/acme/apps", "", 200)
}

// TestAdminTokenRefusedOnDaprAPI: the Dapr API's authenticator, and the
// app-token authority under it, refuse admin tokens of both roles.
func TestAdminTokenRefusedOnDaprAPI(t *testing.T) {
	ev := newEnv(t)
	ctx := t.Context()
	for _, tok := range []string{ev.acmeAdmin.Text, platformToken} {
		if _, err := ev.jwt.Verify(ctx, tok); !errors.Is(err, authjwt.ErrInvalid) {
			t.Errorf("authjwt.Verify(admin token) = %v, want ErrInvalid", err)
		}
		if p, err := ev.authn.Authenticate(ctx, tok); err == nil {
			t.Errorf("the Dapr API accepted an admin token as %+v", p)
		}
	}
	if p, err := ev.authn.Authenticate(ctx, ev.acmeAppToken.Text); err != nil || p.Tenant != "acme" {
		t.Fatalf("the app token itself: %+v %v", p, err)
	}
}

func TestAuditEntries(t *testing.T) {
	ev := newEnv(t)
	start := len(ev.auditRows())
	tok := ev.acmeAdmin.Text

	ev.must(tok, "POST", "/v1/tenants/acme/apps", `{"appId":"billing","endpoint":"http://127.0.0.1:3","appToken":"`+appSecret+`"}`, 201)
	ev.must(tok, "DELETE", "/v1/tenants/globex/apps/orders", "", 403)
	ev.must(tok, "PUT", "/v1/tenants/acme/limits", `{"requestsPerSecond":1}`, 403)
	ev.must("", "DELETE", "/v1/tenants/acme/apps/orders", "", 401)
	ev.must(ev.acmeAppToken.Text, "POST", "/v1/tenants/acme/tokens", `{"appId":"orders"}`, 401)
	ev.must(platformToken, "POST", "/v1/tenants/acme/apps", `{"appId":"Bad App"}`, 400)
	ev.must(platformToken, "DELETE", "/v1/tenants/acme/components/nope", "", 404)
	ev.must(platformToken, "POST", "/v1/tokens/"+ev.acmeAppToken.ID+"/revoke", "", 200)
	ev.must(tok, "GET", "/v1/tenants/acme/apps", "", 200) // reads are not audited
	var issued IssuedAdminToken
	ev.decode(ev.must(platformToken, "POST", "/v1/tenants/acme/admin-tokens", `{"name":"carol"}`, 201), &issued)

	want := []tenantspg.AuditEntry{
		{Tenant: "acme", ActorRole: "tenant", ActorID: ev.acmeAdmin.ID, ActorName: "alice", Method: "POST",
			Route: "/v1/tenants/:tenant/apps", Path: "/v1/tenants/acme/apps", TargetTenant: "acme", Target: "billing", Status: 201},
		{Tenant: "acme", ActorRole: "tenant", ActorID: ev.acmeAdmin.ID, ActorName: "alice", Method: "DELETE",
			Route: "/v1/tenants/:tenant/apps/:app", Path: "/v1/tenants/globex/apps/orders", TargetTenant: "globex", Target: "orders", Status: 403},
		{Tenant: "acme", ActorRole: "tenant", ActorID: ev.acmeAdmin.ID, ActorName: "alice", Method: "PUT",
			Route: "/v1/tenants/:tenant/limits", Path: "/v1/tenants/acme/limits", TargetTenant: "acme", Status: 403},
		{Tenant: "acme", ActorRole: "anonymous", Method: "DELETE",
			Route: "/v1/tenants/:tenant/apps/:app", Path: "/v1/tenants/acme/apps/orders", TargetTenant: "acme", Target: "orders", Status: 401},
		{Tenant: "acme", ActorRole: "anonymous", Method: "POST",
			Route: "/v1/tenants/:tenant/tokens", Path: "/v1/tenants/acme/tokens", TargetTenant: "acme", Status: 401},
		{Tenant: "acme", ActorRole: "platform", ActorID: "platform", Method: "POST",
			Route: "/v1/tenants/:tenant/apps", Path: "/v1/tenants/acme/apps", TargetTenant: "acme", Target: "Bad App", Status: 400},
		{Tenant: "acme", ActorRole: "platform", ActorID: "platform", Method: "DELETE",
			Route: "/v1/tenants/:tenant/components/:name", Path: "/v1/tenants/acme/components/nope", TargetTenant: "acme", Target: "nope", Status: 404},
		{Tenant: "acme", ActorRole: "platform", ActorID: "platform", Method: "POST",
			Route: "/v1/tokens/:id/revoke", Path: "/v1/tokens/" + ev.acmeAppToken.ID + "/revoke", TargetTenant: "acme", Target: ev.acmeAppToken.ID, Status: 200},
		{Tenant: "acme", ActorRole: "platform", ActorID: "platform", Method: "POST",
			Route: "/v1/tenants/:tenant/admin-tokens", Path: "/v1/tenants/acme/admin-tokens", TargetTenant: "acme", Target: issued.ID, Status: 201},
	}
	rows := ev.auditRows()
	got := rows[start:]
	if len(got) != len(want) {
		t.Fatalf("%d new audit entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g := got[i]
		if g.ClientAddr != "127.0.0.1" || g.At.IsZero() {
			t.Errorf("entry %d: client %q at %v", i, g.ClientAddr, g.At)
		}
		g.ID, g.At, g.ClientAddr = 0, time.Time{}, ""
		if g != want[i] {
			t.Errorf("entry %d:\n got  %+v\n want %+v", i, g, want[i])
		}
	}

	// No secret anywhere in the table: no token text and no request body.
	var dump string
	err := pgx.BeginFunc(t.Context(), ev.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(t.Context(), "SELECT set_config('blockgate.scope', 'platform', true)"); err != nil {
			return err
		}
		return tx.QueryRow(t.Context(), "SELECT coalesce(string_agg(a::text, E'\\n'), '') FROM audit_log a").Scan(&dump)
	})
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{platformToken, ev.acmeAdmin.Text, ev.globexAdmin.Text, issued.Text,
		ev.acmeAppToken.Text, ev.globexAppToken.Text, appSecret, AdminTokenPrefix}
	for _, s := range secrets {
		if strings.Contains(dump, s) {
			t.Errorf("the audit log contains a secret %.16s…", s)
		}
	}
	if !strings.Contains(dump, ev.acmeAdmin.ID) {
		t.Error("the dump does not show the table (no admin token id in it)")
	}

	// The globex admin reads none of this: the refused attempt on globex is
	// acme's business.
	var log []tenantspg.AuditEntry
	ev.decode(ev.must(ev.globexAdmin.Text, "GET", "/v1/audit", "", 200), &log)
	for _, e := range log {
		if e.Tenant != "globex" || e.ActorID == ev.acmeAdmin.ID {
			t.Errorf("globex's admin reads %+v", e)
		}
	}
	ev.must(ev.globexAdmin.Text, "GET", "/v1/audit?tenant=acme", "", 403)
}

// TestAuditCannotBeSkipped: a handler that panics or fails is still
// audited, and a route registered around the table is platform-only.
func TestAuditCannotBeSkipped(t *testing.T) {
	ev := newEnv(t)
	ev.h.add(ev.e, route{method: "POST", path: "/v1/tenants/:tenant/boom", access: tenantScoped,
		handle: func(echo.Context) error { panic("boom") }})
	ev.e.POST("/v1/tenants/:tenant/sneaky", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	start := len(ev.auditRows())

	ev.must(ev.acmeAdmin.Text, "POST", "/v1/tenants/acme/boom", "", 500)
	ev.must(ev.acmeAdmin.Text, "POST", "/v1/tenants/acme/sneaky", "", 403)
	ev.must(platformToken, "POST", "/v1/tenants/acme/sneaky", "", 204)

	got := ev.auditRows()[start:]
	if len(got) != 3 || got[0].Status != 500 || got[0].ActorID != ev.acmeAdmin.ID ||
		got[1].Status != 403 || got[2].Status != 204 || got[2].ActorRole != "platform" {
		t.Fatalf("audit entries: %+v", got)
	}
}

// TestAuditWriteFailure: when the audit log cannot be written, the action
// stands and the failure is counted.
func TestAuditWriteFailure(t *testing.T) {
	ev := newEnv(t)
	if _, err := ev.pool.Exec(t.Context(), "ALTER TABLE audit_log RENAME TO audit_log_away"); err != nil {
		t.Fatal(err)
	}
	ev.must(platformToken, "POST", "/v1/tenants", `{"name":"initech"}`, 201)
	ev.must(ev.acmeAdmin.Text, "DELETE", "/v1/tenants/globex", "", 403)
	var m dto.Metric
	if err := ev.failures.Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetCounter().GetValue(); n != 2 {
		t.Errorf("%v audit failures counted, want 2", n)
	}
	ev.must(platformToken, "GET", "/v1/tenants/initech", "", 200)
}

// TestEveryRouteHasAccess: every route echo serves is in the access table,
// so none was registered around it.
func TestEveryRouteHasAccess(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	h, e := newHandler(&Service{logger: logger}, HandlerConfig{Logger: logger})
	for _, r := range e.Routes() {
		if h.routes[routeKey(r.Method, r.Path)] == nil {
			t.Errorf("%s %s is not registered through handler.add with its access", r.Method, r.Path)
		}
	}
	if len(h.routes) != len(e.Routes()) {
		t.Errorf("%d routes in the table, %d in echo", len(h.routes), len(e.Routes()))
	}
}
