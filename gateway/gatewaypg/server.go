package gatewaypg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// adminRole is the cluster's superuser, created by initdb.
	adminRole = "blockgate_admin"
	// appRole and appDatabase are what the gateway connects as and to.
	appRole     = "blockgate"
	appDatabase = "blockgate"

	// port only names the socket file (.s.PGSQL.5432): the cluster does not
	// listen on TCP, so it cannot clash with another server's port.
	port       = 5432
	socketName = ".s.PGSQL.5432"
	// maxSocketPath keeps the socket path under sun_path's limit (108 bytes
	// on Linux, 104 on macOS and the BSDs, both including the NUL).
	maxSocketPath = 100

	// startTimeout bounds the wait for the first accepted connection. It is
	// generous because a start after a crash replays the WAL first.
	startTimeout = 2 * time.Minute
	// Close asks for a fast shutdown, then an immediate one, then kills.
	fastShutdownTimeout      = 30 * time.Second
	immediateShutdownTimeout = 10 * time.Second

	// postgres.log is moved to postgres.log.1 at start once it is this big.
	logRotateSize = 16 << 20
	// On a failed start the error quotes at most this much of the log.
	logTailBytes = 4 << 10
	logTailLines = 30
)

// testHookLaunched, when set by a test, runs right after the postmaster was
// started and before Start waits for it.
var testHookLaunched func(*Server)

// Config says where the cluster lives. The zero value is not usable: Dir is
// required.
type Config struct {
	// Dir holds the cluster (see the package documentation for its layout).
	// It is created if missing and reused across runs. Required.
	Dir string
	// BinDir is a directory holding the initdb and postgres programs. When
	// empty, $BLOCKGATE_PG_BIN is used if set, otherwise the first directory
	// on $PATH that has both, otherwise the newest /usr/lib/postgresql/*/bin
	// (preferring the version that created an existing cluster).
	BinDir string
	// Logger receives lifecycle messages. Default: discard.
	Logger *slog.Logger
}

// account is the OS user initdb and postgres run as.
type account struct {
	name     string
	uid, gid uint32
	// switchTo is set when the gateway runs as root and the children must
	// switch to this account.
	switchTo bool
}

// Server is a running private PostgreSQL cluster. Its methods may be called
// concurrently.
type Server struct {
	logger    *slog.Logger
	dir       string
	dataDir   string
	socketDir string
	// tempSocketDir is set when socketDir is a temporary directory (because
	// Dir is too deep for a socket path) that Close removes.
	tempSocketDir bool

	lock     *os.File // flock on Dir/blockgate.lock; closing it unlocks
	log      *os.File // postgres.log, opened for appending
	logPath  string
	logStart int64 // size of postgres.log before this run

	cmd      *exec.Cmd     // the postmaster; nil until launched
	exited   chan struct{} // closed once the postmaster has been reaped
	exitErr  error         // cmd.Wait's result; read only after exited is closed
	stopping atomic.Bool   // set by Close, so an exit after it is expected

	closeOnce sync.Once
	closeErr  error
}

// Start creates the cluster in cfg.Dir if there is none yet, starts
// postgres, waits until it accepts connections, and makes sure the role and
// database behind [Server.URL] exist. Cancelling ctx during the start stops
// postgres again and makes Start fail; once Start has returned, ctx no longer
// matters and postgres runs until [Server.Close].
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("gatewaypg: Config.Dir is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("resolving postgres dir %s: %w", cfg.Dir, err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		logger:  logger.With("component", "postgres"),
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, "postgres.log"),
		exited:  make(chan struct{}),
	}
	if err := s.start(ctx, cfg.BinDir); err != nil {
		if s.log != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w\n\nlast lines of %s:\n%s", err, s.logPath, s.logTail())
		}
		if closeErr := s.Close(); closeErr != nil {
			// Usually postgres exiting early, which err already tells.
			s.logger.Debug("cleaning up after a failed start", "err", closeErr)
		}
		return nil, fmt.Errorf("starting private postgres in %s: %w", dir, err)
	}
	return s, nil
}

