package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"os"
	"sync"
	"time"
)

// The session lives in a cookie, sealed with AES-256-GCM (authenticated, so it is signed,
// and encrypted, since it carries the verifier ticket). The key is in the demo's data dir.
// A cookie cannot be taken back, though: a copy of it (another browser, a stolen backup)
// would open the session until it expires, signed out or not. So a signed-in session also
// has an id that the server keeps while the session lasts, and signing out forgets it.

const cookieName = "demo_session"

const sessionLifetime = 8 * time.Hour

type stage string

const (
	stageAnonymous stage = ""
	stagePassword  stage = "password"  // first factor passed, second factor pending
	stageSignedIn  stage = "signed_in" // both passed
)

type session struct {
	// ID names the session in the sealer's live set from the password on; an anonymous
	// session has none (it carries only a CSRF token).
	ID    string    `json:"id,omitempty"`
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
	live   *liveSessions
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
	return &sealer{aead: aead, secure: secure, live: &liveSessions{ids: map[string]time.Time{}}}, nil
}

// read returns the request's session, or a fresh anonymous one (with a CSRF token) when
// there is none or it does not open.
func (k *sealer) read(r *http.Request, now time.Time) *session {
	if c, err := r.Cookie(cookieName); err == nil {
		if raw, err := base64.RawURLEncoding.DecodeString(c.Value); err == nil && len(raw) > k.aead.NonceSize() {
			n := k.aead.NonceSize()
			if plain, err := k.aead.Open(nil, raw[:n], raw[n:], []byte(cookieName)); err == nil {
				var s session
				if json.Unmarshal(plain, &s) == nil && now.Before(s.Exp) && s.CSRF != "" && k.live.opens(&s, now) {
					return &s
				}
			}
		}
	}
	return &session{CSRF: randomString(24), Exp: now.Add(sessionLifetime)}
}

// start returns a new session of user at stage, live until it expires or ends.
func (k *sealer) start(user string, st stage, now time.Time) *session {
	s := &session{ID: randomString(24), User: user, Stage: st, CSRF: randomString(24), Exp: now.Add(sessionLifetime)}
	k.live.add(s.ID, s.Exp, now)
	return s
}

// renew gives sess a new id and CSRF token and ends the old id: at a change of privilege,
// a copy of the cookie from before does not carry over.
func (k *sealer) renew(sess *session, now time.Time) {
	k.end(sess)
	sess.ID, sess.CSRF = randomString(24), randomString(24)
	k.live.add(sess.ID, sess.Exp, now)
}

// end ends sess: no copy of its cookie opens it again.
func (k *sealer) end(sess *session) { k.live.remove(sess.ID) }

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

// liveSessions are the ids of the sessions not signed out of, with their expiry. Kept in
// memory, as the demo keeps its events and throttle: a restart of the demo signs everyone
// out, which fails safe where a list of revoked ids would forget them.
type liveSessions struct {
	mu  sync.Mutex
	ids map[string]time.Time
}

// maxLiveSessions bounds the set; past it, expired ids go, and if that is not enough every
// id does (everyone signs in again) rather than the set growing without end.
const maxLiveSessions = 100_000

// opens reports whether s may be used: an anonymous session always, any other only while
// its id is live.
func (l *liveSessions) opens(s *session, now time.Time) bool {
	if s.ID == "" {
		return s.User == "" && s.Stage == stageAnonymous
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	exp, ok := l.ids[s.ID]
	return ok && now.Before(exp)
}

func (l *liveSessions) add(id string, exp, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ids) >= maxLiveSessions {
		maps.DeleteFunc(l.ids, func(_ string, e time.Time) bool { return !now.Before(e) })
		if len(l.ids) >= maxLiveSessions {
			clear(l.ids)
		}
	}
	l.ids[id] = exp
}

func (l *liveSessions) remove(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.ids, id)
}
