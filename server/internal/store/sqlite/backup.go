package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
)

// ErrBackupExists refuses a backup onto a file that is already there: an older backup is
// never overwritten.
var ErrBackupExists = errors.New("the backup file already exists")

// BackupInfo describes a backup that was written and checked.
type BackupInfo struct {
	Path         string `json:"backup"`
	Bytes        int64  `json:"bytes"`
	TOTPs        int64  `json:"totp_credentials"`
	Passkeys     int64  `json:"passkeys"`
	AuditRecords int64  `json:"audit_records"`
}

// Backup writes a consistent copy of the database file db to path while verifiers go on
// serving from it: VACUUM INTO reads one snapshot (a read transaction, which in WAL mode
// holds back no writer) into a new, compacted file. It opens db as it is, neither creating
// nor migrating it. The copy is synced to disk and checked before Backup returns; a copy
// that fails is removed.
func Backup(ctx context.Context, db, path string) (info BackupInfo, err error) {
	if path, err = filepath.Abs(path); err != nil {
		return BackupInfo{}, err
	}
	// The file is made here, empty, which VACUUM INTO accepts: no other may be overwritten,
	// and only its owner may read it (it holds hashed codes and who signed in from where).
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return BackupInfo{}, fmt.Errorf("%s: %w", path, ErrBackupExists)
	}
	if err != nil {
		return BackupInfo{}, err
	}
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()
	src, err := sql.Open("sqlite", "file:"+db+"?"+url.Values{"mode": {"rw"}, "_pragma": {"busy_timeout(15000)"}}.Encode())
	if err != nil {
		return BackupInfo{}, err
	}
	defer src.Close()
	if _, err := src.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return BackupInfo{}, fmt.Errorf("back up to %s: %w", path, err)
	}
	if err := syncFile(path); err != nil {
		return BackupInfo{}, fmt.Errorf("back up to %s: %w", path, err)
	}
	info, err = checkBackup(ctx, path)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("check backup %s: %w", path, err)
	}
	return info, nil
}

// syncFile makes the file at path, and its entry in its directory, durable.
func syncFile(path string) error {
	for _, p := range []string{path, filepath.Dir(path)} {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkBackup opens the copy as a file nothing writes to, runs SQLite's integrity check on
// it and counts what it holds.
func checkBackup(ctx context.Context, path string) (BackupInfo, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?"+url.Values{"immutable": {"1"}}.Encode())
	if err != nil {
		return BackupInfo{}, err
	}
	defer db.Close()
	var verdict string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&verdict); err != nil {
		return BackupInfo{}, err
	}
	if verdict != "ok" {
		return BackupInfo{}, fmt.Errorf("integrity check: %s", verdict)
	}
	info := BackupInfo{Path: path}
	err = db.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM totp_credentials WHERE confirmed = 1),
		(SELECT COUNT(*) FROM passkeys),
		(SELECT COUNT(*) FROM audit_log)`).Scan(&info.TOTPs, &info.Passkeys, &info.AuditRecords)
	if err != nil {
		return BackupInfo{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return BackupInfo{}, err
	}
	info.Bytes = fi.Size()
	return info, nil
}
