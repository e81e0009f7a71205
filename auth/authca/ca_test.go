package authca_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"go.uber.org/goleak"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/auth/authca/authcatest"
	"github.com/blockgate/blockgate/tenants"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	td      = spiffeid.RequireTrustDomainFromString("example.org")
	otherTD = spiffeid.RequireTrustDomainFromString("other.example")
	master  = bytes.Repeat([]byte("0123456789abcdef"), 2)
)

// clock is a settable clock for Config.Clock. It starts at the real time,
// so that TLS peers that use the real clock agree with the CA.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// newCA returns a loaded CA over store (a new MemStore if nil), with the
// test's master key and trust domain unless cfg says otherwise.
func newCA(t testing.TB, store authca.Store, clk *clock, cfg authca.Config) *authca.CA {
	t.Helper()
	if store == nil {
		store = authcatest.NewMemStore()
	}
	if cfg.TrustDomain.IsZero() {
		cfg.TrustDomain = td
	}
	if cfg.MasterKey == nil {
		cfg.MasterKey = master
	}
	if clk != nil {
		cfg.Clock = clk.Now
	}
	cfg.Store = store
	ca, err := authca.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ca
}

func appID(t testing.TB, tenant tenants.ID, app string) spiffeid.ID {
	t.Helper()
	id, err := authca.AppID(td, tenants.Principal{Tenant: tenant, AppID: app})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newSVID(t testing.TB, ca *authca.CA, id spiffeid.ID, ttl time.Duration) *x509svid.SVID {
	t.Helper()
	svid, err := ca.NewSVID(context.Background(), id, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return svid
}

func activeGenerations(t *testing.T, s authca.Store) []authca.Generation {
	t.Helper()
	gens, err := s.CAGenerations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []authca.Generation
	for _, g := range gens {
		if g.RetiredAt == nil {
			out = append(out, g)
		}
	}
	return out
}

func TestMemStore(t *testing.T) {
	authcatest.RunStore(t, func(*testing.T) authca.Store { return authcatest.NewMemStore() })
}

func TestConfigValidate(t *testing.T) {
	store := authcatest.NewMemStore()
	tests := []struct {
		name string
		cfg  authca.Config
		want string
	}{
		{name: "no trust domain", cfg: authca.Config{Store: store, MasterKey: master}, want: "trust domain"},
		{name: "no store", cfg: authca.Config{TrustDomain: td, MasterKey: master}, want: "store"},
		{name: "short master key", cfg: authca.Config{TrustDomain: td, Store: store, MasterKey: master[:31]}, want: "at least 32 bytes"},
		{name: "max under default", cfg: authca.Config{TrustDomain: td, Store: store, MasterKey: master,
			SVIDTTL: 2 * time.Hour, MaxSVIDTTL: time.Hour}, want: "maximum SVID lifetime"},
		{name: "root too short", cfg: authca.Config{TrustDomain: td, Store: store, MasterKey: master,
			RootTTL: 10 * 24 * time.Hour}, want: "root lifetime"},
		{name: "root without key", cfg: authca.Config{TrustDomain: td, Store: store, MasterKey: master,
			Root: &authca.Root{}}, want: "operator root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := authca.New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error about %q", err, tt.want)
			}
		})
	}
	if _, err := authca.New(authca.Config{TrustDomain: td, Store: store, MasterKey: master}); err != nil {
		t.Fatalf("New with only the required fields: %v", err)
	}
}

