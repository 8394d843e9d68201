package client

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Config configures a Verifier. Issuer and Audience are required; every other zero value
// means the default named on the field.
type Config struct {
	// Issuer is the verifier's public base URL, exactly as it signs tokens (their iss), e.g.
	// "https://mfa.example.com".
	Issuer string
	// Audience is your app's id (the aud of its tokens).
	Audience string
	// JWKSURL is where the keys are; default Issuer + "/.well-known/jwks.json".
	JWKSURL string
	// Algorithms are the only algorithms accepted; default ["EdDSA"], the verifier's
	// default. Name "ES256" or "RS256" if your app was created with --alg.
	Algorithms []string
	// Leeway tolerates clock differences on exp, nbf and iat; default 30 s, at most 5 min.
	Leeway time.Duration
	// CacheFor is how long fetched keys are used before the set is fetched again; default
	// 1 minute, the max-age the verifier serves the set with, so a key withdrawn from it
	// (`twofold keys withdraw-signing`) is refused within a minute. A token with an
	// unknown kid fetches sooner, but never more often than MinRefresh (default 30 s).
	CacheFor   time.Duration
	MinRefresh time.Duration
	// Require is checked on every Verify, before the requirements passed to the call.
	Require []Requirement
	// Replay remembers the jti of tokens verified with SingleUse; default an in-memory
	// cache that every Verifier of this process shares, so a token used once through one
	// is refused by the others. Share one (Redis, SQL) between instances of your backend.
	Replay ReplayCache
	// HTTPClient fetches the keys; default a client with a 10 s timeout.
	HTTPClient *http.Client
	// PlainHTTP allows fetching the keys over http:// from a host other than loopback. Set
	// it only where the network between your backend and the verifier is private: whoever
	// can change the key set on the way can sign tokens that pass.
	PlainHTTP bool
	// Now is the clock; default time.Now.
	Now func() time.Time
}

var supportedAlgs = []string{"EdDSA", "ES256", "RS256"}

// processReplay is the default ReplayCache. One Verifier's own would let a token used
// once through it pass SingleUse again through another Verifier of the same backend.
var processReplay = NewMemoryReplayCache()

// Validate reports every problem at once, naming the option.
func (c Config) Validate() error {
	var errs []error
	if _, ok := webURL(c.Issuer); !ok {
		errs = append(errs, fmt.Errorf("Config.Issuer %q must be the verifier's https:// URL", c.Issuer))
	}
	if c.Audience == "" {
		errs = append(errs, errors.New("Config.Audience must be your app's id"))
	}
	if c.JWKSURL != "" || c.Issuer != "" {
		switch plain, ok := webURL(c.jwksURL()); {
		case !ok:
			errs = append(errs, fmt.Errorf("Config.JWKSURL %q must be an https:// URL", c.jwksURL()))
		case plain && !c.PlainHTTP:
			errs = append(errs, fmt.Errorf("Config.JWKSURL %q is plain http to another host: whoever can change the keys on the way can sign tokens. Serve the verifier over https://, or set Config.PlainHTTP if the network between is private", c.jwksURL()))
		}
	}
	for _, a := range c.Algorithms {
		if !slices.Contains(supportedAlgs, a) {
			errs = append(errs, fmt.Errorf("Config.Algorithms: %q is not one of %s", a, strings.Join(supportedAlgs, ", ")))
		}
	}
	if c.Leeway < 0 || c.Leeway > 5*time.Minute {
		errs = append(errs, fmt.Errorf("Config.Leeway %s must be between 0 and 5m", c.Leeway))
	}
	if c.CacheFor < 0 || c.MinRefresh < 0 {
		errs = append(errs, errors.New("Config.CacheFor and Config.MinRefresh cannot be negative"))
	}
	return errors.Join(errs...)
}

// webURL reports whether raw is an absolute http(s) URL, and whether it is plain http to
// a host other than this machine (which anyone on the way can read and answer).
func webURL(raw string) (plainElsewhere, ok bool) {
	u, err := url.Parse(raw)
	if raw == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return false, false
	}
	ip, err := netip.ParseAddr(u.Hostname())
	loopback := u.Hostname() == "localhost" || (err == nil && ip.IsLoopback())
	return u.Scheme == "http" && !loopback, true
}

// jwksURL is where the keys are fetched: JWKSURL, else the issuer's well-known path.
func (c Config) jwksURL() string {
	return cmp.Or(c.JWKSURL, strings.TrimRight(c.Issuer, "/")+"/.well-known/jwks.json")
}

