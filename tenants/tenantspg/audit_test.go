package tenantspg

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestAuditLog(t *testing.T) {
	r := newRegistry(t)
	ctx := t.Context()

	write := []AuditEntry{
		{Tenant: "acme", ActorRole: "platform", ActorID: "platform", Method: "POST", Route: "/v1/tenants/:tenant/apps",
			Path: "/v1/tenants/acme/apps", TargetTenant: "acme", Target: "orders", Status: 201, ClientAddr: "10.0.0.1"},
		{Tenant: "globex", ActorRole: "tenant", ActorID: "adm_1", ActorName: "alice", Method: "DELETE",
			Route: "/v1/tenants/:tenant/apps/:app", Path: "/v1/tenants/acme/apps/orders", TargetTenant: "acme",
			Target: "orders", Status: 403, ClientAddr: "10.0.0.2"},
		{ActorRole: "platform", ActorID: "platform", Method: "POST", Route: "/v1/signing-keys/rotate",
			Path: "/v1/signing-keys/rotate", Status: 200},
		{ActorRole: "anonymous", Method: "POST", Route: "/v1/tenants", Path: "/v1/tenants", Status: 401},
	}
	for _, e := range write {
		if err := r.WriteAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name    string
		q       AuditQuery
		targets []string // Route of each entry, newest first
	}{
		{name: "platform sees all", q: AuditQuery{}, targets: []string{"/v1/tenants", "/v1/signing-keys/rotate",
			"/v1/tenants/:tenant/apps/:app", "/v1/tenants/:tenant/apps"}},
		{name: "one tenant", q: AuditQuery{Tenant: "acme"}, targets: []string{"/v1/tenants/:tenant/apps"}},
		{name: "attempt recorded in the actor's log", q: AuditQuery{Tenant: "globex"}, targets: []string{"/v1/tenants/:tenant/apps/:app"}},
		{name: "limit", q: AuditQuery{Limit: 1}, targets: []string{"/v1/tenants"}},
		{name: "nothing before the start", q: AuditQuery{Before: time.Now().Add(-time.Hour)}, targets: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.AuditLog(t.Context(), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			var routes []string
			for _, e := range got {
				routes = append(routes, e.Route)
			}
			if len(routes) != len(tt.targets) {
				t.Fatalf("routes %q, want %q", routes, tt.targets)
			}
			for i := range routes {
				if routes[i] != tt.targets[i] {
					t.Fatalf("routes %q, want %q", routes, tt.targets)
				}
			}
		})
	}

	all, err := r.AuditLog(ctx, AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	got := all[2] // the tenant admin's refused attempt
	want := write[1]
	got.ID, got.At = 0, time.Time{}
	if got != want {
		t.Errorf("entry read back as %+v, want %+v", got, want)
	}
	if all[0].At.IsZero() || all[0].ID <= all[1].ID {
		t.Errorf("entries not stamped and ordered: %+v", all[:2])
	}
	if _, err := r.AuditLog(ctx, AuditQuery{Before: all[0].At.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
}

// TestAuditLogPolicies checks the row-level security itself, below the
// registry's filters: a tenant-scoped transaction sees only its tenant's
// entries even without a WHERE, cannot write entries, and nobody can change
// or delete one.
func TestAuditLogPolicies(t *testing.T) {
	r := newRegistry(t)
	ctx := t.Context()
	for _, e := range []AuditEntry{
		{Tenant: "acme", ActorRole: "platform", ActorID: "platform", Method: "PUT", Route: "/a", Path: "/a", Status: 200},
		{Tenant: "globex", ActorRole: "platform", ActorID: "platform", Method: "PUT", Route: "/b", Path: "/b", Status: 200},
		{ActorRole: "platform", ActorID: "platform", Method: "POST", Route: "/c", Path: "/c", Status: 200},
	} {
		if err := r.WriteAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}

	var n int
	if err := r.tenant(ctx, "acme", func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT count(*) FROM audit_log").Scan(&n)
	}); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("a tenant-scoped transaction sees %d entries, want its 1", n)
	}

	if err := r.tenant(ctx, "acme", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO audit_log (tenant_id, actor_role, actor_id, method, route, path, status)
			VALUES ('acme', 'platform', 'platform', 'POST', '/forged', '/forged', 200)`)
		return err
	}); err == nil {
		t.Error("a tenant-scoped transaction wrote an audit entry")
	}

	for _, stmt := range []string{"UPDATE audit_log SET status = 204", "DELETE FROM audit_log"} {
		err := r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
			tag, err := tx.Exec(ctx, stmt)
			if err == nil && tag.RowsAffected() != 0 {
				t.Errorf("%s changed %d entries", stmt, tag.RowsAffected())
			}
			return nil, err
		})
		if err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	all, err := r.AuditLog(ctx, AuditQuery{})
	if err != nil || len(all) != 3 || all[0].Status != 200 {
		t.Fatalf("entries after update and delete: %+v %v", all, err)
	}
}
