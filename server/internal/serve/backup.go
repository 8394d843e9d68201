package serve

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/twofold-dev/twofold/server/internal/store/sqlite"
)

// ErrBackupPostgres: PostgreSQL is backed up with its own tools, which take a consistent
// snapshot of a live database (pg_dump).
var ErrBackupPostgres = errors.New("back up PostgreSQL with pg_dump -Fc (README: Backup and restore); twofold backup copies the embedded SQLite store")

// Backup writes a checked copy of the embedded store to path while verifiers go on serving
// from it. The copy holds sealed secrets only: the master key is backed up apart.
func Backup(ctx context.Context, cfg Config, path string) (sqlite.BackupInfo, error) {
	if cfg.Store != "" {
		return sqlite.BackupInfo{}, ErrBackupPostgres
	}
	file := filepath.Join(cfg.DataDir, DBFile)
	if _, err := os.Stat(file); err != nil {
		return sqlite.BackupInfo{}, fmt.Errorf("--data %s holds no store: %w", cfg.DataDir, err)
	}
	return sqlite.Backup(ctx, file, path)
}
