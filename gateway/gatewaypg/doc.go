// Package gatewaypg runs a private PostgreSQL cluster from the machine's own
// PostgreSQL server binaries. The gateway uses it when it is started without
// --postgres-url, and the test harness (internal/pgtest) uses it to give every
// test binary a real server.
//
// # Layout
//
// Everything lives under Config.Dir, which is reused across runs:
//
//	Dir/blockgate.lock  held (flock) while a Server uses Dir
//	Dir/data/           the cluster (PGDATA), created by initdb on first start
//	Dir/socket/         the unix socket directory
//	Dir/postgres.log    initdb's and the postmaster's output, appended per run
//
// The cluster never listens on TCP (listen_addresses is empty): clients
// reach it through the unix socket only. A unix socket path is limited to
// about 100 bytes, so when Dir is deep the socket goes into a short temporary
// directory instead, removed again by Close.
//
// initdb runs into Dir/data.initdb and is renamed to Dir/data only when it
// succeeded, so an interrupted first start leaves nothing half-made behind.
//
// # Roles
//
// initdb creates the superuser blockgate_admin with trust authentication.
// The socket directory is private to the OS user postgres runs as (and root),
// which is what makes trust acceptable here: whoever can act as that user can
// read the data files directly anyway. Start then creates the login role blockgate
// (NOSUPERUSER, NOBYPASSRLS) and the database blockgate owned by it. The
// gateway connects with [Server.URL] as blockgate, so row-level security
// applies to it; [Server.AdminURL] is for tests and administration.
//
// # Running as root
//
// PostgreSQL refuses to run as root. When the gateway runs as root (typical in
// containers and CI), initdb and postgres run as the user nobody with its
// primary group (nogroup on Debian), and Dir is handed over to that user.
// Start checks beforehand that nobody can reach Dir and the binaries, and says
// which directory to open up if it cannot.
//
// # Lifetime
//
// The ctx given to [Start] bounds the start only: cancelling it during the
// start stops postgres again. After Start returns, postgres runs until
// [Server.Close], which asks for a fast shutdown and waits for it. Should the
// gateway die without calling Close, Linux delivers SIGINT (the same fast
// shutdown) to the postmaster as its parent-death signal; postgres also runs
// in its own process group, so a Ctrl-C meant for the gateway does not stop
// the database underneath it before the gateway has drained.
package gatewaypg
