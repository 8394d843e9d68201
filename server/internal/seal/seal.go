// Package seal encrypts values at rest with AES-256-GCM under a master keyring. Every
// envelope names the key that sealed it, so the master key can be rotated while old
// values still open, and re-sealed one by one afterwards.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Errors callers branch on.
var (
	// ErrUnknownKey means the envelope was sealed under a key this keyring does not hold.
	ErrUnknownKey = errors.New("seal: unknown master key")
	// ErrCorrupt means the envelope is malformed, was altered, or belongs to other aad.
	ErrCorrupt = errors.New("seal: corrupt envelope")
)

// Key is a 256-bit master key.
type Key [32]byte

// ID names the key inside envelopes without revealing it.
func (k Key) ID() [8]byte {
	h := sha256.New()
	h.Write([]byte("twofold-master-key-id"))
	h.Write(k[:])
	return [8]byte(h.Sum(nil))
}

// String shows only the key ID, so a key that reaches a log or an error stays secret.
func (k Key) String() string { id := k.ID(); return "seal.Key(" + hex.EncodeToString(id[:]) + ")" }

// GoString keeps %#v from printing the key bytes.
func (k Key) GoString() string { return k.String() }

const (
	version   = 1
	nonceSize = 12
	headSize  = 1 + 8 + nonceSize
)

// Keyring seals under its primary key and opens under any key it holds. It is safe for
// concurrent use. A keyring loaded from a file follows that file as it is rotated; one
// from a command runs it again when a value under a key it lacks turns up.
type Keyring struct {
	mu      sync.RWMutex
	primary [8]byte
	aeads   map[[8]byte]cipher.AEAD

	path string      // key file, "" when the keys came from elsewhere
	seen os.FileInfo // the key file as last loaded

	// fetch, when set, gets the keys again from where they came from (a command); it
	// runs at most once per refetchEvery, one call at a time.
	fetch     func() ([]Key, error)
	fetchMu   sync.Mutex
	fetchedAt time.Time
}

// refetchEvery bounds how often a keyring runs its command again: values under a key the
// command does not print must not run it on every request.
const refetchEvery = time.Second

// NewKeyring returns a keyring that seals under primary and also opens values sealed
// under any of older.
func NewKeyring(primary Key, older ...Key) *Keyring {
	r := &Keyring{}
	r.set(append([]Key{primary}, older...))
	return r
}

// set replaces the keys; the first is primary. The caller holds r.mu (or owns r).
func (r *Keyring) set(keys []Key) {
	r.primary = keys[0].ID()
	r.aeads = make(map[[8]byte]cipher.AEAD, len(keys))
	for _, k := range keys {
		block, err := aes.NewCipher(k[:])
		if err != nil {
			panic(err) // unreachable: a 32-byte key is always a valid AES key
		}
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			panic(err) // unreachable: AES has a 16-byte block
		}
		r.aeads[k.ID()] = gcm
	}
}

// Seal encrypts plaintext under the primary key. aad is not stored but must be given to
// Open again: it binds the value to where it is kept (e.g. "totp:<id>:<app>:<user>").
func (r *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	// Another process may have rotated the key file; seal under its new primary at once
	// so values stop being written under a key that is being retired.
	if err := r.refresh(); err != nil {
		return nil, err
	}
	r.mu.RLock()
	id, gcm := r.primary, r.aeads[r.primary]
	r.mu.RUnlock()

	out := make([]byte, headSize, headSize+len(plaintext)+gcm.Overhead())
	out[0] = version
	copy(out[1:9], id[:])
	if _, err := rand.Read(out[9:headSize]); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return gcm.Seal(out, out[9:headSize], plaintext, aad), nil
}

// Open decrypts an envelope made by Seal with the same aad.
func (r *Keyring) Open(envelope, aad []byte) ([]byte, error) {
	id, ok := r.KeyID(envelope)
	if !ok {
		return nil, ErrCorrupt
	}
	gcm := r.aead(id)
	if gcm == nil && (r.path != "" || r.fetch != nil) {
		// A value sealed by another process under a key rotated in after we loaded.
		if err := r.follow(id); err != nil {
			return nil, err
		}
		gcm = r.aead(id)
	}
	if gcm == nil {
		return nil, fmt.Errorf("%w %x", ErrUnknownKey, id)
	}
	plain, err := gcm.Open(nil, envelope[9:headSize], envelope[headSize:], aad)
	if err != nil {
		return nil, ErrCorrupt
	}
	return plain, nil
}

// follow loads the keys again from the key file or the command, to find key id.
func (r *Keyring) follow(id [8]byte) error {
	if r.path != "" {
		return r.reload()
	}
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	if r.aead(id) != nil || time.Since(r.fetchedAt) < refetchEvery {
		return nil // another caller fetched it meanwhile, or fetched just now
	}
	keys, err := r.fetch()
	r.fetchedAt = time.Now()
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	held := r.aeads
	r.set(keys)
	// A key it no longer prints is kept until a restart: values may still be under it.
	for id, gcm := range held {
		if r.aeads[id] == nil {
			r.aeads[id] = gcm
		}
	}
	return nil
}

func (r *Keyring) aead(id [8]byte) cipher.AEAD {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.aeads[id]
}

// KeyID reports which key sealed envelope; false if it is not an envelope.
func (r *Keyring) KeyID(envelope []byte) ([8]byte, bool) {
	if len(envelope) < headSize+16 || envelope[0] != version {
		return [8]byte{}, false
	}
	return [8]byte(envelope[1:9]), true
}

// PrimaryID is the ID of the key new values are sealed under.
func (r *Keyring) PrimaryID() [8]byte {
	_ = r.refresh() // on failure the loaded primary is still the best answer
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.primary
}

// IDs are the IDs of the keys the keyring holds now, the primary first.
func (r *Keyring) IDs() [][8]byte {
	_ = r.refresh()
	r.mu.RLock()
	defer r.mu.RUnlock()
	ids := [][8]byte{r.primary}
	for id := range r.aeads {
		if id != r.primary {
			ids = append(ids, id)
		}
	}
	return ids
}

// NeedsReseal reports whether envelope was sealed under a key other than the primary.
// A malformed envelope reports false: re-sealing cannot help it.
func (r *Keyring) NeedsReseal(envelope []byte) bool {
	id, ok := r.KeyID(envelope)
	return ok && id != r.PrimaryID()
}
