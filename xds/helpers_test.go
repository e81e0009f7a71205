package xds

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/auth/authca/authcatest"
	"github.com/blockgate/blockgate/auth/authpolicy"
	"github.com/blockgate/blockgate/internal/pgtest"
	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var testTD = spiffeid.RequireTrustDomainFromString("blockgate.test")

// testClock is a clock tests move by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newCA returns a loaded CA of testTD on clock (nil: the real time).
func newCA(t testing.TB, clock func() time.Time) *authca.CA {
	t.Helper()
	master := make([]byte, 32)
	if _, err := rand.Read(master); err != nil {
		t.Fatal(err)
	}
	ca, err := authca.New(authca.Config{TrustDomain: testTD, Store: authcatest.NewMemStore(), MasterKey: master, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ca
}

// policySet parses Configuration documents, each applying to the apps
// listed with it.
func policySet(t testing.TB, tenant tenants.ID, denyByDefault bool, docs map[string][]string) *authpolicy.Set {
	t.Helper()
	var recs []authpolicy.Record
	for doc, apps := range docs {
		c, err := authpolicy.Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, authpolicy.Record{Tenant: tenant, Name: c.Name, Apps: apps, Document: []byte(doc)})
	}
	s, err := authpolicy.NewSet(tenant, testTD.Name(), denyByDefault, recs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// memSource is a Source whose tenants tests change.
type memSource struct {
	mu      sync.Mutex
	tenants map[tenants.ID]TenantConfig
	err     error
	loads   int
}

func newMemSource() *memSource { return &memSource{tenants: map[tenants.ID]TenantConfig{}} }

func (m *memSource) TenantConfig(_ context.Context, tenant tenants.ID) (TenantConfig, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loads++
	if m.err != nil {
		return TenantConfig{}, m.err
	}
	cfg, ok := m.tenants[tenant]
	if !ok {
		return TenantConfig{}, errors.New("no such tenant")
	}
	return cfg, nil
}

func (m *memSource) set(tenant tenants.ID, cfg TenantConfig) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tenants[tenant] = cfg
}

// update changes tenant's config under the source's lock.
func (m *memSource) update(tenant tenants.ID, fn func(*TenantConfig)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cfg := m.tenants[tenant]
	fn(&cfg)
	m.tenants[tenant] = cfg
}

// fakeTokens is a TokenVerifier over a map of token texts.
type fakeTokens struct {
	mu     sync.Mutex
	tokens map[string]tenantspg.JoinToken
	now    func() time.Time
}

func (f *fakeTokens) add(text string, tok tenantspg.JoinToken) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tokens == nil {
		f.tokens = map[string]tenantspg.JoinToken{}
	}
	f.tokens[text] = tok
}

func (f *fakeTokens) VerifyJoinToken(_ context.Context, text string) (tenantspg.JoinToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tok, ok := f.tokens[text]
	now := time.Now()
	if f.now != nil {
		now = f.now()
	}
	switch {
	case !ok:
		return tenantspg.JoinToken{}, tenantspg.ErrInvalidJoinToken
	case tok.RevokedAt != nil:
		return tok, errors.Join(tenantspg.ErrInvalidJoinToken, errors.New("revoked"))
	case !now.Before(tok.ExpiresAt):
		return tok, errors.Join(tenantspg.ErrInvalidJoinToken, errors.New("expired"))
	}
	return tok, nil
}

// testServer is a running Server on a loopback port.
type testServer struct {
	*Server
	addr   string
	ca     *authca.CA
	source *memSource
	tokens *fakeTokens
	stop   func()
}

type serverOption func(*Config)

func withTLS(ca *authca.CA) serverOption {
	return func(c *Config) { c.TLS = withTLSConfig(ca) }
}

// withTLSConfig is the server's TLS config, as the gateway makes it.
func withTLSConfig(ca *authca.CA) *tls.Config {
	return ca.ServerTLSConfig([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
}

func withClock(clock func() time.Time) serverOption {
	return func(c *Config) { c.Clock = clock }
}

// startServer runs a Server for the tenants of source until the test
// ends.
func startServer(t *testing.T, ca *authca.CA, source *memSource, opts ...serverOption) *testServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tokens := &fakeTokens{}
	cfg := Config{
		Listener:    lis,
		CA:          ca,
		Source:      source,
		JoinTokens:  tokens,
		GatewayHTTP: "gateway.blockgate.test:3500",
		GatewayGRPC: "gateway.blockgate.test:50001",
		Logger:      testLogger(t),
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	ts := &testServer{Server: s, addr: lis.Addr().String(), ca: ca, source: source, tokens: tokens}
	var once sync.Once
	ts.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(ts.stop)
	return ts
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// checkSnapshot fails the test unless every resource of snap passes
// ValidateDeep and the snapshot is consistent.
func checkSnapshot(t testing.TB, snap cache.ResourceSnapshot) {
	t.Helper()
	s, ok := snap.(*cache.Snapshot)
	if !ok {
		t.Fatalf("snapshot of type %T", snap)
	}
	for typ := types.ResponseType(0); typ < types.UnknownType; typ++ {
		for name, r := range s.Resources[typ].Items {
			if err := ValidateDeep(r.Resource); err != nil {
				t.Errorf("%s %s: %v", typeName(typ), name, err)
			}
		}
	}
	if err := s.Consistent(); err != nil {
		t.Errorf("inconsistent snapshot: %v", err)
	}
}

// waitFor polls cond until it holds or 10 seconds pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// writeSVID issues an SVID for app of tenant and writes it with its key and
// the bundle as PEM files into dir; it returns their paths.
func writeSVID(t testing.TB, ca *authca.CA, tenant tenants.ID, app, dir string) (cert, key, bundle string) {
	t.Helper()
	id, err := authca.AppID(testTD, tenants.Principal{Tenant: tenant, AppID: app})
	if err != nil {
		t.Fatal(err)
	}
	svid, err := ca.NewSVID(context.Background(), id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := svid.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cert, key, bundle = filepath.Join(dir, app+".pem"), filepath.Join(dir, app+".key"), filepath.Join(dir, "bundle.pem")
	for path, data := range map[string][]byte{cert: certPEM, key: keyPEM, bundle: ca.BundlePEM()} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cert, key, bundle
}

// svidCert is a tls.Certificate of an SVID for app of tenant.
func svidCert(t testing.TB, ca *authca.CA, tenant tenants.ID, app string) tls.Certificate {
	t.Helper()
	id, err := authca.AppID(testTD, tenants.Principal{Tenant: tenant, AppID: app})
	if err != nil {
		t.Fatal(err)
	}
	svid, err := ca.NewSVID(context.Background(), id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := svid.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
