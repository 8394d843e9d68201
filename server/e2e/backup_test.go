package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/serve"
	"github.com/twofold-dev/twofold/server/internal/store/pgtest"
)

// `twofold backup` copies the store of a verifier that is serving and signing people in,
// and the copy, restored as the README says (the file and the same master key in a data
// directory), is that verifier as it was: the codes used before the backup stay used, the
// audit trail verifies, and nothing secret is in the file in the clear.
func TestBackup_WhileServing_RestoredCopyRemembersUsedCodes(t *testing.T) {
	p, v, e, used := signedIn(t, "ivy")
	data := v.Data
	if r := e.call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: e.RecoveryCodes[0]}); r.Status != 200 {
		t.Fatalf("recovery code: %d %s", r.Status, r.Raw)
	}

	// The app's backend goes on asking tickets (each a write) while the backup runs.
	var wg sync.WaitGroup
	var stop atomic.Bool
	var issued atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			req, _ := http.NewRequest("POST", v.URL+"/v1/tickets", strings.NewReader(`{"user":"busy"}`))
			req.Header.Set("Authorization", "Bearer "+v.APIKey)
			req.Header.Set("Content-Type", "application/json")
			if res, err := http.DefaultClient.Do(req); err == nil {
				if res.StatusCode == 201 {
					issued.Add(1)
				}
				res.Body.Close()
			}
		}
	}()
	backup := filepath.Join(t.TempDir(), "twofold-backup.db")
	var info struct {
		Backup       string `json:"backup"`
		Bytes        int64  `json:"bytes"`
		TOTPs        int    `json:"totp_credentials"`
		AuditRecords int    `json:"audit_records"`
	}
	out := runCLI(t, "backup", "--data", data, "--to", backup)
	stop.Store(true)
	wg.Wait()
	if issued.Load() == 0 {
		t.Fatal("no ticket was issued while the backup ran")
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("backup printed %q: %v", out, err)
	}
	if info.Backup != backup || info.Bytes <= 0 || info.TOTPs < 1 || info.AuditRecords < 3 {
		t.Fatalf("backup: %+v, want the file with ivy's authenticator and her sign-ins' records", info)
	}
	file, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range append([]string{e.Secret}, e.RecoveryCodes...) {
		if bytes.Contains(file, []byte(secret)) {
			t.Fatalf("the backup holds %q in the clear", secret)
		}
	}

	// A second backup onto the first is refused and leaves it as it was.
	cmd := exec.Command(binary, "backup", "--data", data, "--to", backup)
	if msg, err := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(msg), "already exists") {
		t.Fatalf("a backup onto an existing file: %v %s, want exit 2 saying it exists", err, msg)
	}
	if again, _ := os.ReadFile(backup); !bytes.Equal(again, file) {
		t.Fatal("a refused backup changed the file")
	}

	// Restore: the copy as twofold.db beside the same master key, in a new directory.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-p.done
	p.done <- nil
	restored := t.TempDir()
	key, err := os.ReadFile(filepath.Join(data, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored, "master.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored, "twofold.db"), file, 0o600); err != nil {
		t.Fatal(err)
	}
	v.URL, v.Data = startProcess(t, restored).URL, restored
	b := v.ticket("ivy")
	if r := b.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: used}); r.Status != 409 || r.errCode() != wire.CodeCodeAlreadyUsed {
		t.Fatalf("the code used before the backup, on the restored copy: %d %s, want 409 %s", r.Status, r.Raw, wire.CodeCodeAlreadyUsed)
	}
	if r := b.call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: e.RecoveryCodes[0]}); r.Status == 200 {
		t.Fatalf("the recovery code used before the backup signed in again on the restored copy: %s", r.Raw)
	}
	if r := b.call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: e.RecoveryCodes[1]}); r.Status != 200 {
		t.Fatalf("an unused recovery code on the restored copy: %d %s", r.Status, r.Raw)
	}
	if rep, code := auditVerify(t, restored); code != 0 || !rep.OK {
		t.Fatalf("audit verify on the restored copy: exit %d, %+v", code, rep)
	}
}

// The README's PostgreSQL backup, as written: pg_dump -Fc of the live database, pg_restore
// into an empty one, and a verifier on it with the same master key, which remembers the
// codes used before the dump and whose audit trail verifies.
func TestBackup_PostgresDumpRestored_RemembersUsedCodes(t *testing.T) {
	for _, tool := range []string{"pg_dump", "pg_restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (Debian's postgresql-client, installed with the server)", tool)
		}
	}
	key := newMasterKey()
	v := startVerifierWith(t, func(c *serve.Config) { c.Store, c.MasterKey = pgtest.NewDatabase(t), key })
	e := v.enroll("pat")
	used := code(t, e.Secret, v.Clock.Now().Add(30*time.Second))
	if r := e.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: used}); r.Status != 200 {
		t.Fatalf("verify: %d %s", r.Status, r.Raw)
	}
	dump := filepath.Join(t.TempDir(), "twofold.dump")
	if out, err := exec.Command("pg_dump", "-Fc", "-d", v.cfg.Store, "-f", dump).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	restored := pgtest.NewDatabase(t)
	if out, err := exec.Command("pg_restore", "-d", restored, dump).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}

	r := &verifier{t: t, Data: t.TempDir(), APIKey: v.APIKey, Clock: v.Clock}
	r.cfg = v.cfg
	r.cfg.Store, r.cfg.DataDir = restored, r.Data
	r.serve()
	if got := r.ticket("pat").call("POST", "/v1/totp/verify", wire.CodeRequest{Code: used}); got.Status != 409 || got.errCode() != wire.CodeCodeAlreadyUsed {
		t.Fatalf("the code used before the dump, on the restored database: %d %s, want 409", got.Status, got.Raw)
	}
	if got := r.ticket("pat").call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: e.RecoveryCodes[0]}); got.Status != 200 {
		t.Fatalf("a recovery code on the restored database (its secret opened with the same master key): %d %s", got.Status, got.Raw)
	}
	cmd := exec.Command(binary, "audit", "verify", "--store", restored)
	cmd.Env = append(os.Environ(), "TWOFOLD_MASTER_KEY="+key)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("audit verify on the restored database: %v\n%s", err, out)
	}
}