func (s *Server) start(ctx context.Context, binDir string) error {
	began := time.Now()
	acct, err := runAccount()
	if err != nil {
		return err
	}
	if err := s.prepareDir(acct); err != nil {
		return err
	}
	lock, err := lockFile(filepath.Join(s.dir, "blockgate.lock"))
	if err != nil {
		return err
	}
	s.lock = lock

	// A cluster made by another PostgreSQL major version cannot be opened,
	// so an existing one steers the choice of binaries.
	clusterMajor := ""
	if b, err := os.ReadFile(filepath.Join(s.dataDir, "PG_VERSION")); err == nil {
		clusterMajor = strings.TrimSpace(string(b))
	}
	bins, err := findBinaries(binDir, clusterMajor)
	if err != nil {
		return err
	}
	version, err := bins.version()
	if err != nil {
		return err
	}
	if clusterMajor != "" && version.major != clusterMajor {
		return fmt.Errorf("%s was made by PostgreSQL %s but %s is PostgreSQL %s; install PostgreSQL %s's server binaries (or point $%s at them), upgrade the cluster with pg_upgrade, or remove %s to start empty",
			s.dataDir, clusterMajor, bins.postgres, version.full, clusterMajor, binEnv, s.dataDir)
	}
	if acct.switchTo {
		for _, p := range []string{bins.initdb, bins.postgres} {
			if err := checkReachable(p, acct); err != nil {
				return err
			}
		}
	}
	s.logger.Info("starting postgres", "version", version.full, "bin", filepath.Dir(bins.postgres),
		"dir", s.dir, "user", acct.name)

	if err := s.openLog(version.full); err != nil {
		return err
	}
	if clusterMajor == "" {
		if err := s.initdb(ctx, bins, acct); err != nil {
			return err
		}
	} else if acct.switchTo {
		if err := checkOwner(s.dataDir, acct); err != nil {
			return err
		}
	}
	if err := s.prepareSocketDir(acct); err != nil {
		return err
	}
	if err := s.removeStalePIDFile(); err != nil {
		return err
	}
	if err := s.launch(bins, acct); err != nil {
		return err
	}
	if testHookLaunched != nil {
		testHookLaunched(s)
	}
	if err := s.waitReady(ctx); err != nil {
		return err
	}
	if err := s.ensureAppRole(ctx); err != nil {
		return err
	}
	s.logger.Info("postgres ready", "pid", s.cmd.Process.Pid, "socket", s.socketDir,
		"took", time.Since(began).Round(time.Millisecond))
	return nil
}

// prepareDir creates Dir (private to the account postgres runs as) and, when
// postgres will run as another user, hands Dir over to that user.
func (s *Server) prepareDir(acct account) error {
	parent := filepath.Dir(s.dir)
	// Parents get 0755 so that an unprivileged postgres can pass through.
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", parent, err)
	}
	if err := os.Mkdir(s.dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating %s: %w", s.dir, err)
	}
	if !acct.switchTo {
		return nil
	}
	if err := checkReachable(parent, acct); err != nil {
		return err
	}
	if err := os.Chown(s.dir, int(acct.uid), int(acct.gid)); err != nil {
		return fmt.Errorf("handing %s to %s: %w", s.dir, acct.name, err)
	}
	return nil
}

// openLog opens postgres.log for appending, first moving a big one aside.
func (s *Server) openLog(version string) error {
	if fi, err := os.Stat(s.logPath); err == nil && fi.Size() > logRotateSize {
		if err := os.Rename(s.logPath, s.logPath+".1"); err != nil {
			return fmt.Errorf("rotating %s: %w", s.logPath, err)
		}
	}
	f, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening postgres log: %w", err)
	}
	if _, err := fmt.Fprintf(f, "\n--- blockgate: starting PostgreSQL %s at %s ---\n",
		version, time.Now().Format(time.RFC3339)); err != nil {
		f.Close()
		return fmt.Errorf("writing postgres log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("opening postgres log: %w", err)
	}
	s.log, s.logStart = f, fi.Size()
	return nil
}

