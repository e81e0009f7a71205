package migrations_test

import (
	"context"
	"errors"
	"io/fs"
	"regexp"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"

	"github.com/blockgate/blockgate/internal/pgtest"
	"github.com/blockgate/blockgate/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// latest is the version the embedded migrations lead to.
func latest(t *testing.T) int32 {
	t.Helper()
	names, err := migrate.FindMigrations(migrations.Files)
	if err != nil {
		t.Fatal(err)
	}
	return int32(len(names))
}

func connect(t *testing.T, connString string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), connString)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestFileNames(t *testing.T) {
	valid := regexp.MustCompile(`^\d{3}_[a-z0-9_]+\.sql$`)
	names, err := fs.Glob(migrations.Files, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if !valid.MatchString(name) {
			t.Errorf("%s is not named NNN_description.sql; tern would skip or misnumber it", name)
		}
	}
	if n := latest(t); int(n) != len(names) || n == 0 {
		t.Errorf("%d numbered migrations among %d files", n, len(names))
	}
}

func TestApplyTwice(t *testing.T) {
	conn := connect(t, pgtest.NewEmptyURL(t))
	want := latest(t)

	tests := []struct {
		name     string
		wantFrom int32
	}{
		{name: "empty database", wantFrom: 0},
		{name: "already migrated", wantFrom: want},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, to, err := migrations.Apply(t.Context(), conn, nil)
			if err != nil {
				t.Fatal(err)
			}
			if from != tt.wantFrom || to != want {
				t.Errorf("Apply = %d→%d, want %d→%d", from, to, tt.wantFrom, want)
			}
			var version int32
			if err := conn.QueryRow(t.Context(), `SELECT version FROM blockgate_schema_version`).Scan(&version); err != nil {
				t.Fatal(err)
			}
			if version != want {
				t.Errorf("blockgate_schema_version = %d, want %d", version, want)
			}
			if n, err := migrations.Pending(t.Context(), conn); err != nil || n != 0 {
				t.Errorf("Pending = %d, %v; want 0", n, err)
			}
		})
	}
}

// TestApplyConcurrently starts several nodes' worth of Apply on one database
// at once: tern's advisory lock must let exactly one of them do the work.
func TestApplyConcurrently(t *testing.T) {
	url := pgtest.NewEmptyURL(t)
	want := latest(t)
	const nodes = 6
	conns := make([]*pgx.Conn, nodes)
	for i := range conns {
		conns[i] = connect(t, url)
	}

	type result struct {
		from, to int32
		err      error
	}
	results := make([]result, nodes)
	var wg sync.WaitGroup
	for i, conn := range conns {
		wg.Go(func() {
			from, to, err := migrations.Apply(t.Context(), conn, nil)
			results[i] = result{from, to, err}
		})
	}
	wg.Wait()

	migrated := 0
	for i, r := range results {
		if r.err != nil {
			t.Errorf("node %d: %v", i, r.err)
			continue
		}
		if r.to != want {
			t.Errorf("node %d left version %d, want %d", i, r.to, want)
		}
		if r.from != r.to {
			migrated++
		}
	}
	if migrated != 1 {
		t.Errorf("%d nodes applied migrations, want exactly 1: %+v", migrated, results)
	}
}

func TestPending(t *testing.T) {
	conn := connect(t, pgtest.NewEmptyURL(t))
	n, err := migrations.Pending(t.Context(), conn)
	if err != nil || n != latest(t) {
		t.Fatalf("Pending on an empty database = %d, %v; want %d", n, err, latest(t))
	}
	var exists bool
	if err := conn.QueryRow(t.Context(), `SELECT to_regclass('blockgate_schema_version') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Errorf("Pending created the version table (exists=%v, err=%v)", exists, err)
	}
}

func TestSchemaTooNew(t *testing.T) {
	conn := connect(t, pgtest.NewURL(t))
	if _, err := conn.Exec(t.Context(), `UPDATE blockgate_schema_version SET version = version + 1`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := migrations.Apply(t.Context(), conn, nil); !errors.Is(err, migrations.ErrSchemaTooNew) {
		t.Errorf("Apply: %v, want ErrSchemaTooNew", err)
	}
	if _, err := migrations.Pending(t.Context(), conn); !errors.Is(err, migrations.ErrSchemaTooNew) {
		t.Errorf("Pending: %v, want ErrSchemaTooNew", err)
	}
}

// TestDownAndUp runs every migration's down part and then all up again, so
// that a broken "drop below" section shows up before someone needs it.
func TestDownAndUp(t *testing.T) {
	conn := connect(t, pgtest.NewURL(t))
	m, err := migrate.NewMigrator(t.Context(), conn, migrations.VersionTable)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadMigrations(migrations.Files); err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(t.Context(), 0); err != nil {
		t.Fatalf("migrating down to 0: %v", err)
	}
	var tables int
	err = conn.QueryRow(t.Context(), `
		SELECT count(*) FROM pg_tables
		WHERE schemaname = 'public' AND tablename <> 'blockgate_schema_version'`).Scan(&tables)
	if err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("%d tables left after migrating down to 0", tables)
	}
	if from, to, err := migrations.Apply(t.Context(), conn, nil); err != nil || from != 0 || to != latest(t) {
		t.Errorf("Apply after down = %d→%d, %v; want 0→%d", from, to, err, latest(t))
	}
}
