// Package pgtest starts one private PostgreSQL cluster per test binary and hands each test a fresh, migrated database.
//
// A package whose tests need PostgreSQL calls [Main] from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		pool := pgtest.New(t)
//		...
//	}
//
// The cluster starts on the first request for a database, so a test binary
// that never asks pays nothing. It runs from the machine's PostgreSQL server
// binaries (see gateway/gatewaypg, which also says what to install when they
// are missing) in a directory under os.TempDir that Main removes at the end.
// The data is throwaway, so fsync, full_page_writes and synchronous_commit
// are off.
//
// The migrations are applied once per test binary, to a template database;
// each test gets a copy of it (CREATE DATABASE ... TEMPLATE), which is much
// faster than migrating again, and the copy is dropped when the test ends.
// Tests connect as the application role blockgate, which is neither
// superuser nor BYPASSRLS and owns the tables, exactly as the gateway does,
// so row-level security applies as in production.
//
// With BLOCKGATE_TEST_POSTGRES_URL set to a postgres:// URL of a superuser on
// an external server (PostgreSQL 13 or later), that server is used instead.
// The role blockgate is created there if it is missing, with the password
// "blockgate". Every database a test binary creates is named bgt_<random>_...
// so that test binaries running at the same time do not collide; a binary
// that crashes may leave some behind.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/blockgate/blockgate/gateway/gatewaypg"
	"github.com/blockgate/blockgate/migrations"
)

// EnvURL names the environment variable holding a superuser URL of an
// external server to use instead of a private cluster.
const EnvURL = "BLOCKGATE_TEST_POSTGRES_URL"

const (
	// appRole is the role the gateway connects as; appPassword is set only
	// when pgtest creates the role on an external server.
	appRole     = "blockgate"
	appPassword = "blockgate"

	// setupTimeout covers initdb, start and the template's migrations, on
	// a machine that may be busy running many test binaries.
	setupTimeout = 5 * time.Minute
	// dbTimeout bounds creating or dropping one test database.
	dbTimeout = time.Minute

	maxIdentifier = 63 // PostgreSQL's NAMEDATALEN - 1
)

var (
	mu         sync.Mutex
	mainCalled bool
	shared     *cluster // started by the first test that needs it
	sharedErr  error    // why it could not be started; every later test fails with it
)

// Main runs the tests of a package that uses pgtest and then stops the
// cluster and removes its directory. Call it from TestMain; when TestMain
// returns, the testing package exits with m.Run's result.
func Main(m *testing.M) {
	mu.Lock()
	mainCalled = true
	mu.Unlock()

	code := m.Run()

	mu.Lock()
	c := shared
	shared, sharedErr = nil, errors.New("pgtest.Main has already finished")
	mu.Unlock()
	if c == nil {
		return
	}
	if err := c.close(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			os.Exit(1)
		}
	}
}

// New creates a fresh database with the schema applied and returns a pool
// connected to it as the application role. The pool is closed and the
// database dropped when the test ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	connString := NewURL(t)
	// pgxpool.New only parses; connections are made on demand.
	pool, err := pgxpool.New(context.Background(), connString)
	if err != nil {
		t.Fatalf("pgtest: creating pool: %v", err)
	}
	t.Cleanup(pool.Close) // runs before the database is dropped
	return pool
}

// NewURL is like [New] but returns the connection URL (application role)
// instead of a pool. Whatever the test opens with it, it must close; the
// database is dropped when the test ends, ending any sessions left.
func NewURL(t testing.TB) string {
	t.Helper()
	c := get(t)
	return c.appURL(c.createDatabase(t, true))
}

// AdminURL returns a superuser URL of a fresh database with the schema
// applied, dropped when the test ends. It is for tests that must see or do
// what the application role cannot, such as reading past row-level security.
func AdminURL(t testing.TB) string {
	t.Helper()
	c := get(t)
	return c.adminURL(c.createDatabase(t, true))
}

// NewEmptyURL returns the application role's URL of a fresh database without
// the schema, owned by that role, dropped when the test ends. It is for
// testing the migrations themselves.
func NewEmptyURL(t testing.TB) string {
	t.Helper()
	c := get(t)
	return c.appURL(c.createDatabase(t, false))
}

// get returns the shared cluster, starting it on first use.
func get(t testing.TB) *cluster {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if !mainCalled {
		t.Fatal("pgtest: call pgtest.Main from this package's TestMain: func TestMain(m *testing.M) { pgtest.Main(m) }")
	}
	if shared == nil && sharedErr == nil {
		shared, sharedErr = setup()
	}
	if sharedErr != nil {
		t.Fatalf("pgtest: %v", sharedErr)
	}
	return shared
}

