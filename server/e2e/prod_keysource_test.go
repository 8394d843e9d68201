package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
)

// The master key can come from an operator's command (how Vault or a KMS CLI is used):
// the verifier runs it, seals with what it prints, and writes no key file.
func TestMasterKeyCommand_ServesWithTheKeyItPrints_NoKeyFile(t *testing.T) {
	b := make([]byte, 32)
	rand.Read(b)
	key := base64.StdEncoding.EncodeToString(b)
	dir := t.TempDir()
	script := filepath.Join(dir, "kms-decrypt")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho "+key+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	flag := []string{"--master-key-command", script + " --field key"}
	apiKey := createAppCLI(t, data, nil, flag...)
	p := startServeArgs(t, data, "http", nil, flag...)
	v := &verifier{t: t, URL: p.URL, Data: data, APIKey: apiKey, Clock: &clock{}}
	e := v.enroll("kim")
	if r := e.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, e.Secret, time.Now().Add(30*time.Second))}); r.Status != 200 {
		t.Fatalf("verify: %d %s", r.Status, r.Raw)
	}
	if _, err := os.Stat(filepath.Join(data, "master.key")); !os.IsNotExist(err) {
		t.Fatalf("a master key file was written next to the store: %v", err)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
		exit int
	}{
		{"command fails", []string{"--master-key-command", "sh -c 'echo " + key + "; echo denied >&2; exit 1'"}, "denied", 1},
		{"unterminated quote", []string{"--master-key-command", "vault 'kv"}, "quote", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binary, append([]string{"audit", "verify", "--data", data}, tc.args...)...)
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != tc.exit {
				t.Fatalf("err %v, want exit %d; %s", err, tc.exit, out)
			}
			if strings.Contains(string(out), key) || !strings.Contains(string(out), tc.want) {
				t.Fatalf("output %q: want it to say %q and never print the key", out, tc.want)
			}
		})
	}
}
