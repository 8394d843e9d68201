// Package tokens signs the JWTs twofold hands to relying backends, keeps the signing keys
// (sealed, in the store, shared by every instance), rotates them and publishes the JWKS.
// It is the only importer of golang-jwt.
package tokens

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/twofold-dev/twofold/server/internal/store"
)

// KeyStore is the part of store.Store that keeps signing keys.
type KeyStore interface {
	AddSigningKey(ctx context.Context, k store.SigningKey, replace bool) error
	SigningKeys(ctx context.Context, retiredAfter time.Time) ([]store.SigningKey, error)
	WithdrawSigningKey(ctx context.Context, kid string) error
}

// Sealer protects private keys at rest; seal.Keyring is one.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(envelope, aad []byte) ([]byte, error)
}

// Errors callers branch on.
var (
	ErrAlg     = errors.New("tokens: unsupported algorithm")
	ErrInvalid = errors.New("tokens: invalid token")
)

// DefaultAlg signs tokens when Claims.Alg is empty.
const DefaultAlg = "EdDSA"

// Algs are the supported signing algorithms.
var Algs = []string{"EdDSA", "ES256", "RS256"}

var methods = map[string]jwt.SigningMethod{
	"EdDSA": jwt.SigningMethodEdDSA,
	"ES256": jwt.SigningMethodES256,
	"RS256": jwt.SigningMethodRS256,
}

// Config configures an Issuer; zero values mean the defaults in withDefaults.
type Config struct {
	Issuer string // the iss claim and the base of jwks_uri
	TTL    time.Duration
	Now    func() time.Time
	// CacheFor is how long loaded keys are trusted before the store is asked again, so a
	// rotation by another instance takes effect here within CacheFor.
	CacheFor time.Duration
}