// initdb creates the cluster. It works in a scratch directory and renames it
// into place at the end, so that Dir/data exists only when it is complete.
func (s *Server) initdb(ctx context.Context, bins binaries, acct account) error {
	scratch := s.dataDir + ".initdb"
	if err := os.RemoveAll(scratch); err != nil {
		return fmt.Errorf("removing the remains of an interrupted initdb: %w", err)
	}
	if _, err := os.Stat(s.dataDir); err == nil {
		return fmt.Errorf("%s exists but is not a PostgreSQL cluster (no PG_VERSION); remove it or choose another dir", s.dataDir)
	}
	s.logger.Info("creating cluster", "dir", s.dataDir)

	cmd := exec.CommandContext(ctx, bins.initdb,
		"-D", scratch,
		"-U", adminRole,
		"--auth=trust",
		"-E", "UTF8",
		"--locale=C",
	)
	s.configureChild(cmd, acct, false)
	// initdb runs the server in bootstrap mode as its child; stop both.
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	if err := cmd.Run(); err != nil {
		_ = os.RemoveAll(scratch)
		if ctx.Err() != nil {
			return fmt.Errorf("running initdb: %w", ctx.Err())
		}
		return fmt.Errorf("running initdb: %w", err)
	}
	if err := appendConfig(filepath.Join(scratch, "postgresql.conf")); err != nil {
		return err
	}
	if err := os.Rename(scratch, s.dataDir); err != nil {
		return fmt.Errorf("moving the new cluster into place: %w", err)
	}
	return nil
}

// clusterConfig is appended to postgresql.conf when the cluster is created:
// light tuning for a development and test server.
const clusterConfig = `
# Added by blockgate (gateway/gatewaypg) for a private development server.
listen_addresses = ''		# unix socket only; its directory is passed with -k
max_connections = 200
shared_buffers = 128MB
fsync = on			# a development database should survive a crash too
`

func appendConfig(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("tuning postgresql.conf: %w", err)
	}
	_, err = io.WriteString(f, clusterConfig)
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("tuning postgresql.conf: %w", err)
	}
	return nil
}

// prepareSocketDir picks the unix socket directory: Dir/socket, or a short
// temporary directory when the socket path under Dir would be too long.
func (s *Server) prepareSocketDir(acct account) error {
	dir := filepath.Join(s.dir, "socket")
	if len(filepath.Join(dir, socketName)) <= maxSocketPath {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("creating socket dir: %w", err)
		}
	} else {
		tmp, err := os.MkdirTemp("", "bgpg")
		if err != nil {
			return fmt.Errorf("creating socket dir: %w", err)
		}
		dir = tmp
		s.tempSocketDir = true
		if len(filepath.Join(dir, socketName)) > maxSocketPath {
			return fmt.Errorf("socket path %s is longer than %d bytes even in the temporary directory; use a shorter TMPDIR", filepath.Join(dir, socketName), maxSocketPath)
		}
		if acct.switchTo {
			if err := checkReachable(filepath.Dir(dir), acct); err != nil {
				return err
			}
		}
	}
	s.socketDir = dir
	if acct.switchTo {
		if err := os.Chown(dir, int(acct.uid), int(acct.gid)); err != nil {
			return fmt.Errorf("handing socket dir to %s: %w", acct.name, err)
		}
	}
	return nil
}

// removeStalePIDFile deletes postmaster.pid when the postmaster it names is
// gone (the previous gateway was killed), and fails when it still runs.
func (s *Server) removeStalePIDFile() error {
	path := filepath.Join(s.dataDir, "postmaster.pid")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading postmaster.pid: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err == nil && pid > 0 && pid != os.Getpid() && processExists(pid) {
		// The pid may have been reused by an unrelated process since; only
		// a process that is postgres itself keeps the cluster busy.
		name, err := processName(pid)
		if err != nil || name == "postgres" || name == "postmaster" {
			return fmt.Errorf("postgres (pid %d) is still running on %s, probably left over by an earlier run; stop it (kill -INT %d) or pass --postgres-url", pid, s.dataDir, pid)
		}
	}
	s.logger.Info("removing stale postmaster.pid", "pid", first)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing stale postmaster.pid: %w", err)
	}
	return nil
}

