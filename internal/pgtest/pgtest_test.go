package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/blockgate/blockgate/migrations"
)

func TestMain(m *testing.M) { Main(m) }

func TestNew(t *testing.T) {
	pool := New(t)
	var (
		user             string
		super, bypassRLS bool
	)
	err := pool.QueryRow(t.Context(),
		`SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`).
		Scan(&user, &super, &bypassRLS)
	if err != nil {
		t.Fatal(err)
	}
	if user != "blockgate" || super || bypassRLS {
		t.Errorf("connected as %s (superuser %v, bypassrls %v), want blockgate without either", user, super, bypassRLS)
	}
	if n := pending(t, pool); n != 0 {
		t.Errorf("%d migrations pending, want the schema applied", n)
	}
}

func TestURLs(t *testing.T) {
	tests := []struct {
		name        string
		url         func(testing.TB) string
		wantUser    string
		wantPending bool
	}{
		{name: "NewURL", url: NewURL, wantUser: "blockgate"},
		{name: "AdminURL", url: AdminURL, wantUser: "blockgate_admin"},
		{name: "NewEmptyURL", url: NewEmptyURL, wantUser: "blockgate", wantPending: true},
	}
	if raw := os.Getenv(EnvURL); raw != "" {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		tests[1].wantUser = u.User.Username()
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := pgxpool.New(t.Context(), tt.url(t))
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			var user, owner string
			err = pool.QueryRow(t.Context(), `
				SELECT current_user, pg_get_userbyid(datdba)
				FROM pg_database WHERE datname = current_database()`).Scan(&user, &owner)
			if err != nil {
				t.Fatal(err)
			}
			if user != tt.wantUser || owner != "blockgate" {
				t.Errorf("user %s, database owner %s; want %s and blockgate", user, owner, tt.wantUser)
			}
			if n := pending(t, pool); (n > 0) != tt.wantPending {
				t.Errorf("%d migrations pending, want pending %v", n, tt.wantPending)
			}
		})
	}
}

func TestDatabasesAreSeparate(t *testing.T) {
	a, b := New(t), New(t)
	if _, err := a.Exec(t.Context(), `CREATE TABLE only_in_a (id int)`); err != nil {
		t.Fatal(err)
	}
	var found bool
	if err := b.QueryRow(t.Context(), `SELECT to_regclass('only_in_a') IS NOT NULL`).Scan(&found); err != nil {
		t.Fatal(err)
	}
	if found {
		t.Error("a table created in one test database shows up in another")
	}
}

func TestDatabaseDroppedAfterTest(t *testing.T) {
	var (
		names    []string
		leftOpen *pgx.Conn
	)
	t.Run("user", func(t *testing.T) {
		pool := New(t)
		var name string
		if err := pool.QueryRow(t.Context(), `SELECT current_database()`).Scan(&name); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		// A session the test forgets to close must not keep its database.
		conn, err := pgx.Connect(t.Context(), NewURL(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(t.Context(), `SELECT current_database()`).Scan(&name); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		leftOpen = conn
	})
	if leftOpen != nil {
		defer leftOpen.Close(context.Background())
	}

	admin, err := pgx.Connect(t.Context(), AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if len(names) != 2 {
		t.Fatalf("subtest made databases %v, want 2", names)
	}
	var left []string
	err = admin.QueryRow(t.Context(), `SELECT array(SELECT datname FROM pg_database WHERE datname = ANY($1))`, names).Scan(&left)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("databases %v still exist after their test ended", left)
	}
}

func TestParallel(t *testing.T) {
	for i := range 8 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			pool := New(t)
			if _, err := pool.Exec(t.Context(), `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)`); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDatabaseName(t *testing.T) {
	c := &cluster{prefix: "bgt_0a1b2c3d"}
	tests := []struct {
		name     string
		testName string
		want     string
	}{
		{name: "plain", testName: "TestNew", want: "bgt_0a1b2c3d_1_testnew"},
		{name: "subtest", testName: "TestURLs/Admin URL#01", want: "bgt_0a1b2c3d_2_testurls_admin_url_01"},
		{name: "long", testName: "Test" + strings.Repeat("x", 80), want: ("bgt_0a1b2c3d_3_test" + strings.Repeat("x", 80))[:63]},
		{name: "cut at separator", testName: strings.Repeat("a", 47) + "/b", want: "bgt_0a1b2c3d_4_" + strings.Repeat("a", 47)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.databaseName(tt.testName); got != tt.want {
				t.Errorf("databaseName(%q) = %q, want %q", tt.testName, got, tt.want)
			}
		})
	}
}

func TestWithDatabase(t *testing.T) {
	tests := []struct {
		name string
		base string
		db   string
		want string
	}{
		{
			name: "unix socket",
			base: "postgres://blockgate@/blockgate?host=/tmp/x/socket&port=5432&sslmode=disable",
			db:   "bgt_1",
			want: "postgres://blockgate@/bgt_1?host=/tmp/x/socket&port=5432&sslmode=disable",
		},
		{
			name: "tcp with dbname parameter",
			base: "postgres://admin:secret@db.example:5433/postgres?dbname=postgres&sslmode=require",
			db:   "bgt_2",
			want: "postgres://admin:secret@db.example:5433/bgt_2?sslmode=require",
		},
		{
			name: "keep database",
			base: "postgres://admin@localhost/postgres",
			want: "postgres://admin@localhost/postgres",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(tt.base)
			if err != nil {
				t.Fatal(err)
			}
			if got := withDatabase(u, tt.db); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func pending(t *testing.T, pool *pgxpool.Pool) int32 {
	t.Helper()
	conn, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	n, err := migrations.Pending(t.Context(), conn.Conn())
	if err != nil {
		t.Fatal(err)
	}
	return n
}
