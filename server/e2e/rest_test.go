package e2e

import (
	"bytes"
	"encoding/base32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
)

// Reads every byte under --data, the SQLite WAL included, while the verifier runs, and
// finds no TOTP secret (raw or base32) and no recovery code.
func TestDataAtRest_NoSecretsOrRecoveryCodesInAnyFile(t *testing.T) {
	v := startVerifier(t)
	var users []enrolled
	for _, u := range []string{"ivy", "jack", "kim"} {
		e := v.enroll(u)
		if r := e.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, e.Secret, v.Clock.Now().Add(30*time.Second))}); r.Status != 200 {
			t.Fatalf("verify: %d %s", r.Status, r.Raw)
		}
		users = append(users, e)
	}
	var needles [][]byte
	for _, e := range users {
		raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(e.Secret)
		if err != nil {
			t.Fatal(err)
		}
		needles = append(needles, raw, []byte(e.Secret), []byte(strings.ToLower(e.Secret)))
		for _, rc := range e.RecoveryCodes {
			needles = append(needles, []byte(rc), []byte(strings.ReplaceAll(rc, "-", "")), []byte(strings.ToUpper(rc)))
		}
	}
	files := 0
	err := filepath.WalkDir(v.Data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("%s contains a secret or recovery code (%d bytes)", filepath.Base(path), len(n))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 2 {
		t.Fatalf("read only %d files under --data; the scan proves nothing", files)
	}
}
