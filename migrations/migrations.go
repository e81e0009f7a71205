// Package migrations holds blockgate's PostgreSQL schema as numbered SQL
// files, embedded into the binary, and applies them with tern's migrator
// (github.com/jackc/tern/v2/migrate).
//
// Each file is NNN_description.sql in tern's format: the SQL that moves the
// schema forward, optionally followed by a line
//
//	---- create above / drop below ----
//
// and the SQL that undoes it. A migration runs in one transaction together
// with the bump of the version number, unless it contains the line
// "---- tern: disable-tx ----" (for CREATE INDEX CONCURRENTLY and the like).
// tern evaluates every file as a text/template first, so a literal "{{" in
// SQL must be written as {{"{{"}}. A released migration is never edited; a
// change to the schema is a new file.
//
// The schema version is the single row of public.blockgate_schema_version.
// Migrations run as the role the gateway connects as, so that role owns the
// tables; policies therefore need FORCE ROW LEVEL SECURITY to apply to it.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed *.sql
var files embed.FS

// VersionTable is the table that records the schema version, schema
// qualified as tern recommends.
const VersionTable = "public.blockgate_schema_version"

// ErrSchemaTooNew is returned (wrapped) when the database has migrations
// this binary does not know: it was migrated by a newer blockgate.
var ErrSchemaTooNew = errors.New("database schema is newer than this blockgate")

// Apply brings the database conn is connected to up to the latest schema and
// reports the version it found and the version it left. Applying an
// up-to-date schema changes nothing, so every gateway node calls Apply at
// start.
//
// Many nodes may call Apply at the same time. tern (v2.3.4, migrate.go)
// serialises them with a session-level advisory lock: NewMigrator, while
// creating the version table, and MigrateTo, for the whole run, hold
// pg_advisory_lock(9628173550095224) on the connection, and MigrateTo reads
// the current version only once it holds the lock. So each migration is
// applied exactly once; the other nodes wait and then find nothing to do.
// Advisory locks are per database, and session-level ones need a real
// session: conn must not go through a transaction-pooling proxy such as
// PgBouncer in transaction mode.
//
// from is the version when Apply got its turn; when another node migrated
// in the meantime, from equals to. On error, to is the version reached, as
// far as it could be read. Apply uses conn exclusively until it returns.
func Apply(ctx context.Context, conn *pgx.Conn, logger *slog.Logger) (from, to int32, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return 0, 0, fmt.Errorf("preparing %s: %w", VersionTable, err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return 0, 0, fmt.Errorf("loading migrations: %w", err)
	}
	latest := int32(len(m.Migrations))

	// Checked before taking the lock, for a clear message: versions only
	// grow, so a schema that is too new now stays too new.
	current, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("reading schema version: %w", err)
	}
	if current > latest {
		return current, current, tooNew(current, latest)
	}

	from = -1
	m.OnStart = func(sequence int32, name, direction, _ string) {
		if from < 0 {
			from = sequence - 1
		}
		logger.Info("applying migration", "version", sequence, "name", name, "direction", direction)
	}
	migrateErr := m.Migrate(ctx)

	to, err = m.GetCurrentVersion(context.WithoutCancel(ctx))
	if err != nil {
		to = max(from, current)
	}
	if from < 0 {
		from = to // another node (or nobody) had already done the work
	}
	if migrateErr != nil {
		return from, to, fmt.Errorf("migrating schema to version %d (stopped at %d): %w", latest, to, describe(migrateErr))
	}
	if err != nil {
		return from, to, fmt.Errorf("reading schema version: %w", err)
	}
	if from != to {
		logger.Info("schema migrated", "from", from, "to", to)
	} else {
		logger.Debug("schema up to date", "version", to)
	}
	return from, to, nil
}

// Pending returns how many migrations the database lacks, without changing
// anything (not even creating the version table).
func Pending(ctx context.Context, conn *pgx.Conn) (int32, error) {
	latest, err := latestVersion()
	if err != nil {
		return 0, err
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, VersionTable).Scan(&exists); err != nil {
		return 0, fmt.Errorf("looking for %s: %w", VersionTable, err)
	}
	if !exists {
		return latest, nil
	}
	var current int32
	if err := conn.QueryRow(ctx, `SELECT version FROM `+VersionTable).Scan(&current); err != nil {
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	if current > latest {
		return 0, tooNew(current, latest)
	}
	return latest - current, nil
}

// latestVersion is the version the embedded migrations lead to.
var latestVersion = sync.OnceValues(func() (int32, error) {
	names, err := migrate.FindMigrations(files)
	if err != nil {
		return 0, fmt.Errorf("listing migrations: %w", err)
	}
	return int32(len(names)), nil
})

func tooNew(current, latest int32) error {
	return fmt.Errorf("%w: the database is at version %d, this binary knows up to %d; upgrade blockgate",
		ErrSchemaTooNew, current, latest)
}

// describe adds the failing line of SQL to a migration's PostgreSQL error.
func describe(err error) error {
	var pgErr migrate.MigrationPgError
	if !errors.As(err, &pgErr) || pgErr.PgError == nil || pgErr.Position == 0 {
		return err
	}
	line, lineErr := migrate.ExtractErrorLine(pgErr.Sql, int(pgErr.Position))
	if lineErr != nil {
		return err
	}
	return fmt.Errorf("%w (at line %d of the migration's SQL: %s)", err, line.LineNum, line.Text)
}