// launch starts the postmaster and a goroutine that reaps it.
func (s *Server) launch(bins binaries, acct account) error {
	cmd := exec.Command(bins.postgres,
		"-D", s.dataDir,
		"-p", strconv.Itoa(port),
		"-k", s.socketDir,
		"-c", "listen_addresses=",
	)
	s.configureChild(cmd, acct, true)

	started := make(chan error, 1)
	go func() {
		// The parent-death signal fires when the thread that forked the
		// child exits, not the process (go.dev/issue/27505). Pin this
		// goroutine to its thread and keep it there, blocked in Wait, for as
		// long as postgres runs; the missing UnlockOSThread is deliberate:
		// the thread ends with the goroutine, after postgres has exited.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		err := cmd.Wait()
		if !s.stopping.Load() {
			s.logger.Error("postgres exited unexpectedly", "err", describeExit(err), "log", s.logPath)
		}
		s.exitErr = err
		close(s.exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	s.cmd = cmd
	return nil
}

// configureChild sets what initdb and postgres share: working directory,
// environment, output to postgres.log, user and process group.
func (s *Server) configureChild(cmd *exec.Cmd, acct account, tiedToParent bool) {
	cmd.Dir = s.dir
	cmd.Env = childEnv()
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	cmd.SysProcAttr = sysProcAttr(acct, tiedToParent)
}

// childEnv is the gateway's environment without PG* variables: the server
// reads some of them (PGDATA, PGPORT), and none of them should apply here.
func childEnv() []string {
	env := os.Environ()
	kept := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PG") {
			kept = append(kept, kv)
		}
	}
	return kept
}

// waitReady polls until postgres accepts a connection, exits, or ctx ends.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	connString := s.AdminURL("postgres")
	delay := 10 * time.Millisecond
	for {
		err := ping(ctx, connString)
		if err == nil {
			return nil
		}
		timer := time.NewTimer(delay)
		select {
		case <-s.exited:
			timer.Stop()
			return fmt.Errorf("postgres exited while starting: %s", describeExit(s.exitErr))
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("waiting for postgres to accept connections: %w (last attempt: %v)", ctx.Err(), err)
		case <-timer.C:
		}
		delay = min(2*delay, 250*time.Millisecond)
	}
}

