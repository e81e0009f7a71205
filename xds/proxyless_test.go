package xds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	grpcxds "google.golang.org/grpc/xds"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/tenants"
)

// instance is a gRPC server of an app that counts the calls it serves and
// the SPIFFE IDs of its callers.
type instance struct {
	name    string
	addr    string
	mu      sync.Mutex
	hits    int
	callers []string
}

func (in *instance) count() (int, []string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.hits, slices.Clone(in.callers)
}

// startInstance serves the gRPC health service over mTLS with an SVID of
// app, requiring client certificates from the CA.
func startInstance(t *testing.T, ca *authca.CA, tenant tenants.ID, app, name string) *instance {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.BundlePEM())
	cert := svidCert(t, ca, tenant, app)
	in := &instance{name: name}
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    roots,
			MinVersion:   tls.VersionTLS12,
		})),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			caller := "?"
			if p, ok := peer.FromContext(ctx); ok {
				if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
					if id, ok := authca.PeerID(ti.State); ok {
						caller = id.String()
					}
				}
			}
			in.mu.Lock()
			in.hits++
			if !slices.Contains(in.callers, caller) {
				in.callers = append(in.callers, caller)
			}
			in.mu.Unlock()
			return h(ctx, req)
		}),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in.addr = lis.Addr().String()
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return in
}

// TestProxyless runs grpc-go's own xDS client against the server: a
// client of app web resolves xds:///ledger and reaches ledger's instances
// over mTLS, sees instances come and go, and loses ledger when a policy
// denies it.
func TestProxyless(t *testing.T) {
	// The xDS bootstrap that NewXDSResolverWithConfigForTesting parses
	// builds the "tls" channel credentials' file watcher, which nothing
	// in that testing path ever closes.
	checkLeaks(t, goleak.IgnoreTopFunction("google.golang.org/grpc/credentials/tls/certprovider/pemfile.(*watcher).run"))
	ca := newCA(t, nil)
	one := startInstance(t, ca, "acme", "ledger", "one")
	two := startInstance(t, ca, "acme", "ledger", "two")
	three := startInstance(t, ca, "acme", "ledger", "three")
	apps := func(ins ...*instance) []tenants.App {
		ledger := tenants.App{Tenant: "acme", ID: "ledger", Endpoint: "grpcs://" + ins[0].addr}
		for _, in := range ins[1:] {
			ledger.Instances = append(ledger.Instances, tenants.Instance{ID: in.name, Endpoint: "grpcs://" + in.addr})
		}
		return []tenants.App{{Tenant: "acme", ID: "web"}, {Tenant: "acme", ID: "checkout"}, ledger}
	}
	src := newMemSource()
	src.set("acme", TenantConfig{Apps: apps(one, two)})
	ts := startServer(t, ca, src, withTLS(ca))

	dir := t.TempDir()
	cert, key, bundle := writeSVID(t, ca, "acme", "web", dir)
	bootstrap, err := ProxylessBootstrap(ProxylessConfig{
		Tenant: "acme", App: "web", Instance: "web-1", XDSAddress: ts.addr,
		CertificateFile: cert, PrivateKeyFile: key, CAFile: bundle,
	})
	if err != nil {
		t.Fatal(err)
	}
	resolver, err := grpcxds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("xds:///ledger", grpc.WithTransportCredentials(creds), grpc.WithResolvers(resolver))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := healthpb.NewHealthClient(conn)
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	// served reports whether, over a round of calls, every instance of
	// want and none of the others served one.
	served := func(want ...*instance) func() bool {
		return func() bool {
			before := map[*instance]int{}
			for _, in := range []*instance{one, two, three} {
				before[in], _ = in.count()
			}
			for range 12 {
				if err := call(); err != nil {
					return false
				}
			}
			for _, in := range []*instance{one, two, three} {
				n, _ := in.count()
				if (n > before[in]) != slices.Contains(want, in) {
					return false
				}
			}
			return true
		}
	}

	waitFor(t, "calls spread over ledger's two instances", served(one, two))
	web := "spiffe://blockgate.test/tenant/acme/app/web"
	for _, in := range []*instance{one, two} {
		if _, callers := in.count(); !slices.Equal(callers, []string{web}) {
			t.Errorf("instance %s was called by %v, want only %s over mTLS", in.name, callers, web)
		}
	}

	src.update("acme", func(c *TenantConfig) { c.Apps = apps(one) })
	ts.Refresh("acme")
	waitFor(t, "the removed instance to get no more calls", served(one))

	src.update("acme", func(c *TenantConfig) { c.Apps = apps(one, three) })
	ts.Refresh("acme")
	waitFor(t, "the added instance to get calls", served(one, three))

	// ledger now admits only checkout: web loses its listener.
	src.update("acme", func(c *TenantConfig) {
		c.Policy = policySet(t, "acme", false, map[string][]string{ledgerACL: {"ledger"}})
	})
	ts.Refresh("acme")
	waitFor(t, "calls to fail once the policy denies them", func() bool {
		err := call()
		return err != nil && status.Code(err) == codes.Unavailable
	})
	src.update("acme", func(c *TenantConfig) { c.Policy = nil })
	ts.Refresh("acme")
	waitFor(t, "calls to succeed once the policy allows them again", func() bool { return call() == nil })

	// grpc-go accepted everything it was sent.
	st := ts.Status()
	if len(st) != 1 || st[0].ID != "acme/web/web-1" || !st[0].Proxyless || st[0].Credential != "svid" {
		t.Fatalf("status %+v", st)
	}
	if len(st[0].NACKs) > 0 {
		t.Errorf("grpc-go rejected configuration: %+v", st[0].NACKs)
	}
	for _, typ := range []string{"LDS", "CDS", "EDS"} {
		if st[0].Acked[typ] == "" {
			t.Errorf("no %s version acknowledged: %+v", typ, st[0].Acked)
		}
	}
	conn.Close()
	ts.stop()
}