func (c Config) withDefaults() Config {
	c.Issuer = strings.TrimRight(c.Issuer, "/")
	if c.TTL <= 0 {
		c.TTL = 5 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.CacheFor <= 0 {
		c.CacheFor = 5 * time.Second
	}
	return c
}

// Issuer signs and verifies tokens and publishes their keys. It is safe for concurrent use.
type Issuer struct {
	cfg       Config
	ks        KeyStore
	sealer    Sealer
	discovery []byte

	gen sync.Mutex // one key generation at a time per process

	mu       sync.Mutex
	cached   []*signingKey // nil: load from the store
	loadedAt time.Time
}

// New returns an Issuer keeping its keys in ks, sealed with s.
func New(cfg Config, ks KeyStore, s Sealer) *Issuer {
	cfg = cfg.withDefaults()
	d, err := json.Marshal(map[string]any{
		"issuer":                                cfg.Issuer,
		"jwks_uri":                              cfg.Issuer + "/.well-known/jwks.json",
		"id_token_signing_alg_values_supported": Algs,
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
	})
	if err != nil {
		panic(err) // unreachable: strings only
	}
	return &Issuer{cfg: cfg, ks: ks, sealer: s, discovery: d}
}

// Claims is what a token says. AuthTime defaults to now; Extra adds claims but may not
// replace the ones Issue sets.
type Claims struct {
	Subject, Audience, Nonce string
	AMR                      []string
	AuthTime                 time.Time
	Alg                      string // EdDSA (default), ES256 or RS256
	Extra                    map[string]any
}

var reserved = map[string]bool{"iss": true, "sub": true, "aud": true, "iat": true, "nbf": true,
	"exp": true, "jti": true, "auth_time": true, "amr": true, "nonce": true}

// Issue signs a token for c with the active key of c.Alg, creating that key on first use.
// expiresIn is the token's lifetime in seconds.
func (i *Issuer) Issue(ctx context.Context, c Claims) (token string, expiresIn int, err error) {
	alg, err := algOrDefault(c.Alg)
	if err != nil {
		return "", 0, err
	}
	if c.Subject == "" || c.Audience == "" {
		return "", 0, errors.New("issue token: subject and audience are required")
	}
	k, err := i.active(ctx, alg)
	if err != nil {
		return "", 0, fmt.Errorf("issue token: %w", err)
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", 0, fmt.Errorf("issue token: %w", err)
	}
	now := i.cfg.Now()
	if c.AuthTime.IsZero() {
		c.AuthTime = now
	}
	claims := jwt.MapClaims{}
	for name, v := range c.Extra {
		if reserved[name] {
			return "", 0, fmt.Errorf("issue token: extra claim %q would replace a standard claim", name)
		}
		claims[name] = v
	}
	claims["iss"] = i.cfg.Issuer
	claims["sub"] = c.Subject
	claims["aud"] = c.Audience
	claims["iat"] = now.Unix()
	claims["nbf"] = now.Unix()
	claims["exp"] = now.Add(i.cfg.TTL).Unix()
	claims["jti"] = base64.RawURLEncoding.EncodeToString(jti)
	claims["auth_time"] = c.AuthTime.Unix()
	if len(c.AMR) > 0 {
		claims["amr"] = c.AMR
	}
	if c.Nonce != "" {
		claims["nonce"] = c.Nonce
	}
	t := jwt.NewWithClaims(methods[alg], claims)
	t.Header["kid"] = k.kid
	s, err := t.SignedString(k.priv)
	if err != nil {
		return "", 0, fmt.Errorf("issue token: %w", err)
	}
	return s, int(i.cfg.TTL / time.Second), nil
}

// Verify checks a token this issuer signed for audience and returns its claims. The key
// is chosen by kid and the token's alg must be that key's, so no alg can be swapped in.
func (i *Issuer) Verify(ctx context.Context, token, audience string) (map[string]any, error) {
	if audience == "" {
		return nil, fmt.Errorf("%w: no audience to check", ErrInvalid)
	}
	t, err := jwt.Parse(token, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, err := i.lookup(ctx, kid)
		if err != nil {
			return nil, err
		}
		if t.Method.Alg() != k.alg {
			return nil, fmt.Errorf("alg %s does not match key %s (%s)", t.Method.Alg(), k.kid, k.alg)
		}
		return k.priv.Public(), nil
	},
		jwt.WithValidMethods(Algs),
		jwt.WithIssuer(i.cfg.Issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(i.cfg.Now),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return t.Claims.(jwt.MapClaims), nil
}

// RotationLead is how long a rotated key should be published before it signs. Relying
// parties cache the JWKS: it is served with max-age 60, and jose and the Go kit fetch it
// again at most every 30 s, even for an unknown kid. A key in the JWKS for two minutes
// before its first token is known to every backend that cached the set before.
const RotationLead = 2 * time.Minute

// Rotate adds a new key for alg that is published at once and signs from signsFrom, lead
// from now, when the key it replaces retires. The old key keeps verifying, and stays in
// the JWKS until every token it may have signed has expired.
func (i *Issuer) Rotate(ctx context.Context, alg string, lead time.Duration) (kid string, signsFrom time.Time, err error) {
	alg, err = algOrDefault(alg)
	if err != nil {
		return "", time.Time{}, err
	}
	signsFrom = i.cfg.Now().Add(max(lead, 0))
	k, err := i.create(ctx, alg, true, signsFrom)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("rotate %s signing key: %w", alg, err)
	}
	return k.kid, signsFrom, nil
}

// ErrUnknownKey is Withdraw's answer for a kid that is not published.
var ErrUnknownKey = errors.New("no published signing key has that kid")

// Withdraw takes a key out of use at once, for a key that may have leaked: it leaves the
// JWKS, signs nothing more and verifies nothing more, here at once and on every other
// instance within CacheFor. A backend keeps a cached JWKS until it fetches it again (at
// most max-age 60 s). If the key is the one signing now, a new key of its algorithm
// signs from now on; if it was published ahead of its time, a new one takes its place in
// the schedule: replacement is that key's kid, else "". Tokens the key signed stop
// verifying with it.
func (i *Issuer) Withdraw(ctx context.Context, kid string) (replacement string, err error) {
	keys, err := i.keys(ctx, true)
	if err != nil {
		return "", err
	}
	at := slices.IndexFunc(keys, func(c *signingKey) bool { return c.kid == kid })
	if at < 0 {
		return "", fmt.Errorf("withdraw %q: %w", kid, ErrUnknownKey)
	}
	k := keys[at]
	// Replaced first, so an instance that reads the store in between finds a key to sign
	// with rather than making one of its own: the key signing now by one that signs at
	// once, a key published ahead of its time by one published now for the same time, so
	// backends still learn it before its first token.
	now := i.cfg.Now()
	switch {
	case activeOf(keys, k.alg, now) == k:
		replacement, _, err = i.Rotate(ctx, k.alg, 0)
	case k.retired.IsZero() && k.from.After(now):
		replacement, _, err = i.Rotate(ctx, k.alg, k.from.Sub(now))
	}
	if err != nil {
		return "", err
	}
	defer i.invalidate()
	if err := i.ks.WithdrawSigningKey(ctx, kid); err != nil {
		return replacement, fmt.Errorf("withdraw %q: %w", kid, err)
	}
	return replacement, nil
}

// Discovery is the OpenID configuration document.
func (i *Issuer) Discovery() []byte { return append([]byte(nil), i.discovery...) }

func algOrDefault(alg string) (string, error) {
	if alg == "" {
		return DefaultAlg, nil
	}
	if methods[alg] == nil {
		return "", fmt.Errorf("%w %q: use one of %s", ErrAlg, alg, strings.Join(Algs, ", "))
	}
	return alg, nil
}
