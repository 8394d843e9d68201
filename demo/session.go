package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"time"
)

// The session lives in a cookie, sealed with AES-256-GCM (authenticated, so it is signed,
// and encrypted, since it carries the verifier ticket). The key is in the demo's data dir.

const cookieName = "demo_session"

const sessionLifetime = 8 * time.Hour

type stage string

const (
	stageAnonymous stage = ""
	stagePassword  stage = "password"  // first factor passed, second factor pending
	stageSignedIn  stage = "signed_in" // both passed
)

type session struct {
	User  string    `json:"u,omitempty"`
	Stage stage     `json:"s,omitempty"`
	CSRF  string    `json:"c"`
	Exp   time.Time `json:"e"`
	// Ticket is the last verifier ticket handed to this session's pages, its expiry and
	// the nonce bound into the tokens it leads to. Elevated: a token from it was verified,
	// so the security page may manage factors with it until it expires.
	Ticket    string    `json:"t,omitempty"`
	TicketExp time.Time `json:"te,omitempty"`
	Nonce     string    `json:"n,omitempty"`
	Elevated  bool      `json:"el,omitempty"`
	// NewAuthenticator: signed in with a recovery code; prompt for a new authenticator.
	NewAuthenticator bool `json:"na,omitempty"`
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// liveTicket is the session's ticket when at least a minute of it is left.
func (s *session) liveTicket(now time.Time) bool {
	return s.Ticket != "" && now.Add(time.Minute).Before(s.TicketExp)
}

type sealer struct {
	aead   cipher.AEAD
	secure bool
}

// loadKey reads the 32-byte session key from file, creating it (mode 0600) on first start.
func loadKey(file string) ([]byte, error) {
	key, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		return key, os.WriteFile(file, key, 0o600)
	}
	if err == nil && len(key) != 32 {
		return nil, errors.New(file + ": the session key must be 32 bytes")
	}
	return key, err
}

func newSealer(key []byte, secure bool) (*sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, secure: secure}, nil
}

// read returns the request's session, or a fresh anonymous one (with a CSRF token) when
// there is none or it does not open.
func (k *sealer) read(r *http.Request, now time.Time) *session {
	if c, err := r.Cookie(cookieName); err == nil {
		if raw, err := base64.RawURLEncoding.DecodeString(c.Value); err == nil && len(raw) > k.aead.NonceSize() {
			n := k.aead.NonceSize()
			if plain, err := k.aead.Open(nil, raw[:n], raw[n:], []byte(cookieName)); err == nil {
				var s session
				if json.Unmarshal(plain, &s) == nil && now.Before(s.Exp) && s.CSRF != "" {
					return &s
				}
			}
		}
	}
	return &session{CSRF: randomString(24), Exp: now.Add(sessionLifetime)}
}

func (k *sealer) write(w http.ResponseWriter, s *session) {
	plain, _ := json.Marshal(s)
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	sealed := k.aead.Seal(nonce, nonce, plain, []byte(cookieName))
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: base64.RawURLEncoding.EncodeToString(sealed), Path: "/",
		Expires: s.Exp, HttpOnly: true, Secure: k.secure, SameSite: http.SameSiteLaxMode,
	})
}

// csrfOK checks the form field or header against the session's token.
func csrfOK(s *session, got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.CSRF)) == 1
}