func (c Config) withDefaults() Config {
	c.JWKSURL = c.jwksURL()
	c.Issuer = strings.TrimRight(c.Issuer, "/")
	if len(c.Algorithms) == 0 {
		c.Algorithms = []string{"EdDSA"}
	}
	if c.Leeway == 0 {
		c.Leeway = 30 * time.Second
	}
	if c.CacheFor == 0 {
		c.CacheFor = time.Minute
	}
	if c.MinRefresh == 0 {
		c.MinRefresh = 30 * time.Second
	}
	if c.Replay == nil {
		c.Replay = processReplay
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Verifier checks twofold tokens. It is safe for concurrent use; make one per app and keep
// it, since it holds the key cache.
type Verifier struct {
	cfg  Config
	keys *keySet
}

// NewVerifier validates cfg and returns a Verifier. It fetches nothing yet: the keys are
// fetched by the first Verify.
func NewVerifier(cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Verifier{cfg: cfg, keys: &keySet{
		url: cfg.JWKSURL, http: sameOrigin(cfg.HTTPClient, cfg.JWKSURL), now: cfg.Now, algs: cfg.Algorithms,
		cacheFor: cfg.CacheFor, minRefresh: cfg.MinRefresh,
	}}, nil
}

// Claims is what a verified token says.
type Claims struct {
	Issuer   string
	Subject  string // the user, as your backend named them in the ticket
	Audience string // Config.Audience: a token whose aud is anything else is refused
	ID       string // jti
	Nonce    string
	// AMR lists how the person passed (RFC 8176): "otp" (authenticator app), "hwk"/"swk"
	// with "user" (passkey), "rec" (recovery code).
	AMR []string
	// ACR is "phr" (phishing-resistant: a passkey) or "mfa".
	ACR                                      string
	IssuedAt, NotBefore, ExpiresAt, AuthTime time.Time
	// Raw holds every claim as decoded JSON.
	Raw map[string]any
}

// HasAMR reports whether the token's amr names method.
func (c *Claims) HasAMR(method string) bool { return slices.Contains(c.AMR, method) }

// Recovery reports whether the person came in with a recovery code: prompt them to set up
// a new authenticator.
func (c *Claims) Recovery() bool { return c.HasAMR("rec") }

// Requirement is one more check of a token's claims, beyond iss, aud, exp and nbf.
type Requirement func(ctx context.Context, v *Verifier, c *Claims) error

// RequireNonce needs the token's nonce to be nonce (the one your backend put in the ticket).
func RequireNonce(nonce string) Requirement {
	return func(_ context.Context, _ *Verifier, c *Claims) error {
		if nonce == "" || c.Nonce != nonce {
			return refuse(ErrNonce, "nonce %q is not the one expected", c.Nonce)
		}
		return nil
	}
}

// RequireAMR needs the token's amr to name at least one of methods, e.g.
// RequireAMR("otp", "hwk", "swk") to refuse a recovery-code sign-in.
func RequireAMR(methods ...string) Requirement {
	return func(_ context.Context, _ *Verifier, c *Claims) error {
		for _, m := range methods {
			if c.HasAMR(m) {
				return nil
			}
		}
		return refuse(ErrAMR, "amr %v has none of %v", c.AMR, methods)
	}
}

// RequireACR needs the token's acr to be one of values; RequireACR("phr") accepts only a
// passkey.
func RequireACR(values ...string) Requirement {
	return func(_ context.Context, _ *Verifier, c *Claims) error {
		if c.ACR == "" || !slices.Contains(values, c.ACR) {
			return refuse(ErrACR, "acr %q is not one of %v", c.ACR, values)
		}
		return nil
	}
}

// SingleUse refuses a token whose jti the replay cache has seen: a token that signs a
// person in should do so once. Within Verify it is checked after every other requirement,
// Config.Require's and the call's, wherever it is listed: a token refused for another
// reason is not remembered, so the person can still sign in with it where it fits.
func SingleUse() Requirement {
	return func(ctx context.Context, v *Verifier, c *Claims) error {
		if last, ok := ctx.Value(lastKey{}).(*[]func() error); ok {
			*last = append(*last, func() error { return singleUse(ctx, v, c) })
			return nil
		}
		return singleUse(ctx, v, c)
	}
}

// lastKey holds, in the context Verify gives requirements, the checks that change state
// and so run only once every other check passed.
type lastKey struct{}

func singleUse(ctx context.Context, v *Verifier, c *Claims) error {
	if c.ID == "" {
		return refuse(ErrClaims, "no jti")
	}
	// Remember it until it could no longer pass the exp check anyway. The cache keeps time
	// by the wall clock (Redis by its own), which Config.Now may be set apart from: the
	// time left by this Verifier's clock is counted from the wall clock's now.
	left := c.ExpiresAt.Add(v.cfg.Leeway).Sub(v.cfg.Now())
	seen, err := v.cfg.Replay.Seen(ctx, c.ID, time.Now().Add(left))
	if err != nil {
		return refuse(ErrKeysUnavailable, "replay cache: %v", err)
	}
	if seen {
		return refuse(ErrReplayed, "jti %s was used before", c.ID)
	}
	return nil
}

// MaxTokenSize bounds the tokens Verify reads. The verifier's are under 5 KiB even with
// the longest subject and nonce it allows; a larger one is refused before it is decoded,
// so a client cannot make a backend parse megabytes of JSON for a forged signature.
const MaxTokenSize = 16 << 10

// Verify checks token and returns its claims: the signature (by the key its kid names, with
// that key's algorithm, which must be one of Config.Algorithms), iss, aud (Config.Audience
// alone, never a list of apps), exp and nbf (with Config.Leeway), then Config.Require and
// reqs in order (SingleUse after all the others). A token whose header has crit is refused
// as ErrMalformed before its key is looked up. Every refusal is a *TokenError; test it with
// errors.Is(err, client.ErrExpired) and the like.
func (v *Verifier) Verify(ctx context.Context, token string, reqs ...Requirement) (*Claims, error) {
	if len(token) > MaxTokenSize {
		return nil, refuse(ErrMalformed, "the token is %d bytes, more than the %d a twofold token can be", len(token), MaxTokenSize)
	}
	alg, err := headerAlg(token)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(v.cfg.Algorithms, alg) {
		return nil, refuse(ErrAlgorithm, "alg %q is not one of %v", alg, v.cfg.Algorithms)
	}
	var keyErr error
	t, err := jwt.Parse(token, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			keyErr = refuse(ErrUnknownKey, "the token names no kid")
			return nil, keyErr
		}
		k, err := v.keys.key(ctx, kid)
		if err != nil {
			keyErr = err
			return nil, err
		}
		if t.Method.Alg() != k.alg {
			keyErr = refuse(ErrAlgorithm, "alg %s is not the alg of key %s (%s)", t.Method.Alg(), kid, k.alg)
			return nil, keyErr
		}
		return k.key, nil
	},
		jwt.WithValidMethods(v.cfg.Algorithms),
		jwt.WithIssuer(v.cfg.Issuer),
		jwt.WithAudience(v.cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.cfg.Leeway),
		jwt.WithTimeFunc(v.cfg.Now),
	)
	switch {
	case keyErr != nil:
		return nil, keyErr
	case err == nil:
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, refuse(ErrMalformed, "%v", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, refuse(ErrSignature, "%v", err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, refuse(ErrExpired, "%v", err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return nil, refuse(ErrNotYetValid, "%v", err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return nil, refuse(ErrIssuer, "%v", err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return nil, refuse(ErrAudience, "%v", err)
	default:
		return nil, refuse(ErrClaims, "%v", err)
	}
	c, err := claimsOf(t.Claims.(jwt.MapClaims), v.cfg.Audience)
	if err != nil {
		return nil, err
	}
	var last []func() error
	rctx := context.WithValue(ctx, lastKey{}, &last)
	for _, r := range append(slices.Clip(v.cfg.Require), reqs...) {
		if err := r(rctx, v, c); err != nil {
			return nil, err
		}
	}
	for _, check := range last {
		if err := check(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// headerAlg reads the alg of the token's header before anything else is trusted, and
// refuses a header with crit. RFC 7515 §4.1.11: a recipient must refuse a token whose crit
// lists an extension it does not understand, and crit must not be empty or name a
// registered header. This package understands no extension, so any crit is refused
// (golang-jwt ignores crit). The header is read as golang-jwt reads it: member names are
// case-sensitive and the last of a repeated name counts.
func headerAlg(token string) (string, error) {
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		return "", refuse(ErrMalformed, "not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return "", refuse(ErrMalformed, "header: %v", err)
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(raw, &h); err != nil {
		return "", refuse(ErrMalformed, "header: %v", err)
	}
	if crit, ok := h["crit"]; ok {
		return "", refuse(ErrMalformed, "header: crit (%d bytes) names extensions this kit does not understand", len(crit))
	}
	var alg string
	if a, ok := h["alg"]; ok {
		if err := json.Unmarshal(a, &alg); err != nil {
			return "", refuse(ErrMalformed, "header: alg: %v", err)
		}
	}
	return alg, nil
}

// claimsOf reads the claims of a token golang-jwt verified. golang-jwt accepts an aud list
// with app anywhere in it; the verifier only ever signs one aud, so a list is accepted only
// when app is all it names. A token good for several apps would sign a person in at each
// of them, and Audience could be another app's while the check passed on this one's.
func claimsOf(m jwt.MapClaims, app string) (*Claims, error) {
	c := &Claims{Raw: m}
	str := func(k string) string { s, _ := m[k].(string); return s }
	when := func(k string) time.Time {
		if f, ok := m[k].(float64); ok {
			return time.Unix(int64(f), 0)
		}
		return time.Time{}
	}
	c.Issuer, c.Subject, c.ID, c.Nonce, c.ACR = str("iss"), str("sub"), str("jti"), str("nonce"), str("acr")
	aud, err := m.GetAudience()
	if err != nil || len(aud) != 1 || aud[0] != app {
		return nil, refuse(ErrAudience, "aud %v is not just %q", m["aud"], app)
	}
	c.Audience = app
	c.IssuedAt, c.NotBefore, c.ExpiresAt, c.AuthTime = when("iat"), when("nbf"), when("exp"), when("auth_time")
	if list, ok := m["amr"].([]any); ok {
		for _, a := range list {
			if s, ok := a.(string); ok {
				c.AMR = append(c.AMR, s)
			}
		}
	}
	if c.Subject == "" {
		return nil, refuse(ErrClaims, "no sub")
	}
	return c, nil
}
