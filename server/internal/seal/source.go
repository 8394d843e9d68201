package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ParseKey decodes a base64 (standard encoding) 32-byte key. Its errors never contain
// the input.
func ParseKey(b64 string) (Key, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		// base64's error names only an offset, never the data.
		return Key{}, fmt.Errorf("master key is not valid base64: %w", err)
	}
	defer clear(raw)
	if len(raw) != len(Key{}) {
		return Key{}, fmt.Errorf("master key is %d bytes, want 32 (base64 of 32 random bytes, e.g. `openssl rand -base64 32`)", len(raw))
	}
	return Key(raw), nil
}

// FromEnv builds a keyring from TWOFOLD_MASTER_KEY (primaryB64) and
// TWOFOLD_MASTER_KEY_PREVIOUS (previousB64: comma-separated older keys, may be empty).
func FromEnv(primaryB64, previousB64 string) (*Keyring, error) {
	primary, err := ParseKey(primaryB64)
	if err != nil {
		return nil, err
	}
	var older []Key
	for i, s := range strings.Split(previousB64, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		k, err := ParseKey(s)
		if err != nil {
			return nil, fmt.Errorf("TWOFOLD_MASTER_KEY_PREVIOUS entry %d: %w", i+1, err)
		}
		older = append(older, k)
	}
	return NewKeyring(primary, older...), nil
}

// LoadFile returns a keyring backed by a key file: one base64 key per line, the first
// primary. The keyring re-reads the file when it changes, so a rotation by another
// process reaches it without a restart.
func LoadFile(path string) (*Keyring, error) {
	r := &Keyring{path: path}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// reload reads the key file into r.
func (r *Keyring) reload() error {
	keys, fi, err := readFile(r.path)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.set(keys)
	r.seen = fi
	return nil
}

// refresh reloads a file-backed keyring if the file was replaced or changed.
func (r *Keyring) refresh() error {
	if r.path == "" {
		return nil
	}
	fi, err := os.Stat(r.path)
	if err != nil {
		// The keys in memory still seal correctly; a missing file shows up at the next
		// start, where it matters.
		return nil
	}
	r.mu.RLock()
	seen := r.seen
	r.mu.RUnlock()
	// RotateFile renames a new file into place, so SameFile catches a rotation even
	// within one mtime tick.
	if os.SameFile(seen, fi) && seen.ModTime().Equal(fi.ModTime()) && seen.Size() == fi.Size() {
		return nil
	}
	return r.reload()
}

// readFile parses a key file. The FileInfo comes from the open file, so it describes
// exactly the contents that were read.
func readFile(path string) ([]Key, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read master key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("read master key file: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, nil, fmt.Errorf("read master key file: %w", err)
	}
	defer clear(data)
	keys, err := parseKeys(data)
	if err != nil {
		return nil, nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	return keys, fi, nil
}

func parseKeys(data []byte) ([]Key, error) {
	var keys []Key
	for i, line := range bytes.Split(data, []byte("\n")) {
		s := strings.TrimSpace(string(line))
		if s == "" {
			continue
		}
		k, err := ParseKey(s)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no keys")
	}
	return keys, nil
}

// EnsureFile creates the key file with one fresh key unless it exists. Processes starting
// together all end up using the one key that was linked into place first.
func EnsureFile(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	k, err := newKey()
	if err != nil {
		return err
	}
	tmp, err := writeTemp(path, encodeKeys([]Key{k}))
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	// Link fails if the name exists, so a complete file appears atomically and a second
	// process never overwrites the first one's key.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil
		}
		return fmt.Errorf("create master key file: %w", err)
	}
	return syncDir(path)
}

// RotateFile puts a new primary key at the top of the key file and keeps the older keys,
// so values sealed under them still open until they are re-sealed.
func RotateFile(path string) (Key, error) {
	// The staging file doubles as a lock: two rotations at once would each rename their
	// own file into place and one new key (perhaps already used to seal) would be lost.
	staging := path + ".rotating"
	f, err := os.OpenFile(staging, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return Key{}, fmt.Errorf("rotate master key: another rotation is in progress (remove %s if none is): %w", staging, err)
		}
		return Key{}, fmt.Errorf("rotate master key: %w", err)
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(staging)
		}
	}()
	old, _, err := readFile(path)
	if err != nil {
		return Key{}, err
	}
	k, err := newKey()
	if err != nil {
		return Key{}, err
	}
	if err := writeSync(f, encodeKeys(append([]Key{k}, old...))); err != nil {
		return Key{}, fmt.Errorf("rotate master key: %w", err)
	}
	done = true
	if err := os.Rename(staging, path); err != nil {
		os.Remove(staging)
		return Key{}, fmt.Errorf("rotate master key: %w", err)
	}
	return k, syncDir(path)
}

func newKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return Key{}, fmt.Errorf("generate master key: %w", err)
	}
	return k, nil
}

func encodeKeys(keys []Key) []byte {
	var b bytes.Buffer
	for _, k := range keys {
		b.WriteString(base64.StdEncoding.EncodeToString(k[:]))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// writeTemp writes data to a new 0600 file next to path and returns its name.
func writeTemp(path string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return "", fmt.Errorf("write master key file: %w", err)
	}
	if err := writeSync(f, data); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write master key file: %w", err)
	}
	return f.Name(), nil
}

// writeSync writes, forces to disk and closes f: a master key lost in a crash would make
// every sealed value unreadable.
func writeSync(f *os.File, data []byte) error {
	err := f.Chmod(0o600) // exactly 0600, whatever the umask
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a new directory entry durable.
func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("sync master key directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync master key directory: %w", err)
	}
	return nil
}