// cluster is the server a test binary uses and what it made there.
type cluster struct {
	srv      *gatewaypg.Server // nil for an external server
	dir      string            // the private cluster's directory
	admin    *url.URL          // superuser
	app      *url.URL          // application role
	pool     *pgxpool.Pool     // superuser, for CREATE and DROP DATABASE
	prefix   string            // of every database this binary creates
	template string            // the migrated database each test's copies
	seq      atomic.Int64
}

func setup() (*cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	c := &cluster{prefix: "bgt_" + randomHex(4)}
	err := c.open(ctx, logger)
	if err == nil {
		err = c.makeTemplate(ctx, logger)
	}
	if err != nil {
		if closeErr := c.close(); closeErr != nil {
			err = errors.Join(err, closeErr)
		}
		return nil, err
	}
	return c, nil
}

// open starts the private cluster, or checks the external server, and
// connects the superuser pool.
func (c *cluster) open(ctx context.Context, logger *slog.Logger) error {
	if raw := os.Getenv(EnvURL); raw != "" {
		if err := c.useExternal(ctx, raw); err != nil {
			return err
		}
	} else if err := c.startPrivate(ctx, logger); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, c.adminURL(""))
	if err != nil {
		return fmt.Errorf("connecting as superuser: %w", err)
	}
	c.pool = pool
	return nil
}

func (c *cluster) startPrivate(ctx context.Context, logger *slog.Logger) error {
	dir, err := os.MkdirTemp("", "blockgate-pgtest-")
	if err != nil {
		return fmt.Errorf("creating cluster dir: %w", err)
	}
	c.dir = dir
	// MkdirTemp makes it 0700; when the tests run as root, postgres runs as
	// nobody and must get through it.
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("opening up cluster dir: %w", err)
	}
	srv, err := gatewaypg.Start(ctx, gatewaypg.Config{Dir: dir, Logger: logger})
	if err != nil {
		return err
	}
	c.srv = srv
	if c.admin, err = url.Parse(srv.AdminURL("postgres")); err != nil {
		return fmt.Errorf("parsing admin URL: %w", err)
	}
	if c.app, err = url.Parse(srv.URL()); err != nil {
		return fmt.Errorf("parsing app URL: %w", err)
	}

	// The data is thrown away at the end: trade durability for speed.
	// These settings apply on reload, to the running cluster.
	conn, err := pgx.Connect(ctx, srv.AdminURL("postgres"))
	if err != nil {
		return fmt.Errorf("connecting as superuser: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, stmt := range []string{
		`ALTER SYSTEM SET fsync = off`,
		`ALTER SYSTEM SET full_page_writes = off`,
		`ALTER SYSTEM SET synchronous_commit = off`,
		`SELECT pg_reload_conf()`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("tuning the test cluster (%s): %w", stmt, err)
		}
	}
	return nil
}

func (c *cluster) useExternal(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// Not quoting raw: it may hold a password.
		return fmt.Errorf("%s must be a postgres:// URL", EnvURL)
	}
	c.admin = u
	app := *u
	app.User = url.UserPassword(appRole, appPassword)
	q := app.Query()
	if q.Has("user") || q.Has("password") {
		q.Del("user")
		q.Del("password")
		app.RawQuery = q.Encode()
	}
	c.app = &app

	conn, err := pgx.Connect(ctx, raw)
	if err != nil {
		return fmt.Errorf("connecting to the server in %s: %w", EnvURL, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var super, bypassRLS bool
	err = conn.QueryRow(ctx, `SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1`, appRole).
		Scan(&super, &bypassRLS)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		_, err = conn.Exec(ctx, `CREATE ROLE blockgate LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD 'blockgate'`)
		if isDuplicate(err) {
			err = nil // another test binary created it just now
		}
		if err != nil {
			return fmt.Errorf("creating role %s: %w", appRole, err)
		}
	case err != nil:
		return fmt.Errorf("looking up role %s: %w", appRole, err)
	case super || bypassRLS:
		return fmt.Errorf("role %s on the server in %s is a superuser or bypasses row-level security; the tests need it as the gateway has it (NOSUPERUSER NOBYPASSRLS)", appRole, EnvURL)
	}
	return nil
}

// isDuplicate reports a CREATE that lost a race: duplicate_object, or
// unique_violation from the catalog when both ran at the same moment.
func isDuplicate(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42710" || pgErr.Code == "23505")
}

