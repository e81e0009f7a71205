package tenantspg

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/auth/authca/authcatest"
	"github.com/blockgate/blockgate/tenants"
)

var caMasterKey = bytes.Repeat([]byte("master key bytes"), 2)

func newCA(t *testing.T, r *Registry, master []byte) *authca.CA {
	t.Helper()
	ca, err := authca.New(authca.Config{
		TrustDomain: spiffeid.RequireTrustDomainFromString("example.org"),
		Store:       r,
		MasterKey:   master,
		Logger:      r.logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestCAStore(t *testing.T) {
	authcatest.RunStore(t, func(t *testing.T) authca.Store { return newRegistry(t) })
}

// TestCALoadRace starts several nodes, each with its own registry over one
// database, on an empty CA table at once: exactly one generation may be
// created, and every node must sign with it.
func TestCALoadRace(t *testing.T) {
	first := newRegistry(t)
	const nodes = 6
	cas := make([]*authca.CA, nodes)
	for i := range cas {
		cas[i] = newCA(t, New(first.pool, first.logger), caMasterKey)
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
	gens, err := first.CAGenerations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(gens) != 1 || gens[0].RetiredAt != nil {
		t.Fatalf("%d generations after racing Loads, want 1 active", len(gens))
	}
	id := spiffeid.RequireFromString("spiffe://example.org/tenant/acme/app/orders")
	for i, ca := range cas {
		svid, err := ca.NewSVID(t.Context(), id, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(svid.Certificates[1].Raw, gens[0].Intermediate) {
			t.Errorf("node %d signs with another intermediate than the stored one", i)
		}
		if _, err := cas[(i+1)%nodes].Verify(svid.Certificates); err != nil {
			t.Errorf("node %d's SVID on the next node: %v", i, err)
		}
	}
}

// TestCARotationAcrossNodes rotates on one node; the other follows on
// Reload and trusts certificates of both generations.
func TestCARotationAcrossNodes(t *testing.T) {
	r := newRegistry(t)
	a, b := newCA(t, r, caMasterKey), newCA(t, New(r.pool, r.logger), caMasterKey)
	for _, ca := range []*authca.CA{a, b} {
		if err := ca.Load(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	id := spiffeid.RequireFromString("spiffe://example.org/tenant/acme/app/orders")
	old, err := b.NewSVID(t.Context(), id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	fresh, err := b.NewSVID(t.Context(), id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Certificates[1].Equal(old.Certificates[1]) {
		t.Fatal("after Reload the node still signs with the retired generation")
	}
	if n := len(b.Bundle().X509Authorities()); n != 2 {
		t.Fatalf("bundle of %d roots after rotation, want 2", n)
	}
	for _, chain := range [][]*x509.Certificate{old.Certificates, fresh.Certificates} {
		if _, err := a.Verify(chain); err != nil {
			t.Fatal(err)
		}
	}
	gens, _ := r.CAGenerations(t.Context())
	active := 0
	for _, g := range gens {
		if g.RetiredAt == nil {
			active++
		}
	}
	if len(gens) != 2 || active != 1 {
		t.Fatalf("%d generations, %d active; want 2, 1", len(gens), active)
	}
}

// TestCAEncryptedAtRest reads the table directly: no stored key parses as
// a private key, and a node with another master key is told so.
func TestCAEncryptedAtRest(t *testing.T) {
	r := newRegistry(t)
	if err := newCA(t, r, caMasterKey).Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	var sealed []byte
	err := r.platform(t.Context(), func(tx pgx.Tx) ([]Change, error) {
		return nil, tx.QueryRow(t.Context(), "SELECT intermediate_key FROM ca_generations").Scan(&sealed)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x509.ParsePKCS8PrivateKey(sealed); err == nil {
		t.Fatal("the stored intermediate key parses as a private key")
	}
	err = newCA(t, r, bytes.Repeat([]byte{9}, 32)).Load(t.Context())
	if !errors.Is(err, authca.ErrWrongMasterKey) {
		t.Fatalf("Load with another master key = %v, want ErrWrongMasterKey", err)
	}
}

// TestCARowLevelSecurity: the CA belongs to the platform. Neither a tenant
// scope nor no scope at all sees or writes a generation.
func TestCARowLevelSecurity(t *testing.T) {
	r := newRegistry(t)
	ctx := t.Context()
	if _, err := r.CreateTenant(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := newCA(t, r, caMasterKey).Load(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	err := r.tenant(ctx, "a", func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT count(*) FROM ca_generations").Scan(&n)
	})
	if err != nil || n != 0 {
		t.Fatalf("a tenant sees %d CA generations (err %v)", n, err)
	}
	if err := r.pool.QueryRow(ctx, "SELECT count(*) FROM ca_generations").Scan(&n); err != nil || n != 0 {
		t.Fatalf("an unscoped query sees %d CA generations (err %v)", n, err)
	}
	err = r.tenant(ctx, "a", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO ca_generations (id, root_cert, intermediate_cert, intermediate_key, master_key_id, created_at, retired_at)
			VALUES ('x', '', '', '', '', now(), now())`)
		return err
	})
	if err == nil {
		t.Fatal("a tenant wrote a CA generation")
	}
}

// TestCANotifies: adding a generation tells every node to reload.
func TestCANotifies(t *testing.T) {
	r := newRegistry(t)
	ctx, cancel := context.WithCancel(t.Context())
	changes := make(chan Change, 16)
	done := make(chan error, 1)
	go func() { done <- r.Listen(ctx, func(c Change) { changes <- c }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Listen: %v", err)
		}
	}()
	want := func(kind string) Change {
		t.Helper()
		for {
			select {
			case c := <-changes:
				if c.Kind == kind {
					return c
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no %s notification", kind)
			}
		}
	}
	want(ResyncKind)
	ca := newCA(t, r, caMasterKey)
	if err := ca.Load(ctx); err != nil {
		t.Fatal(err)
	}
	first := want(CAKind)
	gen, err := ca.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := want(CAKind); c.ID != gen || c.ID == first.ID || c.Tenant != tenants.ID("") {
		t.Fatalf("CA change %+v, want the new generation %s", c, gen)
	}
}
