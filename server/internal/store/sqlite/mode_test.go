//go:build unix

package sqlite_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/twofold-dev/twofold/server/internal/store/sqlite"
)

// A new store's file and its WAL and shared-memory files are the owner's alone, whatever
// the umask and the data directory's mode: like a backup, they hold hashed API keys,
// tickets and codes and the audit trail (who signed in from where).
func TestOpen_NewFile_DatabaseWALAndSHMOwnerOnly(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "twofold.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.SQL().ExecContext(t.Context(), `CREATE TABLE probe (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want -rw-------", filepath.Base(name), fi.Mode().Perm())
		}
	}
}
