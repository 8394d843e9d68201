package seal

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func b64Key(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// Every source yields a keyring that opens what a keyring of the same keys sealed.
func TestKeySource_EachSource_OpensWhatItsKeysSealed(t *testing.T) {
	ctx := context.Background()
	primary, older := b64Key(t), b64Key(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "master.key")
	os.WriteFile(keyFile, []byte(primary+"\n"+older+"\n"), 0o600)
	script := filepath.Join(dir, "print-key")
	os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s\\n%s\\n' \"$1\" \"$2\"\n"), 0o700)

	ref, err := FromEnv(primary, older)
	if err != nil {
		t.Fatal(err)
	}
	sealedOld, _ := NewKeyring(mustKey(t, older)).Seal([]byte("old secret"), []byte("aad"))
	sealedNew, _ := ref.Seal([]byte("new secret"), []byte("aad"))
	for _, tc := range []struct {
		name string
		src  KeySource
	}{
		{"file", FileSource{Path: keyFile}},
		{"environment", EnvSource{Primary: primary, Previous: older}},
		{"command", CommandSource{Argv: []string{script, primary, older}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tc.src.Keyring(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, env := range [][]byte{sealedOld, sealedNew} {
				if _, err := r.Open(env, []byte("aad")); err != nil {
					t.Fatalf("open: %v", err)
				}
			}
			// It seals under the primary key: the reference keyring opens it.
			s, _ := r.Seal([]byte("x"), []byte("aad"))
			if _, err := NewKeyring(mustKey(t, primary)).Open(s, []byte("aad")); err != nil {
				t.Fatalf("not sealed under the primary key: %v", err)
			}
		})
	}
}

func mustKey(t *testing.T, b64 string) Key {
	k, err := ParseKey(b64)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A failing command is an error that names the command and never echoes a key it printed.
func TestCommandSource_Failures_NamedWithoutTheKey(t *testing.T) {
	key := b64Key(t)
	for _, tc := range []struct {
		name string
		argv []string
		want string
	}{
		{"exits non-zero", []string{"sh", "-c", "echo " + key + "; echo 'vault: permission denied' >&2; exit 3"}, "permission denied"},
		{"prints garbage", []string{"sh", "-c", "echo not-a-key"}, "no usable key"},
		{"prints nothing", []string{"true"}, "no usable key"},
		{"does not exist", []string{"/nonexistent/kms-cli"}, "kms-cli"},
		{"hangs", []string{"sleep", "10"}, "timed out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CommandSource{Argv: tc.argv, Timeout: 300 * time.Millisecond}.Keyring(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), key) {
				t.Fatalf("err %v, want it to say %q and not hold the key", err, tc.want)
			}
		})
	}
}

func TestSplitCommand_QuotesWithoutAShell(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{"vault kv get -field=key secret/twofold", []string{"vault", "kv", "get", "-field=key", "secret/twofold"}, true},
		{`sh -c 'gcloud kms decrypt --ciphertext-file=k.enc --plaintext-file=- | base64'`, []string{"sh", "-c", "gcloud kms decrypt --ciphertext-file=k.enc --plaintext-file=- | base64"}, true},
		{`tool "a b" c\ d ''`, []string{"tool", "a b", "c d", ""}, true},
		{`tool "unterminated`, nil, false},
	} {
		got, err := SplitCommand(tc.in)
		if (err == nil) != tc.ok || (tc.ok && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("%q: %q %v, want %q", tc.in, got, err, tc.want)
		}
	}
}

// A keyring from a command learns a key rotated in after it started, as one from a key
// file does: when a value sealed under a key it does not hold turns up (rotate-master
// re-sealed it), it runs the command again instead of failing until a restart.
func TestCommandSource_KeyRotatedInAfterStart_Opens(t *testing.T) {
	old, rotated := b64Key(t), b64Key(t)
	dir := t.TempDir()
	keys, runs := filepath.Join(dir, "keys"), filepath.Join(dir, "runs")
	os.WriteFile(keys, []byte(old+"\n"), 0o600)
	r, err := CommandSource{Argv: []string{"sh", "-c", "echo >>" + runs + "; cat " + keys}}.Keyring(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(keys, []byte(rotated+"\n"+old+"\n"), 0o600) // the operator's rotation
	sealed, _ := NewKeyring(mustKey(t, rotated)).Seal([]byte("secret"), []byte("aad"))
	if plain, err := r.Open(sealed, []byte("aad")); err != nil || string(plain) != "secret" {
		t.Fatalf("a value under the rotated key: %q %v", plain, err)
	}
	// From then on it seals under the new primary.
	s, _ := r.Seal([]byte("x"), []byte("aad"))
	if id, _ := r.KeyID(s); id != mustKey(t, rotated).ID() {
		t.Fatalf("sealed under %x, want the rotated key", id)
	}
	// A key the command does not print stays unknown, and the command is not run for
	// every such value.
	stray, _ := NewKeyring(mustKey(t, b64Key(t))).Seal([]byte("y"), []byte("aad"))
	for range 10 {
		if _, err := r.Open(stray, []byte("aad")); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("a value under an unknown key: %v, want ErrUnknownKey", err)
		}
	}
	if n, _ := os.ReadFile(runs); len(n) > 3 {
		t.Fatalf("the command ran %d times, want at most 3 (start, rotation, one more)", len(n))
	}
}
