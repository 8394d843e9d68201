package mfa

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/audit"
	"github.com/twofold-dev/twofold/server/internal/passkey"
	"github.com/twofold-dev/twofold/server/internal/store"
)

var appIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// NewApp describes an app to register.
type NewApp struct {
	ID         string
	Name       string
	Origins    []string
	SigningAlg string
	// Passkey settings; zero values mean the defaults (RP ID: the first origin's host;
	// policy totp_fallback; user verification required; no attestation).
	RPID             string
	PasskeyPolicy    string
	UserVerification string
	Attestation      string
	AAGUIDs          []string
}

// CreateApp registers an app and returns its API key, which exists only in this answer:
// the store keeps its SHA-256 (the key has 256 bits of entropy, so a fast hash is enough).
func (s *Service) CreateApp(ctx context.Context, a NewApp) (string, error) {
	var problems []string
	if !appIDPattern.MatchString(a.ID) {
		problems = append(problems, "--id must be 1-63 lower-case letters, digits or dashes")
	}
	if len(a.Origins) == 0 {
		problems = append(problems, "at least one --origin is needed")
	}
	for i, o := range a.Origins {
		norm, err := NormalizeOrigin(o)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		a.Origins[i] = norm
	}
	switch a.SigningAlg {
	case "":
		a.SigningAlg = "EdDSA"
	case "EdDSA", "ES256", "RS256":
	default:
		problems = append(problems, "--alg must be EdDSA, ES256 or RS256")
	}
	problems = append(problems, passkeyProblems(&a)...)
	if len(problems) > 0 {
		return "", invalidRequest(strings.Join(problems, "; "))
	}
	if a.Name == "" {
		a.Name = a.ID
	}
	if a.RPID == "" {
		// Chosen now, from the origins in the order given: the store keeps them as a set.
		a.RPID = passkey.DefaultRPID(a.Origins)
	}
	key := a.ID + "." + randomToken(32)
	err := s.st.CreateApp(ctx, store.App{
		ID: a.ID, Name: a.Name, Origins: a.Origins, SigningAlg: a.SigningAlg,
		APIKeyHash: hash(key), CreatedAt: s.now(), RPID: a.RPID, PasskeyPolicy: a.PasskeyPolicy,
		UserVerification: a.UserVerification, Attestation: a.Attestation, AAGUIDs: a.AAGUIDs,
	})
	if errors.Is(err, store.ErrConflict) {
		return "", wire.NewError(wire.CodeConflict, "An app with id "+a.ID+" already exists.")
	}
	if err != nil {
		return "", fault("create app", err)
	}
	return key, nil
}

var aaguidPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// passkeyProblems checks an app's passkey settings, normalising AAGUIDs to lower-case hex
// without dashes.
func passkeyProblems(a *NewApp) []string {
	var problems []string
	switch a.PasskeyPolicy {
	case "", store.PolicyTOTPFallback, store.PolicyPasskeyOnly:
	default:
		problems = append(problems, "--passkey-policy must be totp_fallback or passkey_only")
	}
	switch a.UserVerification {
	case "", "required", "preferred":
	default:
		problems = append(problems, "--user-verification must be required or preferred")
	}
	for i, g := range a.AAGUIDs {
		a.AAGUIDs[i] = strings.ToLower(strings.ReplaceAll(g, "-", ""))
		if !aaguidPattern.MatchString(a.AAGUIDs[i]) {
			problems = append(problems, "--aaguid "+g+" is not an AAGUID (32 hex digits)")
		}
	}
	switch {
	case a.Attestation == "" || a.Attestation == "none":
		if len(a.AAGUIDs) > 0 {
			problems = append(problems, "--aaguid needs --attestation direct")
		}
	case a.Attestation == "direct":
		if len(a.AAGUIDs) == 0 {
			problems = append(problems, "--attestation direct needs at least one --aaguid")
		}
	default:
		problems = append(problems, "--attestation must be none or direct")
	}
	if a.RPID != "" && (strings.ContainsAny(a.RPID, ":/ ") || a.RPID != strings.ToLower(a.RPID)) {
		problems = append(problems, "--rp-id must be a lower-case host name such as example.com")
	}
	return problems
}

// AuthenticateApp finds the app an API key belongs to. The key names its app before the
// last dot; the stored hash is compared in constant time.
func (s *Service) AuthenticateApp(ctx context.Context, key string) (store.App, error) {
	i := strings.LastIndexByte(key, '.')
	if i <= 0 || !storable(key[:i]) {
		return store.App{}, errInvalidAPIKey
	}
	app, err := s.app(ctx, key[:i])
	if isNotFound(err) {
		return store.App{}, errInvalidAPIKey
	}
	if err != nil {
		return store.App{}, fault("authenticate app", err)
	}
	if subtle.ConstantTimeCompare(app.APIKeyHash, hash(key)) != 1 {
		return store.App{}, errInvalidAPIKey
	}
	return app, nil
}

// NormalizeOrigin reduces an origin to scheme://host[:port] in lower case, the form browsers
// send in the Origin header.
func NormalizeOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", errors.New("origin " + o + " must look like https://app.example.com")
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails: crypto/rand panics rather than return an error
	return base64.RawURLEncoding.EncodeToString(b)
}

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// OriginKnown reports whether any app lists origin.
func (s *Service) OriginKnown(ctx context.Context, origin string) (bool, error) {
	if origin == "" || !storable(origin) {
		return false, nil
	}
	ok, err := s.st.OriginKnown(ctx, origin)
	if err != nil {
		return false, fault("origin known", err)
	}
	return ok, nil
}

// storable reports whether s could be a stored key: PostgreSQL's text refuses invalid
// UTF-8 and NUL outright, so a lookup of such a value fails there instead of finding
// nothing. What a client sends unchecked (a key's app, an Origin, an id in a path) passes
// this before it reaches the store.
func storable(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// OriginRefused records that a call for this ticket came from, or a page using it ran on,
// an origin the app does not list: the trace a phishing proxy leaves.
func (s *Service) OriginRefused(ctx context.Context, p Principal, detail string) {
	s.record(ctx, p, audit.OriginRefused, "", false, detail)
}

// Events lists the newest security events of one user of app, at most limit, newest first:
// what the app shows the person on an account page.
func (s *Service) Events(ctx context.Context, app store.App, user string, limit int) (wire.EventList, error) {
	if msg := wire.CheckUser(user); msg != "" {
		return wire.EventList{}, invalidRequest(msg)
	}
	out := wire.EventList{Events: []wire.Event{}}
	f := store.AuditFilter{AppID: app.ID, User: user, Newest: max(1, min(limit, 100))}
	err := s.st.AuditRecords(ctx, f, func(r store.AuditRecord) error {
		out.Events = append(out.Events, wire.Event{At: r.At, Kind: r.Kind, Outcome: r.Outcome, Factor: r.Factor, IP: r.IP, UserAgent: r.UserAgent, Detail: r.Detail})
		return nil
	})
	if err != nil {
		return wire.EventList{}, fault("events", err)
	}
	return out, nil
}
