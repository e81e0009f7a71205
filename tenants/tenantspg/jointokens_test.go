package tenantspg

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/blockgate/blockgate/tenants"
)

func TestJoinTokens(t *testing.T) {
	r := newRegistry(t)
	ctx := t.Context()
	for _, id := range []tenants.ID{"acme", "globex"} {
		if _, err := r.CreateTenant(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := r.CreateApp(ctx, tenants.App{Tenant: id, ID: "orders"}); err != nil {
			t.Fatal(err)
		}
	}

	tok, text, err := r.IssueJoinToken(ctx, "acme", "orders", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text, JoinTokenPrefix) || len(text) != len(JoinTokenPrefix)+64 || tok.Tenant != "acme" || tok.AppID != "orders" ||
		!strings.HasPrefix(tok.ID, "jt_") || tok.RevokedAt != nil {
		t.Fatalf("issued %+v %q", tok, text)
	}
	if d := tok.ExpiresAt.Sub(tok.IssuedAt); d < time.Hour-time.Second || d > time.Hour+time.Second {
		t.Errorf("lifetime %s, want 1h", d)
	}
	got, err := r.VerifyJoinToken(ctx, text)
	if err != nil || got.ID != tok.ID || got.Tenant != "acme" || got.AppID != "orders" {
		t.Fatalf("verify: %+v %v", got, err)
	}

	t.Run("refused", func(t *testing.T) {
		tests := []struct {
			name, text string
		}{
			{"empty", ""},
			{"no prefix", strings.TrimPrefix(text, JoinTokenPrefix)},
			{"unknown", JoinTokenPrefix + strings.Repeat("0", 64)},
			{"altered", text[:len(text)-1] + "x"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := r.VerifyJoinToken(ctx, tt.text)
				if !errors.Is(err, ErrInvalidJoinToken) {
					t.Fatalf("err = %v, want ErrInvalidJoinToken", err)
				}
				if tt.text != "" && strings.Contains(err.Error(), tt.text) {
					t.Errorf("the error repeats the token: %v", err)
				}
			})
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		if _, _, err := r.IssueJoinToken(ctx, "acme", "nope", time.Hour); !isNotFound(err) {
			t.Errorf("token for a missing app: %v", err)
		}
		if _, _, err := r.IssueJoinToken(ctx, "nope", "orders", time.Hour); !isNotFound(err) {
			t.Errorf("token for a missing tenant: %v", err)
		}
		for _, ttl := range []time.Duration{0, -time.Second, MaxJoinTokenTTL + time.Hour} {
			if _, _, err := r.IssueJoinToken(ctx, "acme", "orders", ttl); err == nil {
				t.Errorf("ttl %s accepted", ttl)
			}
		}
	})

	t.Run("expired", func(t *testing.T) {
		short, shortText, err := r.IssueJoinToken(ctx, "acme", "orders", time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, err := r.VerifyJoinToken(ctx, shortText)
			if errors.Is(err, ErrInvalidJoinToken) {
				if got.ID != short.ID || !strings.Contains(err.Error(), "expired") {
					t.Errorf("expired token: %+v %v", got, err)
				}
				break
			}
			if err != nil || time.Now().After(deadline) {
				t.Fatalf("a token of 1ms still verifies: %v", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})

	t.Run("revoked", func(t *testing.T) {
		other, otherText, err := r.IssueJoinToken(ctx, "acme", "orders", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.RevokeJoinToken(ctx, "globex", other.ID); !isNotFound(err) {
			t.Errorf("revoking another tenant's token: %v", err)
		}
		if _, err := r.VerifyJoinToken(ctx, otherText); err != nil {
			t.Fatalf("another tenant revoked the token: %v", err)
		}
		revoked, err := r.RevokeJoinToken(ctx, "acme", other.ID)
		if err != nil || revoked.RevokedAt == nil {
			t.Fatalf("revoke: %+v %v", revoked, err)
		}
		again, err := r.RevokeJoinToken(ctx, "acme", other.ID)
		if err != nil || !again.RevokedAt.Equal(*revoked.RevokedAt) {
			t.Fatalf("revoking twice: %+v %v", again, err)
		}
		if got, err := r.VerifyJoinToken(ctx, otherText); !errors.Is(err, ErrInvalidJoinToken) || got.ID != other.ID ||
			!strings.Contains(err.Error(), "revoked") {
			t.Errorf("revoked token: %+v %v", got, err)
		}
		if _, err := r.RevokeJoinToken(ctx, "acme", "jt_nope"); !isNotFound(err) {
			t.Errorf("revoking an unknown token: %v", err)
		}
	})

	t.Run("list", func(t *testing.T) {
		list, err := r.JoinTokens(ctx, "acme")
		if err != nil || len(list) != 3 {
			t.Fatalf("acme's join tokens: %+v %v", list, err)
		}
		for i := 1; i < len(list); i++ {
			if list[i].IssuedAt.After(list[i-1].IssuedAt) {
				t.Errorf("not newest first: %+v", list)
			}
		}
		if list, err := r.JoinTokens(ctx, "globex"); err != nil || len(list) != 0 {
			t.Errorf("globex sees acme's join tokens: %+v %v", list, err)
		}
	})

	t.Run("deleted app", func(t *testing.T) {
		if err := r.DeleteApp(ctx, "acme", "orders"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.VerifyJoinToken(ctx, text); !errors.Is(err, ErrInvalidJoinToken) {
			t.Errorf("the token of a deleted app verifies: %v", err)
		}
	})
}

// TestJoinTokenNotifies: issuing and revoking a join token tell every
// node, so that the xDS servers end the streams of a revoked token.
func TestJoinTokenNotifies(t *testing.T) {
	r := newRegistry(t)
	if _, err := r.CreateTenant(t.Context(), "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateApp(t.Context(), tenants.App{Tenant: "acme", ID: "orders"}); err != nil {
		t.Fatal(err)
	}
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
	tok, _, err := r.IssueJoinToken(ctx, "acme", "orders", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if c := want(JoinTokenKind); c.ID != tok.ID || c.Tenant != "acme" {
		t.Errorf("issue notified %+v", c)
	}
	if _, err := r.RevokeJoinToken(ctx, "acme", tok.ID); err != nil {
		t.Fatal(err)
	}
	if c := want(JoinTokenKind); c.ID != tok.ID || c.Tenant != "acme" {
		t.Errorf("revoke notified %+v", c)
	}
}