func TestLoadCreatesOnceAndKeeps(t *testing.T) {
	store := authcatest.NewMemStore()
	clk := newClock()
	a := newCA(t, store, clk, authca.Config{})
	gens := activeGenerations(t, store)
	if len(gens) != 1 {
		t.Fatalf("%d active generations after the first Load, want 1", len(gens))
	}
	// Loading again, here or on another node, adopts what is there.
	if err := a.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := newCA(t, store, clk, authca.Config{})
	if all, _ := store.CAGenerations(t.Context()); len(all) != 1 {
		t.Fatalf("%d generations after Loads of a populated store, want 1", len(all))
	}
	if !a.Bundle().Equal(b.Bundle()) {
		t.Fatal("two nodes over one store have different bundles")
	}
	// A certificate from one node verifies on the other.
	svid := newSVID(t, a, appID(t, "acme", "orders"), 0)
	if id, err := b.Verify(svid.Certificates); err != nil || id != svid.ID {
		t.Fatalf("Verify on the other node = %v, %v", id, err)
	}
}

// TestLoadRace starts several nodes on an empty store at once: exactly one
// generation may come out of it, and every node must sign with it.
func TestLoadRace(t *testing.T) {
	store := authcatest.NewMemStore()
	const nodes = 8
	cas := make([]*authca.CA, nodes)
	for i := range cas {
		ca, err := authca.New(authca.Config{TrustDomain: td, Store: store, MasterKey: master})
		if err != nil {
			t.Fatal(err)
		}
		cas[i] = ca
	}
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i, ca := range cas {
		wg.Go(func() { errs[i] = ca.Load(t.Context()) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	all, _ := store.CAGenerations(t.Context())
	if len(all) != 1 {
		t.Fatalf("%d generations after racing Loads, want 1", len(all))
	}
	for i, ca := range cas {
		svid := newSVID(t, ca, appID(t, "acme", "orders"), 0)
		if !bytes.Equal(svid.Certificates[1].Raw, all[0].Intermediate) {
			t.Errorf("node %d signs with another intermediate than the stored one", i)
		}
	}
}

func TestWrongMasterKey(t *testing.T) {
	store := authcatest.NewMemStore()
	newCA(t, store, nil, authca.Config{})
	other, err := authca.New(authca.Config{TrustDomain: td, Store: store, MasterKey: bytes.Repeat([]byte{7}, 48)})
	if err != nil {
		t.Fatal(err)
	}
	err = other.Load(t.Context())
	if !errors.Is(err, authca.ErrWrongMasterKey) {
		t.Fatalf("Load with another master key = %v, want ErrWrongMasterKey", err)
	}
	if !strings.Contains(err.Error(), "start the gateway with the master key the CA was created with") {
		t.Errorf("the error does not say what to do: %v", err)
	}
	if all, _ := store.CAGenerations(t.Context()); len(all) != 1 {
		t.Errorf("a failed Load changed the store: %d generations", len(all))
	}
	if _, err := other.NewSVID(t.Context(), appID(t, "acme", "orders"), 0); !errors.Is(err, authca.ErrNoAuthority) {
		t.Errorf("signing after a failed Load = %v, want ErrNoAuthority", err)
	}
}

func TestStoreFailure(t *testing.T) {
	store := authcatest.NewMemStore()
	ca := newCA(t, store, nil, authca.Config{})
	before := ca.BundlePEM()
	boom := errors.New("boom")
	store.SetErr(boom)
	if err := ca.Reload(t.Context()); !errors.Is(err, boom) {
		t.Fatalf("Reload = %v, want the store's error", err)
	}
	if _, err := ca.Rotate(t.Context()); !errors.Is(err, boom) {
		t.Fatalf("Rotate = %v, want the store's error", err)
	}
	if !bytes.Equal(before, ca.BundlePEM()) {
		t.Fatal("a failed Reload or Rotate changed the bundle")
	}
	if _, err := ca.NewSVID(t.Context(), appID(t, "acme", "orders"), 0); err != nil {
		t.Fatalf("signing after a failed Reload: %v", err)
	}
}

// TestRotation rotates on one node and reloads another: certificates from
// the old generation keep verifying until they expire, new ones chain to
// the new root, and the old root leaves the bundle once nothing it signed
// can still be valid.
func TestRotation(t *testing.T) {
	store := authcatest.NewMemStore()
	clk := newClock()
	a := newCA(t, store, clk, authca.Config{})
	b := newCA(t, store, clk, authca.Config{})
	id := appID(t, "acme", "orders")

	old := newSVID(t, a, id, 0)
	oldRoot := a.Bundle().X509Authorities()[0]

	clk.Advance(time.Hour)
	rotatedAt := clk.Now()
	gen, err := a.Rotate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	fresh := newSVID(t, a, id, 0)
	roots := a.Bundle().X509Authorities()
	if len(roots) != 2 || !roots[1].Equal(oldRoot) {
		t.Fatalf("bundle after rotation has %d roots (old one second: %v), want the new and the old", len(roots), len(roots) == 2 && roots[1].Equal(oldRoot))
	}
	newRoot := roots[0]
	if err := fresh.Certificates[1].CheckSignatureFrom(newRoot); err != nil {
		t.Fatalf("a certificate signed after rotation does not chain to the new root: %v", err)
	}
	if fresh.Certificates[1].CheckSignatureFrom(oldRoot) == nil {
		t.Fatal("a certificate signed after rotation chains to the old root")
	}
	if !strings.Contains(fresh.Certificates[1].Subject.CommonName, gen) {
		t.Errorf("intermediate %q does not name generation %s", fresh.Certificates[1].Subject.CommonName, gen)
	}

	// b has not reloaded: it still signs with the old generation and does
	// not yet trust the new root.
	if _, err := b.Verify(fresh.Certificates); !errors.Is(err, authca.ErrUntrusted) {
		t.Fatalf("a node that has not reloaded verified a certificate of the new generation: %v", err)
	}
	if err := b.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	fromB := newSVID(t, b, id, 0)
	if !fromB.Certificates[1].Equal(fresh.Certificates[1]) {
		t.Fatal("after Reload the other node does not sign with the new generation")
	}
	for name, ca := range map[string]*authca.CA{"rotating node": a, "reloaded node": b} {
		for _, svid := range []*x509svid.SVID{old, fresh, fromB} {
			if _, err := ca.Verify(svid.Certificates); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}

	// The old certificate expires 24h after issue, as usual.
	clk.Advance(24 * time.Hour)
	if _, err := a.Verify(old.Certificates); !errors.Is(err, authca.ErrUntrusted) {
		t.Fatalf("an expired certificate of the old generation verified: %v", err)
	}
	if len(a.Bundle().X509Authorities()) != 2 {
		t.Fatal("the old root left the bundle before a certificate it signed could have expired")
	}
	// 7 days (the maximum SVID lifetime) after the rotation, plus slack,
	// the old root goes, even without a reload.
	clk.Set(rotatedAt.Add(7*24*time.Hour - time.Minute))
	if len(a.Bundle().X509Authorities()) != 2 {
		t.Fatal("the old root left the bundle before the maximum SVID lifetime had passed since its retirement")
	}
	clk.Set(rotatedAt.Add(7*24*time.Hour + 11*time.Minute))
	if roots := a.Bundle().X509Authorities(); len(roots) != 1 || !roots[0].Equal(newRoot) {
		t.Fatalf("bundle %d roots after the old generation's trust ran out, want only the new root", len(roots))
	}
	if !bytes.Contains(a.BundlePEM(), pemOf(newRoot)) || bytes.Contains(a.BundlePEM(), pemOf(oldRoot)) {
		t.Fatal("BundlePEM disagrees with Bundle")
	}
	if err := b.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(b.Bundle().X509Authorities()) != 1 {
		t.Fatal("a reload kept the old root past its trust")
	}
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func TestBundleBelongsToCaller(t *testing.T) {
	ca := newCA(t, nil, nil, authca.Config{})
	b := ca.Bundle()
	b.SetX509Authorities(nil)
	if len(ca.Bundle().X509Authorities()) != 1 {
		t.Fatal("changing a returned bundle changed the CA's")
	}
	p := ca.BundlePEM()
	p[0] = 'x'
	if ca.BundlePEM()[0] != '-' {
		t.Fatal("changing returned PEM changed the CA's")
	}
	if b, err := x509BundleParse(ca.BundlePEM()); err != nil || len(b) != 1 {
		t.Fatalf("BundlePEM: %d certificates, %v", len(b), err)
	}
}

func x509BundleParse(p []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, p = pem.Decode(p)
		if b == nil {
			return out, nil
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

// TestRunRenews lets Run find the active generation close to its end: it
// must put a new one in its place, once, even with two nodes checking.
func TestRunRenews(t *testing.T) {
	store := authcatest.NewMemStore()
	clk := newClock()
	cfg := authca.Config{CheckInterval: time.Millisecond}
	a := newCA(t, store, clk, cfg)
	b := newCA(t, store, clk, cfg)
	first := activeGenerations(t, store)[0].ID

	// Nothing happens while the generation is young. Load runs the same
	// check as Run, synchronously.
	clk.Advance(300 * 24 * time.Hour)
	if err := a.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if g := activeGenerations(t, store); len(g) != 1 || g[0].ID != first {
		t.Fatalf("a generation 300 days into 365 was renewed: %+v", g)
	}

	// Within a tenth of its life of the end, it is renewed.
	clk.Advance(30 * 24 * time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for _, ca := range []*authca.CA{a, b} {
		wg.Go(func() {
			if err := ca.Run(ctx); err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()
	waitFor(t, func() bool {
		g := activeGenerations(t, store)
		return len(g) == 1 && g[0].ID != first
	})
	renewed := activeGenerations(t, store)[0].ID
	for _, ca := range []*authca.CA{a, b} {
		waitFor(t, func() bool {
			svid, err := ca.NewSVID(t.Context(), appID(t, "acme", "orders"), 0)
			return err == nil && strings.Contains(svid.Certificates[1].Subject.CommonName, renewed)
		})
	}
	cancel()
	wg.Wait()
	if all, _ := store.CAGenerations(t.Context()); len(all) != 2 {
		t.Fatalf("%d generations after renewal by two nodes, want 2", len(all))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// operatorRoot writes a root CA's certificate and key to PEM files.
func operatorRoot(t *testing.T, now time.Time, tmpl *x509.Certificate) (certFile, keyFile string, cert *x509.Certificate, keyDER []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl == nil {
		tmpl = &x509.Certificate{
			SerialNumber:          big.NewInt(42),
			Subject:               pkix.Name{CommonName: "Example Corp Root CA"},
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	if keyDER, err = x509.MarshalPKCS8PrivateKey(key); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "root.crt"), filepath.Join(dir, "root.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert, keyDER
}

func TestOperatorRoot(t *testing.T) {
	clk := newClock()
	certFile, keyFile, rootCert, rootKeyDER := operatorRoot(t, clk.Now(), nil)
	root, err := authca.LoadRoot(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	store := authcatest.NewMemStore()
	ca := newCA(t, store, clk, authca.Config{Root: root})

	roots := ca.Bundle().X509Authorities()
	if len(roots) != 1 || !roots[0].Equal(rootCert) {
		t.Fatalf("bundle is not the operator's root: %d roots", len(roots))
	}
	svid := newSVID(t, ca, appID(t, "acme", "orders"), 0)
	inter := svid.Certificates[1]
	if err := inter.CheckSignatureFrom(rootCert); err != nil {
		t.Fatalf("intermediate not signed by the operator's root: %v", err)
	}
	if !inter.NotAfter.After(clk.Now().Add(300 * 24 * time.Hour)) {
		t.Errorf("intermediate ends at %v, want about a year", inter.NotAfter)
	}
	// go-spiffe verifies against a bundle made of the operator's root alone.
	if _, _, err := x509svid.Verify(svid.Certificates, ca.Bundle(), x509svid.WithTime(clk.Now())); err != nil {
		t.Fatal(err)
	}

	// Rotation makes a new intermediate under the same root.
	clk.Advance(time.Hour)
	if _, err := ca.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	fresh := newSVID(t, ca, appID(t, "acme", "orders"), 0)
	if fresh.Certificates[1].Equal(inter) {
		t.Fatal("rotation kept the intermediate")
	}
	if roots := ca.Bundle().X509Authorities(); len(roots) != 1 || !roots[0].Equal(rootCert) {
		t.Fatalf("bundle after rotation under an operator root: %d roots, want the one root", len(roots))
	}
	for _, s := range []*x509svid.SVID{svid, fresh} {
		if _, err := ca.Verify(s.Certificates); err != nil {
			t.Fatal(err)
		}
	}

	// The operator's key is never stored, in any form.
	all, _ := store.CAGenerations(t.Context())
	for _, g := range all {
		if !bytes.Equal(g.Root, rootCert.Raw) {
			t.Errorf("generation %s stores another root", g.ID)
		}
		for _, b := range [][]byte{g.Root, g.Intermediate, g.IntermediateKey} {
			if bytes.Contains(b, rootKeyDER) {
				t.Errorf("generation %s stores the operator's root key", g.ID)
			}
		}
	}
}

func TestParseRoot(t *testing.T) {
	now := time.Now()
	ca := func(mod func(*x509.Certificate)) *x509.Certificate {
		c := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "root"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour * 24 * 365),
			KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
		}
		mod(c)
		return c
	}
	read := func(t *testing.T, f string) []byte {
		t.Helper()
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good, goodKey, _, _ := operatorRoot(t, now, nil)
	_, otherKey, _, _ := operatorRoot(t, now, nil)
	leafCert, leafKey, _, _ := operatorRoot(t, now, ca(func(c *x509.Certificate) { c.IsCA = false; c.KeyUsage = x509.KeyUsageDigitalSignature }))
	noSign, noSignKey, _, _ := operatorRoot(t, now, ca(func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageDigitalSignature }))
	pathZero, pathZeroKey, _, _ := operatorRoot(t, now, ca(func(c *x509.Certificate) { c.MaxPathLenZero = true }))

	tests := []struct {
		name      string
		cert, key []byte
		want      string
	}{
		{name: "key of another root", cert: read(t, good), key: read(t, otherKey), want: "does not match"},
		{name: "not a CA", cert: read(t, leafCert), key: read(t, leafKey), want: "not a CA"},
		{name: "no keyCertSign", cert: read(t, noSign), key: read(t, noSignKey), want: "keyCertSign"},
		{name: "path length 0", cert: read(t, pathZero), key: read(t, pathZeroKey), want: "path length 0"},
		{name: "no certificate", cert: read(t, goodKey), key: read(t, goodKey), want: "no CERTIFICATE"},
		{name: "two certificates", cert: append(read(t, good), read(t, good)...), key: read(t, goodKey), want: "2 certificates"},
		{name: "no key", cert: read(t, good), key: read(t, good), want: "no private key"},
		{name: "encrypted key", cert: read(t, good), key: pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), want: "encrypted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := authca.ParseRoot(tt.cert, tt.key)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseRoot = %v, want an error about %q", err, tt.want)
			}
		})
	}
	if _, err := authca.ParseRoot(read(t, good), read(t, goodKey)); err != nil {
		t.Fatalf("ParseRoot of a good root: %v", err)
	}
}

func TestOperatorRootExpired(t *testing.T) {
	clk := newClock()
	certFile, keyFile, _, _ := operatorRoot(t, clk.Now(), nil)
	root, err := authca.LoadRoot(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(11 * 365 * 24 * time.Hour)
	ca, err := authca.New(authca.Config{TrustDomain: td, Store: authcatest.NewMemStore(), MasterKey: master, Root: root, Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Load(t.Context()); err == nil || !strings.Contains(err.Error(), "replace it") {
		t.Fatalf("Load with an expired operator root = %v", err)
	}
}
