package tenantspg

import (
	"errors"
	"testing"
	"time"

	"github.com/blockgate/blockgate/tenants"
)

func isNotFound(err error) bool { return errors.Is(err, tenants.ErrNotFound) }

func TestAdminTokens(t *testing.T) {
	r := newRegistry(t)
	ctx := t.Context()
	for _, id := range []tenants.ID{"acme", "globex"} {
		if _, err := r.CreateTenant(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().Truncate(time.Second)
	tok := AdminToken{ID: "adm_1", Tenant: "acme", Name: "alice", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	hash := [32]byte{1, 2, 3}
	if err := r.CreateAdminToken(ctx, tok, hash); err != nil {
		t.Fatal(err)
	}
	if err := r.CreateAdminToken(ctx, AdminToken{ID: "adm_2", Tenant: "nope", IssuedAt: now, ExpiresAt: now.Add(time.Hour)},
		[32]byte{9}); !isNotFound(err) {
		t.Errorf("admin token of a missing tenant: %v", err)
	}
	if err := r.CreateAdminToken(ctx, AdminToken{ID: "adm_3", Tenant: "globex", IssuedAt: now, ExpiresAt: now.Add(time.Hour)},
		[32]byte{4}); err != nil {
		t.Fatal(err)
	}

	got, err := r.AdminTokenByHash(ctx, hash)
	if err != nil || got.ID != "adm_1" || got.Tenant != "acme" || got.Name != "alice" || !got.ExpiresAt.Equal(tok.ExpiresAt) {
		t.Fatalf("by hash: %+v %v", got, err)
	}
	if _, err := r.AdminTokenByHash(ctx, [32]byte{7}); !isNotFound(err) {
		t.Errorf("unknown hash: %v", err)
	}
	list, err := r.AdminTokens(ctx, "acme")
	if err != nil || len(list) != 1 || list[0].ID != "adm_1" {
		t.Fatalf("acme's admin tokens: %+v %v", list, err)
	}
	revoked, err := r.RevokeAdminToken(ctx, "adm_1")
	if err != nil || revoked.RevokedAt == nil {
		t.Fatalf("revoke: %+v %v", revoked, err)
	}
	again, err := r.RevokeAdminToken(ctx, "adm_1")
	if err != nil || !again.RevokedAt.Equal(*revoked.RevokedAt) {
		t.Fatalf("revoking twice: %+v %v", again, err)
	}
	if _, err := r.RevokeAdminToken(ctx, "adm_nope"); !isNotFound(err) {
		t.Errorf("revoking an unknown token: %v", err)
	}
	if got, err := r.AdminToken(ctx, "adm_3"); err != nil || got.Tenant != "globex" {
		t.Fatalf("by id: %+v %v", got, err)
	}

	if err := r.DeleteTenant(ctx, "globex"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AdminTokenByHash(ctx, [32]byte{4}); !isNotFound(err) {
		t.Errorf("a deleted tenant's admin token is still there: %v", err)
	}
}
