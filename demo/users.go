package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

// The demo's own first factor: users with argon2id password hashes, kept in a JSON file.

// argon2id parameters: OWASP's minimum (19 MiB, 2 passes, 1 lane) keeps sign-ins quick on a
// small machine; raise memory first on a real one.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// hashPassword returns a PHC string: $argon2id$v=19$m=...,t=...,p=...$salt$hash.
func hashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// checkPassword compares in constant time with the parameters stored in the hash.
func checkPassword(phc, password string) bool {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

type user struct {
	Name      string    `json:"name"`
	Hash      string    `json:"hash"`
	CreatedAt time.Time `json:"created_at"`
}

// users is the user table: in memory, written through to a file.
type users struct {
	mu    sync.Mutex
	file  string
	byID  map[string]user
	dummy string // a hash to check against for unknown names, so they take as long
}

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,31}$`)

// seedUsers are created on first start; the sign-in page lists them.
var seedUsers = []string{"alice", "bob", "carol"}

const seedPassword = "twofold-demo"

func openUsers(file string) (*users, error) {
	u := &users{file: file, byID: map[string]user{}}
	var err error
	if u.dummy, err = hashPassword("not a password anyone has"); err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(file)
	switch {
	case errors.Is(err, os.ErrNotExist):
		for _, n := range seedUsers {
			h, err := hashPassword(seedPassword)
			if err != nil {
				return nil, err
			}
			u.byID[n] = user{Name: n, Hash: h, CreatedAt: time.Now().UTC()}
		}
		return u, u.save()
	case err != nil:
		return nil, err
	}
	var list []user
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	for _, x := range list {
		u.byID[x.Name] = x
	}
	return u, nil
}

func (u *users) save() error {
	list := make([]user, 0, len(u.byID))
	for _, x := range u.byID {
		list = append(list, x)
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	tmp := u.file + ".tmp"
	if err := os.MkdirAll(filepath.Dir(u.file), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, u.file)
}

var errTaken = errors.New("that name is taken")

// create adds a user; the name is checked by the caller.
func (u *users) create(name, password string) error {
	h, err := hashPassword(password)
	if err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.byID[name]; ok {
		return errTaken
	}
	u.byID[name] = user{Name: name, Hash: h, CreatedAt: time.Now().UTC()}
	return u.save()
}

// check reports whether name and password match, taking as long for an unknown name.
func (u *users) check(name, password string) bool {
	u.mu.Lock()
	x, ok := u.byID[name]
	u.mu.Unlock()
	if !ok {
		checkPassword(u.dummy, password)
		return false
	}
	return checkPassword(x.Hash, password)
}

func (u *users) exists(name string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.byID[name]
	return ok
}