func ping(ctx context.Context, connString string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// ensureAppRole creates the application's role and database if missing. It
// also reasserts the role's attributes that row-level security relies on.
func (s *Server) ensureAppRole(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.AdminURL("postgres"))
	if err != nil {
		return fmt.Errorf("connecting as %s: %w", adminRole, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	if _, err := conn.Exec(ctx, `
		DO $$
		BEGIN
			IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'blockgate') THEN
				CREATE ROLE blockgate LOGIN;
			END IF;
		END
		$$`); err != nil {
		return fmt.Errorf("creating role %s: %w", appRole, err)
	}
	if _, err := conn.Exec(ctx, `ALTER ROLE blockgate WITH LOGIN NOSUPERUSER NOBYPASSRLS`); err != nil {
		return fmt.Errorf("altering role %s: %w", appRole, err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, appDatabase).Scan(&exists); err != nil {
		return fmt.Errorf("looking up database %s: %w", appDatabase, err)
	}
	if !exists {
		// CREATE DATABASE cannot run in a transaction; Exec without
		// arguments sends it on its own, outside one.
		if _, err := conn.Exec(ctx, `CREATE DATABASE blockgate OWNER blockgate`); err != nil {
			return fmt.Errorf("creating database %s: %w", appDatabase, err)
		}
		s.logger.Info("created database", "database", appDatabase, "owner", appRole)
	}
	return nil
}

// URL is the connection string for the application role blockgate and the
// database blockgate. It is not subject to a password: the socket directory
// is private to the postgres user (and root).
func (s *Server) URL() string {
	return s.connURL(appRole, appDatabase)
}

// AdminURL is the connection string for the superuser and the database db.
// It is meant for tests and administration, not for the gateway's own work.
func (s *Server) AdminURL(db string) string {
	return s.connURL(adminRole, db)
}

// connURL builds a postgres:// URL for the socket directory. The host query
// parameter keeps its slashes unescaped, which pgx and libpq both accept, so
// that the URL stays readable in logs.
func (s *Server) connURL(user, db string) string {
	host := strings.ReplaceAll(url.QueryEscape(s.socketDir), "%2F", "/")
	return fmt.Sprintf("postgres://%s@/%s?host=%s&port=%d&sslmode=disable",
		url.PathEscape(user), url.PathEscape(db), host, port)
}

// Done is closed when the postmaster has exited, whether Close stopped it or
// it died. A supervisor can select on it to notice a dead database.
func (s *Server) Done() <-chan struct{} {
	return s.exited
}

// Close stops postgres with a fast shutdown (SIGINT: open transactions are
// rolled back, sessions ended, a checkpoint written), waits for it to exit,
// and releases Dir. It escalates to an immediate shutdown and then SIGKILL if
// postgres takes too long. It reports an error when postgres did not shut
// down cleanly, including when it had already died. Close may be called more
// than once and concurrently; later calls return the first call's result.
// Call it after everything using the database has stopped.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.shutdown() })
	return s.closeErr
}

func (s *Server) shutdown() error {
	var errs []error
	if s.cmd != nil {
		if err := s.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.tempSocketDir && s.socketDir != "" {
		if err := os.RemoveAll(s.socketDir); err != nil {
			errs = append(errs, fmt.Errorf("removing socket dir: %w", err))
		}
	}
	if s.log != nil {
		_ = s.log.Close() // children hold their own copies; nothing buffered here
	}
	if s.lock != nil {
		_ = s.lock.Close() // releases the flock
	}
	return errors.Join(errs...)
}

func (s *Server) stop() error {
	s.stopping.Store(true)
	select {
	case <-s.exited:
		return fmt.Errorf("postgres had already exited: %s", describeExit(s.exitErr))
	default:
	}
	pid := s.cmd.Process.Pid
	s.logger.Info("stopping postgres", "pid", pid)
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("asking postgres to shut down: %w", err)
	}
	if !s.waitExit(fastShutdownTimeout) {
		s.logger.Warn("postgres is slow to shut down; asking for an immediate shutdown", "pid", pid, "waited", fastShutdownTimeout)
		_ = s.cmd.Process.Signal(syscall.SIGQUIT)
		if !s.waitExit(immediateShutdownTimeout) {
			s.logger.Warn("killing postgres", "pid", pid)
			_ = killGroup(pid)
			<-s.exited
		}
	}
	if err := s.exitErr; err != nil && !diedOfSIGINT(err) {
		return fmt.Errorf("postgres shut down with %s", describeExit(err))
	}
	s.logger.Info("postgres stopped", "pid", pid)
	return nil
}

func (s *Server) waitExit(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-s.exited:
		return true
	case <-timer.C:
		return false
	}
}

// diedOfSIGINT reports whether the postmaster was killed by the SIGINT
// meant to shut it down: one that gets it before installing its handlers
// (Close right after launch) dies of it. Nothing ran yet, so that is as clean
// as a fast shutdown.
func diedOfSIGINT(err error) bool {
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return false
	}
	ws, ok := exitErr.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGINT
}

func describeExit(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// logTail returns the last lines postgres (or initdb) wrote during this run.
func (s *Server) logTail() string {
	f, err := os.Open(s.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	from := max(s.logStart, fi.Size()-logTailBytes)
	b := make([]byte, fi.Size()-from)
	if _, err := f.ReadAt(b, from); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if from > s.logStart && len(lines) > 1 {
		lines = lines[1:] // the first line is cut off
	}
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	tail := strings.Join(lines, "\n")
	if strings.TrimSpace(tail) == "" {
		return "(empty)"
	}
	return tail
}
