package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twofold-dev/twofold/server/client"
)

//go:embed web
var webFS embed.FS

type server struct {
	cfg      config
	appID    string
	log      *slog.Logger
	users    *users
	sessions *sealer
	tickets  *client.TicketClient
	tokens   *client.Verifier
	pages    map[string]*template.Template
	csp      string
	now      func() time.Time
	throttle *throttle

	mu     sync.Mutex
	events map[string][]event // user → newest first
}

// event is one line of a user's recent security events, as this site saw them.
type event struct {
	At     time.Time
	What   string
	Detail string
}

func newServer(c config, appID, apiKey string, log *slog.Logger) (http.Handler, error) {
	s := &server{cfg: c, appID: appID, log: log, now: time.Now, events: map[string][]event{}, throttle: newThrottle(10, 15*time.Minute)}
	var err error
	if s.users, err = openUsers(c.Data + "/demo-users.json"); err != nil {
		return nil, err
	}
	key, err := loadKey(c.Data + "/demo-session.key")
	if err != nil {
		return nil, err
	}
	if s.sessions, err = newSealer(key, strings.HasPrefix(c.Origin, "https://")); err != nil {
		return nil, err
	}
	if s.tickets, err = client.NewTicketClient(c.Verifier, apiKey, nil); err != nil {
		return nil, err
	}
	// The token check: this verifier's keys, this app, every token used once.
	if s.tokens, err = client.NewVerifier(client.Config{Issuer: c.Verifier, Audience: appID}); err != nil {
		return nil, err
	}
	if err := s.parsePages(); err != nil {
		return nil, err
	}
	verifierOrigin := c.Verifier
	if u, err := url.Parse(c.Verifier); err == nil {
		verifierOrigin = u.Scheme + "://" + u.Host
	}
	// No inline script anywhere; wasm needs 'wasm-unsafe-eval'. Styles may be inline only
	// because the SDK's components style their shadow roots with a <style> element.
	s.csp = strings.Join([]string{
		"default-src 'none'",
		"script-src 'self' 'wasm-unsafe-eval'",
		"connect-src 'self' " + verifierOrigin,
		"img-src 'self' data:",
		"style-src 'self' 'unsafe-inline'",
		"form-action 'self'",
		"frame-ancestors 'none'",
		"base-uri 'none'",
	}, "; ")

	mux := http.NewServeMux()
	static, _ := fs.Sub(webFS, "web/static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.Handle("GET /twofold/", http.StripPrefix("/twofold/", http.FileServer(http.Dir(c.SDK))))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /{$}", s.home)
	mux.HandleFunc("GET /signin", s.signInPage)
	mux.HandleFunc("POST /signin", s.signIn)
	mux.HandleFunc("GET /signup", s.signUpPage)
	mux.HandleFunc("POST /signup", s.signUp)
	mux.HandleFunc("POST /signout", s.signOut)
	mux.HandleFunc("GET /2fa", s.secondFactor)
	mux.HandleFunc("GET /2fa/lost", s.secondFactor)
	mux.HandleFunc("POST /2fa/token", s.token)
	mux.HandleFunc("GET /2fa/new", s.newAuthenticator)
	mux.HandleFunc("GET /account", s.account)
	return s.headers(mux), nil
}

func (s *server) parsePages() error {
	s.pages = map[string]*template.Template{}
	for _, name := range []string{"signin", "signup", "2fa", "new", "account"} {
		t, err := template.New("layout.html").Funcs(template.FuncMap{
			"when": func(t time.Time) string { return t.Local().Format("Jan 2, 15:04:05") },
		}).ParseFS(webFS, "web/templates/layout.html", "web/templates/"+name+".html")
		if err != nil {
			return err
		}
		s.pages[name] = t
	}
	return nil
}

