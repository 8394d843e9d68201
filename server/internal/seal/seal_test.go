package seal_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/twofold-dev/twofold/server/internal/seal"
)

func key(b byte) seal.Key {
	var k seal.Key
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

func b64(k seal.Key) string { return base64.StdEncoding.EncodeToString(k[:]) }

func TestOpen_RefusesWhatItShould(t *testing.T) {
	ring := seal.NewKeyring(key(1))
	aad := []byte("totp:c1:app:alice")
	env, err := ring.Seal([]byte("JBSWY3DPEHPK3PXP"), aad)
	if err != nil {
		t.Fatal(err)
	}
	tampered := func(i int) []byte {
		e := bytes.Clone(env)
		e[i] ^= 1
		return e
	}
	tests := []struct {
		name     string
		ring     *seal.Keyring
		envelope []byte
		aad      []byte
		want     error // nil: opens to the plaintext
	}{
		{"round trip", ring, env, aad, nil},
		{"round trip under an older key", seal.NewKeyring(key(2), key(1)), env, aad, nil},
		{"other aad", ring, env, []byte("totp:c1:app:mallory"), seal.ErrCorrupt},
		{"no aad", ring, env, nil, seal.ErrCorrupt},
		{"version byte changed", ring, tampered(0), aad, seal.ErrCorrupt},
		{"nonce byte changed", ring, tampered(10), aad, seal.ErrCorrupt},
		{"ciphertext byte changed", ring, tampered(len(env) - 20), aad, seal.ErrCorrupt},
		{"tag byte changed", ring, tampered(len(env) - 1), aad, seal.ErrCorrupt},
		{"truncated", ring, env[:len(env)-1], aad, seal.ErrCorrupt},
		{"empty", ring, nil, aad, seal.ErrCorrupt},
		{"key ID changed", ring, tampered(3), aad, seal.ErrUnknownKey},
		{"key not in ring", seal.NewKeyring(key(2)), env, aad, seal.ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ring.Open(tt.envelope, tt.aad)
			if tt.want == nil {
				if err != nil || string(got) != "JBSWY3DPEHPK3PXP" {
					t.Fatalf("Open = %q, %v; want the plaintext", got, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSeal_EnvelopeNamesPrimaryAndFreshNonce(t *testing.T) {
	ring := seal.NewKeyring(key(1), key(2))
	a, _ := ring.Seal([]byte("x"), nil)
	b, _ := ring.Seal([]byte("x"), nil)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of one value are equal: nonce reused")
	}
	id, ok := ring.KeyID(a)
	if !ok || id != key(1).ID() || id != ring.PrimaryID() {
		t.Fatalf("KeyID = %x, %v; want primary %x", id, ok, key(1).ID())
	}
	if a[0] != 1 || len(a) != 1+8+12+1+16 {
		t.Fatalf("envelope layout: version %d, length %d", a[0], len(a))
	}
	if ring.NeedsReseal(a) {
		t.Error("NeedsReseal true for a value under the primary")
	}
	old, _ := seal.NewKeyring(key(2)).Seal([]byte("x"), nil)
	if !ring.NeedsReseal(old) {
		t.Error("NeedsReseal false for a value under an older key")
	}
}

func TestParseKey_ErrorsHoldNoKeyMaterial(t *testing.T) {
	short := base64.StdEncoding.EncodeToString([]byte("sixteen byte key"))
	tests := []struct{ name, in, want string }{
		{"valid", b64(key(7)), ""},
		{"surrounding space", " " + b64(key(7)) + "\n", ""},
		{"wrong length", short, "16 bytes, want 32"},
		{"not base64", "not base64 at all!", "not valid base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := seal.ParseKey(tt.in)
			if tt.want == "" {
				if err != nil || k != key(7) {
					t.Fatalf("ParseKey = %v, %v", k, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseKey error = %v, want it to say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), strings.TrimSpace(tt.in)) {
				t.Fatalf("error %q repeats the key", err)
			}
		})
	}
	if s := fmt.Sprintf("%v %s %x %#v", key(7), key(7), key(7), key(7)); strings.Contains(s, fmt.Sprintf("%x", [32]byte(key(7)))) {
		t.Fatalf("formatting a Key prints its bytes: %s", s)
	}
}

func TestFromEnv(t *testing.T) {
	old, _ := seal.NewKeyring(key(2)).Seal([]byte("v"), nil)
	tests := []struct {
		name, primary, previous string
		opensOld                bool
		wantErr                 string
	}{
		{"primary only", b64(key(1)), "", false, ""},
		{"with previous", b64(key(1)), b64(key(3)) + ", " + b64(key(2)) + ",", true, ""},
		{"bad primary", "AAAA", "", false, "3 bytes"},
		{"bad previous", b64(key(1)), b64(key(2)) + ",AAAA", false, "entry 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ring, err := seal.FromEnv(tt.primary, tt.previous)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FromEnv error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ring.PrimaryID() != key(1).ID() {
				t.Error("primary is not TWOFOLD_MASTER_KEY")
			}
			if _, err := ring.Open(old, nil); (err == nil) != tt.opensOld {
				t.Errorf("Open of a value under a previous key: %v", err)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	tests := []struct {
		name, content, wantErr string
	}{
		{"primary first, blank lines ignored", "\n" + b64(key(1)) + "\n\n" + b64(key(2)) + "\n", ""},
		{"no trailing newline", b64(key(1)), ""},
		{"empty", "\n\n", "no keys"},
		{"bad line", b64(key(1)) + "\nAAAA\n", "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "master.key")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			ring, err := seal.LoadFile(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadFile error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ring.PrimaryID() != key(1).ID() {
				t.Error("primary is not the first line")
			}
		})
	}
}

func TestRotateFile_RunningKeyringFollowsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	if err := seal.EnsureFile(path); err != nil {
		t.Fatal(err)
	}
	running, err := seal.LoadFile(path) // a verifier that started before the rotation
	if err != nil {
		t.Fatal(err)
	}
	before, _ := running.Seal([]byte("before"), []byte("a"))
	oldID := running.PrimaryID()

	fresh, err := seal.RotateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	assertMode0600(t, path)

	other, err := seal.LoadFile(path) // a process started after the rotation
	if err != nil {
		t.Fatal(err)
	}
	if other.PrimaryID() != fresh.ID() || fresh.ID() == oldID {
		t.Fatalf("primary after rotation = %x, want the new key %x", other.PrimaryID(), fresh.ID())
	}
	after, _ := other.Seal([]byte("after"), []byte("a"))

	// The running keyring opens a value sealed under a key it never loaded...
	if got, err := running.Open(after, []byte("a")); err != nil || string(got) != "after" {
		t.Fatalf("running keyring Open of a value sealed after rotation = %q, %v", got, err)
	}
	// ...still opens its own old values...
	if got, err := running.Open(before, []byte("a")); err != nil || string(got) != "before" {
		t.Fatalf("Open of a value sealed before rotation = %q, %v", got, err)
	}
	// ...and seals under the new primary from now on.
	now, _ := running.Seal([]byte("now"), []byte("a"))
	if id, _ := running.KeyID(now); id != fresh.ID() {
		t.Fatalf("running keyring seals under %x after rotation, want %x", id, fresh.ID())
	}
	if !running.NeedsReseal(before) || running.NeedsReseal(now) {
		t.Error("NeedsReseal does not follow the rotated primary")
	}
	if _, err := os.Stat(path + ".rotating"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staging file left behind: %v", err)
	}
}

func TestSeal_PicksUpRotationWithoutAnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	if err := seal.EnsureFile(path); err != nil {
		t.Fatal(err)
	}
	running, _ := seal.LoadFile(path)
	for range 3 { // back to back, within one mtime tick
		fresh, err := seal.RotateFile(path)
		if err != nil {
			t.Fatal(err)
		}
		env, _ := running.Seal([]byte("v"), nil)
		if id, _ := running.KeyID(env); id != fresh.ID() {
			t.Fatalf("sealed under %x, want the rotated primary %x", id, fresh.ID())
		}
	}
}

func TestRotateFile_RefusesWhileAnotherRotationRuns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	if err := seal.EnsureFile(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".rotating", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := seal.RotateFile(path); !errors.Is(err, os.ErrExist) {
		t.Fatalf("RotateFile during another rotation = %v, want ErrExist", err)
	}
}

func TestEnsureFile_ConcurrentStartsShareOneKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	const n = 16
	ids := make([][8]byte, n)
	errs := make([]error, n)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range n {
		wg.Go(func() {
			start.Wait()
			if errs[i] = seal.EnsureFile(path); errs[i] != nil {
				return
			}
			ring, err := seal.LoadFile(path)
			if errs[i] = err; err == nil {
				ids[i] = ring.PrimaryID()
			}
		})
	}
	start.Done()
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("process %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("process %d uses key %x, process 0 uses %x", i, ids[i], ids[0])
		}
	}
	data, _ := os.ReadFile(path)
	if lines := strings.Count(string(data), "\n"); lines != 1 {
		t.Fatalf("key file has %d lines, want 1", lines)
	}
	assertMode0600(t, path)
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*")); len(left) != 0 {
		t.Errorf("temp files left behind: %v", left)
	}
	// A second EnsureFile keeps the existing key.
	if err := seal.EnsureFile(path); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, data) {
		t.Fatal("EnsureFile replaced an existing key file")
	}
}

func assertMode0600(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Fatalf("%s mode %o, want 600", path, m)
	}
}

func TestKeyring_ConcurrentUseDuringRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	if err := seal.EnsureFile(path); err != nil {
		t.Fatal(err)
	}
	ring, _ := seal.LoadFile(path)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				env, err := ring.Seal([]byte("v"), []byte("a"))
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := ring.Open(env, []byte("a")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 5 {
		if _, err := seal.RotateFile(path); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}