// makeTemplate creates the database every test's database is copied from,
// migrated by the application role so that it owns the tables.
func (c *cluster) makeTemplate(ctx context.Context, logger *slog.Logger) error {
	name := c.prefix + "_template"
	if _, err := c.pool.Exec(ctx, `CREATE DATABASE `+ident(name)+` OWNER `+ident(appRole)); err != nil {
		return fmt.Errorf("creating template database: %w", err)
	}
	c.template = name

	conn, err := pgx.Connect(ctx, c.appURL(name))
	if err != nil {
		return fmt.Errorf("connecting to template database: %w", err)
	}
	_, _, err = migrations.Apply(ctx, conn, logger)
	if closeErr := conn.Close(ctx); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("migrating template database: %w", err)
	}
	// CREATE DATABASE cannot copy a database that has sessions; make sure
	// nothing connects to the template again.
	if _, err := c.pool.Exec(ctx, `ALTER DATABASE `+ident(name)+` WITH ALLOW_CONNECTIONS false IS_TEMPLATE true`); err != nil {
		return fmt.Errorf("sealing template database: %w", err)
	}
	return nil
}

// createDatabase creates a database owned by the application role, a copy
// of the migrated template or empty, and drops it when the test ends.
func (c *cluster) createDatabase(t testing.TB, migrated bool) string {
	t.Helper()
	name := c.databaseName(t.Name())
	stmt := `CREATE DATABASE ` + ident(name) + ` OWNER ` + ident(appRole)
	if migrated {
		stmt += ` TEMPLATE ` + ident(c.template)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	if _, err := c.pool.Exec(ctx, stmt); err != nil {
		t.Fatalf("pgtest: creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
		defer cancel()
		// FORCE (PostgreSQL 13+) ends the sessions a test left open.
		if _, err := c.pool.Exec(ctx, `DROP DATABASE IF EXISTS `+ident(name)+` WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: dropping database %s: %v", name, err)
		}
	})
	return name
}

// databaseName makes a unique database name that shows which test it is for.
func (c *cluster) databaseName(testName string) string {
	name := fmt.Sprintf("%s_%d_%s", c.prefix, c.seq.Add(1), slug(testName))
	if len(name) > maxIdentifier {
		name = strings.TrimRight(name[:maxIdentifier], "_")
	}
	return name
}

// slug lowercases s and turns every run of other characters than letters
// and digits into one underscore.
func slug(s string) string {
	var b strings.Builder
	underscore := false
	for _, r := range strings.ToLower(s) {
		if ('a' <= r && r <= 'z') || ('0' <= r && r <= '9') {
			b.WriteRune(r)
			underscore = false
		} else if !underscore && b.Len() > 0 {
			b.WriteByte('_')
			underscore = true
		}
	}
	return strings.TrimRight(b.String(), "_")
}

func (c *cluster) appURL(db string) string   { return withDatabase(c.app, db) }
func (c *cluster) adminURL(db string) string { return withDatabase(c.admin, db) }

// withDatabase returns u for database db; an empty db keeps u's own.
func withDatabase(u *url.URL, db string) string {
	v := *u
	if db != "" {
		v.Path, v.RawPath = "/"+db, ""
		if q := v.Query(); q.Has("dbname") {
			q.Del("dbname")
			v.RawQuery = q.Encode()
		}
	}
	return v.String()
}

// close drops what this binary made on an external server, or stops the
// private cluster and removes its directory.
func (c *cluster) close() error {
	var errs []error
	if c.pool != nil {
		if c.srv == nil && c.template != "" {
			ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
			for _, stmt := range []string{
				`ALTER DATABASE ` + ident(c.template) + ` WITH IS_TEMPLATE false`,
				`DROP DATABASE IF EXISTS ` + ident(c.template) + ` WITH (FORCE)`,
			} {
				if _, err := c.pool.Exec(ctx, stmt); err != nil {
					errs = append(errs, fmt.Errorf("dropping template database: %w", err))
					break
				}
			}
			cancel()
		}
		c.pool.Close()
	}
	if c.srv != nil {
		if err := c.srv.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stopping postgres: %w", err))
		}
	}
	if c.dir != "" {
		if err := os.RemoveAll(c.dir); err != nil {
			errs = append(errs, fmt.Errorf("removing cluster dir: %w", err))
		}
	}
	return errors.Join(errs...)
}

func ident(name string) string {
	return pgx.Identifier{name}.Sanitize()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