// headers sets the security headers of every answer.
func (s *server) headers(next http.Handler) http.Handler {
	host := ""
	if u, err := url.Parse(s.cfg.Origin); err == nil {
		host = u.Host
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A page opened by another name (http://127.0.0.1:3000) is sent to the origin the
		// verifier knows: the SDK refuses any other, and passkeys need a domain.
		if r.Host != host && r.Method == http.MethodGet && r.URL.Path != "/healthz" {
			http.Redirect(w, r, s.cfg.Origin+r.URL.RequestURI(), http.StatusTemporaryRedirect)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", s.csp)
		h.Set("X-Content-Type-Options", "nosniff")
		// same-origin, not no-referrer: with no-referrer, browsers send "Origin: null" on form
		// posts, and posted() checks the Origin.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, "/twofold/") && !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// page is what every template gets.
type page struct {
	Title    string
	Session  *session
	Error    string
	Name     string
	Verifier string
	Ticket   string
	Mode     string // 2fa: "" or "recovery"
	Elevated bool
	Seeded   []string
	Password string
	Events   []event
	Notice   string
}

func (s *server) render(w http.ResponseWriter, r *http.Request, sess *session, name string, p page, status int) {
	p.Session = sess
	p.Verifier = s.cfg.Verifier
	s.sessions.write(w, sess)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := s.pages[name].Execute(w, p); err != nil {
		s.log.Error("render", "page", name, "err", err)
	}
}

func (s *server) redirect(w http.ResponseWriter, r *http.Request, sess *session, to string) {
	s.sessions.write(w, sess)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// posted checks a form or fetch POST: the page's own origin, and the session's CSRF token
// (form field "csrf" or header X-CSRF-Token).
func (s *server) posted(r *http.Request, sess *session) bool {
	if o := r.Header.Get("Origin"); o != "" && o != s.cfg.Origin {
		return false
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return false
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return csrfOK(sess, got)
}

func (s *server) home(w http.ResponseWriter, r *http.Request) {
	sess := s.sessions.read(r, s.now())
	switch sess.Stage {
	case stageSignedIn:
		s.redirect(w, r, sess, "/account")
	case stagePassword:
		s.redirect(w, r, sess, "/2fa")
	default:
		s.redirect(w, r, sess, "/signin")
	}
}

func (s *server) signInPage(w http.ResponseWriter, r *http.Request) {
	sess := s.sessions.read(r, s.now())
	if sess.Stage == stageSignedIn {
		s.redirect(w, r, sess, "/account")
		return
	}
	s.render(w, r, sess, "signin", page{Title: "Sign in", Seeded: seedUsers, Password: seedPassword, Notice: r.URL.Query().Get("notice")}, 200)
}

func (s *server) signIn(w http.ResponseWriter, r *http.Request) {
	sess := s.sessions.read(r, s.now())
	if !s.posted(r, sess) {
		s.render(w, r, sess, "signin", page{Title: "Sign in", Error: "The form expired. Try again.", Seeded: seedUsers, Password: seedPassword}, 403)
		return
	}
	name := strings.ToLower(strings.TrimSpace(r.PostFormValue("username")))
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	keys := []string{"user:" + name, "ip:" + ip}
	if s.throttle.blocked(s.now(), keys...) {
		s.render(w, r, sess, "signin", page{Title: "Sign in", Error: "Too many wrong passwords. Wait 15 minutes, then try again.", Name: name, Seeded: seedUsers, Password: seedPassword}, http.StatusTooManyRequests)
		return
	}
	if !s.users.check(name, r.PostFormValue("password")) {
		s.throttle.fail(s.now(), keys...)
		if s.users.exists(name) {
			s.addEvent(name, "Wrong password", "sign-in refused")
		}
		s.render(w, r, sess, "signin", page{Title: "Sign in", Error: "That name and password do not match.", Name: name, Seeded: seedUsers, Password: seedPassword}, 401)
		return
	}
	s.passwordPassed(w, r, sess, name, "Password accepted", "second step next")
}

// passwordPassed starts the second step for name in a new session (and CSRF token): a new
// one at every change of privilege. The session it replaces, if any, ends.
func (s *server) passwordPassed(w http.ResponseWriter, r *http.Request, old *session, name, event, detail string) {
	s.sessions.end(old)
	sess := s.sessions.start(name, stagePassword, s.now())
	s.addEvent(name, event, detail)
	s.redirect(w, r, sess, "/2fa")
}

func (s *server) signUpPage(w http.ResponseWriter, r *http.Request) {
	sess := s.sessions.read(r, s.now())
	s.render(w, r, sess, "signup", page{Title: "Create an account"}, 200)
}

func (s *server) signUp(w http.ResponseWriter, r *http.Request) {
	sess := s.sessions.read(r, s.now())
	fail := func(status int, msg, name string) {
		s.render(w, r, sess, "signup", page{Title: "Create an account", Error: msg, Name: name}, status)
	}
	if !s.posted(r, sess) {
		fail(403, "The form expired. Try again.", "")
		return
	}
	name := strings.ToLower(strings.TrimSpace(r.PostFormValue("username")))
	pw := r.PostFormValue("password")
	switch {
	case !namePattern.MatchString(name):
		fail(400, "Pick a name of 2 to 32 lower-case letters, digits, dots, dashes or underscores.", name)
		return
	case len(pw) < 10 || len(pw) > 256:
		fail(400, "Pick a password of at least 10 characters.", name)
		return
	case pw != r.PostFormValue("password2"):
		fail(400, "The two passwords differ.", name)
		return
	}
	if err := s.users.create(name, pw); errors.Is(err, errTaken) {
		fail(409, "That name is taken. Pick another one.", name)
		return
	} else if err != nil {
		s.log.Error("sign up", "err", err)
		fail(500, "Something went wrong. Try again.", name)
		return
	}
	s.passwordPassed(w, r, sess, name, "Account created", "")
}

func (s *server) signOut(w http.ResponseWriter, r *http.Request) {
	sess := s.sessions.read(r, s.now())
	if !s.posted(r, sess) {
		http.Error(w, "The form expired. Go back and try again.", http.StatusForbidden)
		return
	}
	// Ends it on the server too: the cookie only goes from this browser.
	s.sessions.end(sess)
	if sess.User != "" {
		s.addEvent(sess.User, "Signed out", "")
	}
	s.redirect(w, r, &session{CSRF: randomString(24), Exp: s.now().Add(sessionLifetime)}, "/signin?notice=signed-out")
}

// issueTicket gets a fresh ticket for the session's user, bound to a fresh nonce.
func (s *server) issueTicket(ctx context.Context, sess *session) error {
	nonce := randomString(16)
	t, err := s.tickets.Ticket(ctx, sess.User, client.TicketOptions{Nonce: nonce})
	if err != nil {
		return err
	}
	sess.Ticket, sess.TicketExp, sess.Nonce, sess.Elevated = t.Value, t.ExpiresAt, nonce, false
	return nil
}

func (s *server) unavailable(w http.ResponseWriter, r *http.Request, sess *session, err error) {
	s.log.Error("verifier", "err", err)
	s.render(w, r, sess, "2fa", page{Title: "Two-step verification", Error: "The second-factor service is not answering. Try again in a moment."}, 503)
}

// secondFactor is the second step of signing in: set up an authenticator (first time) or
// verify with one; /2fa/lost goes straight to a recovery code.
func (s *server) secondFactor(w http.ResponseWriter, r *http.Request) {
	sess := s.sessions.read(r, s.now())
	switch sess.Stage {
	case stageSignedIn:
		s.redirect(w, r, sess, "/account")
		return
	case stageAnonymous:
		s.redirect(w, r, sess, "/signin")
		return
	}
	if err := s.issueTicket(r.Context(), sess); err != nil {
		s.unavailable(w, r, sess, err)
		return
	}
	p := page{Title: "Two-step verification", Ticket: sess.Ticket}
	if r.URL.Path == "/2fa/lost" {
		p.Mode, p.Title = "recovery", "Lost your phone?"
	}
	s.render(w, r, sess, "2fa", p, 200)
}

// newAuthenticator follows a recovery-code sign-in: set up the new phone now, with the
// ticket that just passed.
func (s *server) newAuthenticator(w http.ResponseWriter, r *http.Request) {
	sess := s.sessions.read(r, s.now())
	if sess.Stage != stageSignedIn {
		s.redirect(w, r, sess, "/")
		return
	}
	if !sess.Elevated || !sess.liveTicket(s.now()) {
		s.redirect(w, r, sess, "/account")
		return
	}
	s.render(w, r, sess, "new", page{Title: "Set up your new authenticator", Ticket: sess.Ticket}, 200)
}

// method names how a token's holder passed, for people.
func method(c *client.Claims) string {
	switch {
	case c.HasAMR("hwk"), c.HasAMR("swk"):
		return "a passkey"
	case c.HasAMR("otp"):
		return "an authenticator app code"
	case c.HasAMR("rec"):
		return "a recovery code"
	}
	return "a second factor"
}

// token takes the token a component gave the page: it must be this site's, for this user,
// from the ticket this session was given (its nonce), and never seen before.
func (s *server) token(w http.ResponseWriter, r *http.Request) {
	sess := s.sessions.read(r, s.now())
	answer := func(status int, v map[string]string) {
		s.sessions.write(w, sess)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	if sess.Stage == stageAnonymous || !s.posted(r, sess) {
		answer(403, map[string]string{"error": "Your session expired. Sign in again.", "next": "/signin"})
		return
	}
	var body struct{ Token, Purpose string }
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&body); err != nil {
		answer(400, map[string]string{"error": "Send {\"token\":...}."})
		return
	}
	claims, err := s.tokens.Verify(r.Context(), body.Token, client.RequireNonce(sess.Nonce), client.SingleUse())
	if err == nil && claims.Subject != sess.User {
		err = errors.New("token for another user")
	}
	if err != nil {
		s.log.Warn("token refused", "user", sess.User, "err", err)
		answer(401, map[string]string{"error": "That sign-in could not be confirmed. Try again."})
		return
	}
	sess.Elevated = true
	next := "/account"
	switch {
	case sess.Stage == stagePassword:
		sess.Stage = stageSignedIn
		s.sessions.renew(sess, s.now())
		if body.Purpose == "enrolled" {
			s.addEvent(sess.User, "Two-step verification set up", "authenticator app added, recovery codes issued")
		}
		s.addEvent(sess.User, "Signed in", "with "+method(claims))
		if claims.Recovery() {
			sess.NewAuthenticator = true
			next = "/2fa/new"
		}
	case body.Purpose == "enrolled":
		sess.NewAuthenticator = false
		s.addEvent(sess.User, "Authenticator app added", "")
	default:
		s.addEvent(sess.User, "Confirmed it's you", "with "+method(claims))
	}
	answer(200, map[string]string{"next": next})
}

func (s *server) account(w http.ResponseWriter, r *http.Request) {
	sess := s.sessions.read(r, s.now())
	if sess.Stage != stageSignedIn {
		s.redirect(w, r, sess, "/")
		return
	}
	if !sess.Elevated || !sess.liveTicket(s.now()) {
		if err := s.issueTicket(r.Context(), sess); err != nil {
			s.unavailable(w, r, sess, err)
			return
		}
	}
	s.render(w, r, sess, "account", page{Title: "Account security", Ticket: sess.Ticket, Elevated: sess.Elevated, Events: s.history(r.Context(), sess.User)}, 200)
}

// verifierEvents says in words what the verifier's event kinds mean to the person.
var verifierEvents = map[string]string{
	"enrollment_started":  "Authenticator setup started",
	"factor_added":        "Second factor added",
	"factor_removed":      "Second factor removed",
	"verified":            "Second step passed",
	"failed":              "Wrong code",
	"replay_blocked":      "A used code was refused",
	"rate_limited":        "Too many attempts: paused",
	"locked":              "Locked after too many wrong codes",
	"recovery_used":       "Recovery code used",
	"codes_regenerated":   "New recovery codes issued",
	"admin_reset":         "Second factors reset by support",
	"admin_refused":       "An admin action was refused",
	"origin_refused":      "Refused a page on a wrong address",
	"credential_stuffing": "Many failures from one address",
	"failure_burst":       "A burst of failures",
}

// history is what the security page shows: this site's own events (passwords, sign-ins)
// and the verifier's record of the second factors (GET /v1/users/{user}/events through the
// backend kit), newest first. If the verifier cannot be asked, the site's own still show.
func (s *server) history(ctx context.Context, user string) []event {
	list := s.recent(user)
	evs, err := s.tickets.Events(ctx, user, 10)
	if err != nil {
		s.log.Warn("verifier events", "err", err)
	}
	for _, e := range evs {
		what, ok := verifierEvents[e.Kind]
		if !ok {
			what = e.Kind
		}
		if e.Outcome == "refused" && e.Kind != "failed" && e.Kind != "rate_limited" {
			what += " (refused)"
		}
		list = append(list, event{At: e.At, What: what, Detail: e.Detail})
	}
	slices.SortStableFunc(list, func(a, b event) int { return b.At.Compare(a.At) })
	return list[:min(len(list), 15)]
}

func (s *server) addEvent(user, what, detail string) {
	if user == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	list := append([]event{{At: s.now(), What: what, Detail: detail}}, s.events[user]...)
	if len(list) > 20 {
		list = list[:20]
	}
	s.events[user] = list
}

func (s *server) recent(user string) []event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]event(nil), s.events[user]...)
}
