// Package postgres is the scale-out store: the same statements as SQLite over pgx, so many
// verifier instances share durable state in one PostgreSQL database.
package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the driver

	"github.com/twofold-dev/twofold/server/internal/store/sqlstore"
)

// migrationLock is an arbitrary constant naming twofold's advisory lock.
const migrationLock = 0x7466_6f6c64

// Open connects to the database named by dsn (postgres://...) and migrates it.
func Open(ctx context.Context, dsn string) (*sqlstore.DB, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	return open(ctx, db)
}

// open migrates the database behind db and returns the store on it.
func open(ctx context.Context, db *sql.DB) (*sqlstore.DB, error) {
	// Several instances share one server's max_connections (100 by default); 16 each keeps
	// a handful of instances, the CLI and psql within it. Requests beyond 16 queue in Go.
	// All 16 stay open: with fewer idle, a busy verifier closed connections and opened new
	// ones (a server process each) all the time. Idle ones are closed after a while.
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s, err := sqlstore.New(ctx, db, sqlstore.Dialect{
		Name:         "postgres",
		Placeholders: sqlstore.DollarPlaceholders,
		Schema:       sqlstore.PostgresSchema,
		LockMigrations: func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock)
			return err
		},
		RunTx: runTx(db),
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	return s, nil
}
