package gatewaypg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// clusterDir returns a path for a new cluster. When the test runs as root,
// postgres runs as nobody and must get through the directories above it:
// t.TempDir() and its parent are 0700, so open them up.
func clusterDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "pg")
}

func testConfig(t *testing.T, dir string) Config {
	return Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}
}

// start starts a cluster in dir and stops it when the test ends.
func start(t *testing.T, dir string) *Server {
	t.Helper()
	srv, err := Start(t.Context(), testConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return srv
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

func TestStart(t *testing.T) {
	dir := clusterDir(t)
	srv := start(t, dir)

	tests := []struct {
		name      string
		url       string
		wantUser  string
		wantDB    string
		wantSuper bool
	}{
		{name: "app", url: srv.URL(), wantUser: "blockgate", wantDB: "blockgate", wantSuper: false},
		{name: "admin", url: srv.AdminURL("postgres"), wantUser: "blockgate_admin", wantDB: "postgres", wantSuper: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := connect(t, tt.url)
			var (
				one              int
				user, db         string
				super, bypassRLS bool
			)
			err := conn.QueryRow(t.Context(), `
				SELECT 1, current_user, current_database(), rolsuper, rolbypassrls
				FROM pg_roles WHERE rolname = current_user`).
				Scan(&one, &user, &db, &super, &bypassRLS)
			if err != nil {
				t.Fatal(err)
			}
			if one != 1 || user != tt.wantUser || db != tt.wantDB {
				t.Errorf("got 1=%d user=%q db=%q, want user %q db %q", one, user, db, tt.wantUser, tt.wantDB)
			}
			if super != tt.wantSuper || bypassRLS != tt.wantSuper {
				t.Errorf("superuser=%v bypassrls=%v, want both %v", super, bypassRLS, tt.wantSuper)
			}
		})
	}

	var owner, listen, socketDir string
	err := connect(t, srv.AdminURL("postgres")).QueryRow(t.Context(), `
		SELECT pg_get_userbyid(datdba), current_setting('listen_addresses'), current_setting('unix_socket_directories')
		FROM pg_database WHERE datname = 'blockgate'`).Scan(&owner, &listen, &socketDir)
	if err != nil {
		t.Fatal(err)
	}
	if owner != "blockgate" {
		t.Errorf("database blockgate is owned by %q, want blockgate", owner)
	}
	if listen != "" {
		t.Errorf("listen_addresses = %q, want '' (unix socket only)", listen)
	}
	if want := filepath.Join(dir, "socket"); socketDir != want {
		t.Errorf("socket dir = %q, want %q", socketDir, want)
	}
}

func TestRestartReusesData(t *testing.T) {
	dir := clusterDir(t)

	srv := start(t, dir)
	conn := connect(t, srv.URL())
	if _, err := conn.Exec(t.Context(), `CREATE TABLE kept (v text); INSERT INTO kept VALUES ('hello')`); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())
	for range 2 { // Close is idempotent
		if err := srv.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	select {
	case <-srv.Done():
	default:
		t.Error("Done is not closed after Close")
	}

	srv = start(t, dir)
	var v string
	if err := connect(t, srv.URL()).QueryRow(t.Context(), `SELECT v FROM kept`).Scan(&v); err != nil || v != "hello" {
		t.Fatalf("after restart: v=%q err=%v, want hello", v, err)
	}
}

func TestLongDirUsesTemporarySocketDir(t *testing.T) {
	dir := filepath.Join(clusterDir(t), strings.Repeat("d", 60), strings.Repeat("e", 60))
	srv := start(t, dir)
	if strings.HasPrefix(srv.socketDir, dir) || !srv.tempSocketDir {
		t.Fatalf("socket dir %s is under the long dir", srv.socketDir)
	}
	var one int
	if err := connect(t, srv.URL()).QueryRow(t.Context(), `SELECT 1`).Scan(&one); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(srv.socketDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary socket dir %s not removed: %v", srv.socketDir, err)
	}
}

func TestMissingBinaries(t *testing.T) {
	empty := t.TempDir()
	onlyInitdb := t.TempDir()
	if err := os.WriteFile(filepath.Join(onlyInitdb, "initdb"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		binDir     string
		env        string
		wantLooked string
	}{
		{name: "empty BinDir", binDir: empty, wantLooked: empty},
		{name: "BinDir without postgres", binDir: onlyInitdb, wantLooked: onlyInitdb},
		{name: "empty BLOCKGATE_PG_BIN", env: empty, wantLooked: "$BLOCKGATE_PG_BIN=" + empty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(binEnv, tt.env)
			cfg := testConfig(t, clusterDir(t))
			cfg.BinDir = tt.binDir
			srv, err := Start(t.Context(), cfg)
			if err == nil {
				srv.Close()
				t.Fatal("Start succeeded without binaries")
			}
			if !errors.Is(err, ErrNoBinaries) {
				t.Errorf("error %v is not ErrNoBinaries", err)
			}
			for _, want := range []string{
				"no PostgreSQL server binaries found (looked in " + tt.wantLooked + ")",
				"apt-get install -y postgresql",
				"--postgres-url",
			} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestLeftoverPostmaster(t *testing.T) {
	// other is a live postgres that a pid file can point at.
	other := start(t, clusterDir(t))

	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string) // leaves a stopped cluster in dir
		wantErr string
	}{
		{
			name: "killed postmaster",
			prepare: func(t *testing.T, dir string) {
				// A killed postgres, or a crashed gateway without a
				// parent-death signal, leaves postmaster.pid behind.
				srv, err := Start(t.Context(), testConfig(t, dir))
				if err != nil {
					t.Fatal(err)
				}
				if err := killGroup(srv.cmd.Process.Pid); err != nil {
					t.Fatal(err)
				}
				<-srv.Done()
				_ = srv.Close() // reports the kill
			},
		},
		{
			name: "garbage pid file",
			prepare: func(t *testing.T, dir string) {
				writePIDFile(t, initCluster(t, dir), "not a pid")
			},
		},
		{
			name: "pid reused by another program",
			prepare: func(t *testing.T, dir string) {
				writePIDFile(t, initCluster(t, dir), fmt.Sprint(os.Getppid()))
			},
		},
		{
			name: "postgres still running",
			prepare: func(t *testing.T, dir string) {
				writePIDFile(t, initCluster(t, dir), fmt.Sprint(other.cmd.Process.Pid))
			},
			wantErr: fmt.Sprintf("postgres (pid %d) is still running", other.cmd.Process.Pid),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := clusterDir(t)
			tt.prepare(t, dir)
			srv, err := Start(t.Context(), testConfig(t, dir))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := srv.Close(); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				srv.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

// initCluster creates a cluster in dir, stops it and returns its data dir.
func initCluster(t *testing.T, dir string) string {
	t.Helper()
	srv, err := Start(t.Context(), testConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	return srv.dataDir
}

func writePIDFile(t *testing.T, dataDir, firstLine string) {
	t.Helper()
	path := filepath.Join(dataDir, "postmaster.pid")
	if err := os.WriteFile(path, []byte(firstLine+"\n"+dataDir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDirInUse(t *testing.T) {
	dir := clusterDir(t)
	start(t, dir)
	srv, err := Start(t.Context(), testConfig(t, dir))
	if err == nil {
		srv.Close()
		t.Fatal("second Start on the same dir succeeded")
	}
	if !strings.Contains(err.Error(), "in use by another blockgate process") {
		t.Errorf("unexpected error: %v", err)
	}
}

func TestStartCancelled(t *testing.T) {
	t.Run("before initdb", func(t *testing.T) {
		dir := clusterDir(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := Start(ctx, testConfig(t, dir)); !errors.Is(err, context.Canceled) {
			t.Fatalf("Start with a cancelled ctx: %v, want context.Canceled", err)
		}
		// Nothing half-made is left behind: the next start works.
		start(t, dir)
	})

	t.Run("while waiting for postgres", func(t *testing.T) {
		dir := clusterDir(t)
		ctx, cancel := context.WithCancel(t.Context())
		var launched *Server
		testHookLaunched = func(s *Server) { launched = s; cancel() }
		t.Cleanup(func() { testHookLaunched = nil })

		if _, err := Start(ctx, testConfig(t, dir)); !errors.Is(err, context.Canceled) {
			t.Fatalf("Start: %v, want context.Canceled", err)
		}
		select {
		case <-launched.Done():
		default:
			t.Fatal("postgres still runs after a cancelled Start")
		}
		testHookLaunched = nil
		start(t, dir)
	})
}

func TestUnreachableDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("postgres runs as another user only when the test runs as root")
	}
	locked := filepath.Join(clusterDir(t), "locked")
	if err := os.MkdirAll(filepath.Dir(locked), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(locked, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Start(t.Context(), testConfig(t, filepath.Join(locked, "pg")))
	if err == nil {
		t.Fatal("Start succeeded in a directory nobody cannot reach")
	}
	for _, want := range []string{"cannot get through " + locked, "chmod o+x " + locked, "--postgres-url"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		name      string
		out       string
		wantFull  string
		wantMajor string
		wantErr   bool
	}{
		{name: "debian", out: "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n", wantFull: "15.14", wantMajor: "15"},
		{name: "development", out: "postgres (PostgreSQL) 18devel", wantFull: "18", wantMajor: "18"},
		{name: "two-part major", out: "postgres (PostgreSQL) 9.6.24", wantFull: "9.6", wantMajor: "9.6"},
		{name: "garbage", out: "command not found", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := parseVersion(tt.out)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if v.full != tt.wantFull || v.major != tt.wantMajor {
				t.Errorf("got %+v, want full %q major %q", v, tt.wantFull, tt.wantMajor)
			}
		})
	}
}

// TestPostgresOwnProcessGroup checks that postgres does not share the
// gateway's process group, so a terminal's Ctrl-C does not reach it.
func TestPostgresOwnProcessGroup(t *testing.T) {
	srv := start(t, clusterDir(t))
	pid := srv.cmd.Process.Pid
	out, err := exec.Command("ps", "-o", "pgid=", "-p", fmt.Sprint(pid)).Output()
	if err != nil {
		t.Skipf("ps: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != fmt.Sprint(pid) {
		t.Errorf("postgres pgid = %s, want its own pid %d", got, pid)
	}
}
