package tokens

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/twofold-dev/twofold/server/internal/seal"
	"github.com/twofold-dev/twofold/server/internal/store"
)

// memKeys is an in-memory KeyStore with the store's semantics: one active key per alg,
// replace retires it at the new key's CreatedAt.
type memKeys struct {
	mu   sync.Mutex
	keys []store.SigningKey
	// beforeAdd, if set, runs once at the start of the next AddSigningKey.
	beforeAdd func()
}

func (m *memKeys) AddSigningKey(ctx context.Context, k store.SigningKey, replace bool) error {
	if f := m.beforeAdd; f != nil {
		m.beforeAdd = nil
		f()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, old := range m.keys {
		if old.Alg == k.Alg && old.RetiredAt.IsZero() {
			if !replace {
				return store.ErrConflict
			}
			m.keys[i].RetiredAt = k.CreatedAt
		}
	}
	m.keys = append(m.keys, k)
	return nil
}

func (m *memKeys) SigningKeys(ctx context.Context, retiredAfter time.Time) ([]store.SigningKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.SigningKey
	for _, k := range m.keys {
		if k.RetiredAt.IsZero() || k.RetiredAt.After(retiredAfter) {
			out = append(out, k)
		}
	}
	return out, nil
}

func (m *memKeys) WithdrawSigningKey(ctx context.Context, kid string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, k := range m.keys {
		if k.KID == kid {
			m.keys[i].RetiredAt, m.keys[i].Sealed = time.UnixMilli(1), nil
			return nil
		}
	}
	return store.ErrNotFound
}

func (m *memKeys) active() map[string][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]string{}
	for _, k := range m.keys {
		if k.RetiredAt.IsZero() {
			out[k.Alg] = append(out[k.Alg], k.KID)
		}
	}
	return out
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const issuerURL = "https://2fa.example.com"

var master = seal.NewKeyring(seal.Key{1, 2, 3})

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func newIssuer(ks KeyStore, clk *clock) *Issuer {
	return New(Config{Issuer: issuerURL, Now: clk.Now}, ks, master)
}

type jwkSet struct {
	Keys []map[string]string `json:"keys"`
}

func jwksOf(t *testing.T, iss *Issuer) map[string]map[string]string {
	t.Helper()
	b, err := iss.JWKS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var set jwkSet
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, k := range set.Keys {
		out[k["kid"]] = k
	}
	return out
}

func header(t *testing.T, token string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// publicFromJWK rebuilds a public key from its JWK the way a relying party would, so the
// tests prove the JWKS verifies tokens without this package's help.
func publicFromJWK(t *testing.T, j map[string]string) crypto.PublicKey {
	t.Helper()
	d := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("JWK field not base64url: %v", err)
		}
		return b
	}
	switch j["kty"] {
	case "OKP":
		return ed25519.PublicKey(d(j["x"]))
	case "EC":
		x, y := d(j["x"]), d(j["y"])
		if len(x) != 32 || len(y) != 32 {
			t.Fatalf("P-256 JWK x %d bytes, y %d bytes; want 32 each", len(x), len(y))
		}
		p, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			t.Fatal(err)
		}
		return p
	case "RSA":
		return &rsa.PublicKey{N: new(big.Int).SetBytes(d(j["n"])), E: int(new(big.Int).SetBytes(d(j["e"])).Int64())}
	}
	t.Fatalf("unknown kty %q", j["kty"])
	return nil
}

func TestIssue_VerifiesForEachAlg(t *testing.T) {
	tests := []struct {
		alg, wantAlg, kty, crv string
	}{
		{"", "EdDSA", "OKP", "Ed25519"},
		{"EdDSA", "EdDSA", "OKP", "Ed25519"},
		{"ES256", "ES256", "EC", "P-256"},
		{"RS256", "RS256", "RSA", ""},
	}
	ctx := context.Background()
	clk := newClock()
	iss := newIssuer(&memKeys{}, clk)
	for _, tt := range tests {
		t.Run(tt.wantAlg+"/"+tt.alg, func(t *testing.T) {
			authAt := clk.Now().Add(-time.Second)
			tok, expiresIn, err := iss.Issue(ctx, Claims{
				Subject: "alice", Audience: "app1", Nonce: "n-1", AMR: []string{"otp"},
				AuthTime: authAt, Alg: tt.alg, Extra: map[string]any{"acr": "mfa"},
			})
			if err != nil {
				t.Fatal(err)
			}
			if expiresIn != 300 {
				t.Errorf("expiresIn = %d, want 300", expiresIn)
			}
			h := header(t, tok)
			kid, _ := h["kid"].(string)
			if h["alg"] != tt.wantAlg || h["typ"] != "JWT" || kid == "" {
				t.Fatalf("header = %v", h)
			}

			c, err := iss.Verify(ctx, tok, "app1")
			if err != nil {
				t.Fatal(err)
			}
			now := float64(clk.Now().Unix())
			want := map[string]any{"iss": issuerURL, "sub": "alice", "aud": "app1", "nonce": "n-1",
				"acr": "mfa", "iat": now, "nbf": now, "exp": now + 300, "auth_time": float64(authAt.Unix())}
			for name, v := range want {
				if c[name] != v {
					t.Errorf("claim %s = %v, want %v", name, c[name], v)
				}
			}
			if amr, _ := c["amr"].([]any); len(amr) != 1 || amr[0] != "otp" {
				t.Errorf("amr = %v", c["amr"])
			}
			if jti, _ := c["jti"].(string); len(jti) != 22 {
				t.Errorf("jti %q is not 16 bytes base64url", jti)
			}

			// A relying party holding only the JWKS accepts the token.
			j := jwksOf(t, iss)[kid]
			if j["kty"] != tt.kty || j["crv"] != tt.crv || j["alg"] != tt.wantAlg || j["use"] != "sig" {
				t.Fatalf("JWK = %v", j)
			}
			pub := publicFromJWK(t, j)
			if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return pub, nil },
				jwt.WithValidMethods([]string{tt.wantAlg}), jwt.WithTimeFunc(clk.Now)); err != nil {
				t.Fatalf("token does not verify with its JWK: %v", err)
			}
		})
	}
}

func TestIssue_NoNonceClaimWhenUnset(t *testing.T) {
	iss := newIssuer(&memKeys{}, newClock())
	tok, _, err := iss.Issue(context.Background(), Claims{Subject: "alice", Audience: "app1"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := iss.Verify(context.Background(), tok, "app1")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c["nonce"]; ok {
		t.Error("nonce claim present though none was set")
	}
}

func TestIssue_RefusesBadClaims(t *testing.T) {
	tests := []struct {
		name    string
		c       Claims
		wantErr string
	}{
		{"unknown alg", Claims{Subject: "a", Audience: "b", Alg: "HS256"}, "unsupported algorithm"},
		{"no subject", Claims{Audience: "b"}, "subject and audience"},
		{"no audience", Claims{Subject: "a"}, "subject and audience"},
		{"extra replaces exp", Claims{Subject: "a", Audience: "b", Extra: map[string]any{"exp": 1 << 40}}, `"exp"`},
		{"extra replaces aud", Claims{Subject: "a", Audience: "b", Extra: map[string]any{"aud": "other"}}, `"aud"`},
	}
	iss := newIssuer(&memKeys{}, newClock())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := iss.Issue(context.Background(), tt.c)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Issue error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestVerify_RefusesTamperedAndForeignTokens(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	ks := &memKeys{}
	iss := newIssuer(ks, clk)
	good, _, err := iss.Issue(ctx, Claims{Subject: "alice", Audience: "app1"})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	kid := header(t, good)["kid"].(string)
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	claims := func() jwt.MapClaims {
		now := clk.Now().Unix()
		return jwt.MapClaims{"iss": issuerURL, "sub": "alice", "aud": "app1", "iat": now, "exp": now + 300}
	}
	signWith := func(m jwt.SigningMethod, kid string, key any) string {
		tok := jwt.NewWithClaims(m, claims())
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	flip := func(s string) string { // change one signature byte
		sig, _ := base64.RawURLEncoding.DecodeString(s)
		sig[0] ^= 1
		return base64.RawURLEncoding.EncodeToString(sig)
	}
	_, ecKey, _ := ed25519.GenerateKey(rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub := jwksOf(t, iss)[kid]["x"]
	otherIss, _, _ := newIssuer(&memKeys{}, clk).Issue(ctx, Claims{Subject: "alice", Audience: "app1"})
	wrongIssuer, _, _ := New(Config{Issuer: "https://evil.example", Now: clk.Now}, ks, master).Issue(ctx, Claims{Subject: "alice", Audience: "app1"})

	tests := []struct {
		name, token, audience string
		later                 time.Duration
	}{
		{"payload changed", parts[0] + "." + enc(map[string]any{"iss": issuerURL, "sub": "mallory", "aud": "app1", "exp": clk.Now().Unix() + 300}) + "." + parts[2], "app1", 0},
		{"signature changed", parts[0] + "." + parts[1] + "." + flip(parts[2]), "app1", 0},
		{"signature dropped", parts[0] + "." + parts[1] + ".", "app1", 0},
		{"alg none", enc(map[string]any{"alg": "none", "typ": "JWT", "kid": kid}) + "." + parts[1] + ".", "app1", 0},
		{"HS256 keyed with the public key", signWith(jwt.SigningMethodHS256, kid, []byte(edPub)), "app1", 0},
		{"ES256 under an EdDSA kid", signWith(jwt.SigningMethodES256, kid, p256), "app1", 0},
		{"signed by a key not ours under our kid", signWith(jwt.SigningMethodEdDSA, kid, ecKey), "app1", 0},
		{"kid of another deployment", otherIss, "app1", 0},
		{"no kid", signWith(jwt.SigningMethodEdDSA, "", ecKey), "app1", 0},
		{"other audience", good, "app2", 0},
		{"other issuer", wrongIssuer, "app1", 0},
		{"expired", good, "app1", 5*time.Minute + time.Second},
		{"garbage", "not.a.jwt", "app1", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: clk.Now().Add(tt.later)}
			v := New(Config{Issuer: issuerURL, Now: c.Now}, ks, master)
			_, err := v.Verify(ctx, tt.token, tt.audience)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Verify = %v, want ErrInvalid", err)
			}
			t.Log(err)
		})
	}
	if _, err := iss.Verify(ctx, good, "app1"); err != nil {
		t.Fatalf("the untampered token no longer verifies: %v", err)
	}
}

// A rotated key is in the JWKS RotationLead before its first token, so a backend that
// cached the set meanwhile already knows it; the old key signs until then, keeps
// verifying, and leaves the JWKS once every token it may have signed has expired.
func TestRotate_NewKeyPublishedBeforeItSigns_OldVerifiesUntilItLeavesJWKS(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	iss := newIssuer(&memKeys{}, clk)
	kidNow := func() string {
		t.Helper()
		tok, _, err := iss.Issue(ctx, Claims{Subject: "alice", Audience: "app1", Alg: "ES256"})
		if err != nil {
			t.Fatal(err)
		}
		return header(t, tok)["kid"].(string)
	}
	old, _, err := iss.Issue(ctx, Claims{Subject: "alice", Audience: "app1", Alg: "ES256"})
	if err != nil {
		t.Fatal(err)
	}
	oldKid := header(t, old)["kid"].(string)

	newKid, from, err := iss.Rotate(ctx, "ES256", RotationLead)
	if err != nil {
		t.Fatal(err)
	}
	if newKid == oldKid || !from.Equal(clk.Now().Add(RotationLead)) {
		t.Fatalf("Rotate = %s from %v; want a new kid signing from %v", newKid, from, clk.Now().Add(RotationLead))
	}
	keys := jwksOf(t, iss)
	if keys[oldKid] == nil || keys[newKid] == nil {
		t.Fatalf("JWKS right after Rotate has %v, want %s and %s", slices.Collect(mapKeys(keys)), oldKid, newKid)
	}
	if k := kidNow(); k != oldKid {
		t.Fatalf("token right after Rotate signed by %s, want the old %s until %v", k, oldKid, from)
	}
	clk.Add(RotationLead - time.Second)
	if k := kidNow(); k != oldKid {
		t.Fatalf("token a second before the new key's time signed by %s, want %s", k, oldKid)
	}
	clk.Add(time.Second)
	if k := kidNow(); k != newKid {
		t.Fatalf("token at the new key's time signed by %s, want %s", k, newKid)
	}
	if _, err := iss.Verify(ctx, old, "app1"); err != nil {
		t.Fatalf("token signed before Rotate: %v", err)
	}

	clk.Add(5*time.Minute + 5*time.Second + time.Minute - time.Second)
	if jwksOf(t, iss)[oldKid] == nil {
		t.Fatal("retired key left the JWKS before TTL+CacheFor+1m")
	}
	clk.Add(2 * time.Second)
	keys = jwksOf(t, iss)
	if keys[oldKid] != nil || keys[newKid] == nil {
		t.Fatalf("JWKS after TTL+CacheFor+1m has %v, want only %s", slices.Collect(mapKeys(keys)), newKid)
	}
}

// Rotating again before the last rotated key's time replaces that one: at each moment
// exactly the newest key whose time has come signs.
func TestRotate_Twice_EachKeySignsInItsTurn(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	iss := newIssuer(&memKeys{}, clk)
	first, _, err := iss.Issue(ctx, Claims{Subject: "alice", Audience: "app1"})
	if err != nil {
		t.Fatal(err)
	}
	k1, _, err := iss.Rotate(ctx, "EdDSA", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(30 * time.Second)
	k2, _, err := iss.Rotate(ctx, "EdDSA", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		wait time.Duration
		want string
	}{
		{0, header(t, first)["kid"].(string)},
		{31 * time.Second, k1}, // k1's time came; k2's has not
		{30 * time.Second, k2},
	} {
		clk.Add(step.wait)
		tok, _, err := iss.Issue(ctx, Claims{Subject: "alice", Audience: "app1"})
		if err != nil {
			t.Fatal(err)
		}
		if k := header(t, tok)["kid"]; k != step.want {
			t.Errorf("at %v: signed by %v, want %s", clk.Now(), k, step.want)
		}
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestIssue_FollowsRotationByAnotherInstanceWithinCacheFor(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	ks := &memKeys{}
	a, b := newIssuer(ks, clk), newIssuer(ks, clk)
	tok, _, err := a.Issue(ctx, Claims{Subject: "alice", Audience: "app1"})
	if err != nil {
		t.Fatal(err)
	}
	oldKid := header(t, tok)["kid"]
	newKid, _, err := b.Rotate(ctx, "EdDSA", 0)
	if err != nil {
		t.Fatal(err)
	}
	// b's new token verifies on a at once: an unknown kid makes a ask the store.
	tb, _, _ := b.Issue(ctx, Claims{Subject: "alice", Audience: "app1"})
	if _, err := a.Verify(ctx, tb, "app1"); err != nil {
		t.Fatalf("a refuses b's token signed with the rotated key: %v", err)
	}
	clk.Add(5 * time.Second)
	ta, _, _ := a.Issue(ctx, Claims{Subject: "alice", Audience: "app1"})
	if k := header(t, ta)["kid"]; k != newKid || k == oldKid {
		t.Fatalf("a signs with %v CacheFor after b rotated, want %s", k, newKid)
	}
}

// With a lead longer than CacheFor, every instance has loaded the rotated key before its
// time, and all switch to it at that time together.
func TestIssue_RotationWithLead_InstancesSwitchTogether(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	ks := &memKeys{}
	a, b := newIssuer(ks, clk), newIssuer(ks, clk)
	if _, _, err := a.Issue(ctx, Claims{Subject: "alice", Audience: "app1"}); err != nil {
		t.Fatal(err)
	}
	newKid, _, err := b.Rotate(ctx, "EdDSA", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	for name, iss := range map[string]*Issuer{"a": a, "b": b} {
		tok, _, err := iss.Issue(ctx, Claims{Subject: "alice", Audience: "app1"})
		if err != nil {
			t.Fatal(err)
		}
		if k := header(t, tok)["kid"]; k != newKid {
			t.Errorf("%s signs with %v at the rotated key's time, want %s", name, k, newKid)
		}
	}
}

// Behind a load balancer a backend may fetch the JWKS from any instance: a key another
// instance signs with must be there at once, not a CacheFor later.
func TestJWKS_KeyCreatedByAnotherInstance_PublishedAtOnce(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	ks := &memKeys{}
	a, b := newIssuer(ks, clk), newIssuer(ks, clk)
	if len(jwksOf(t, b)) != 0 {
		t.Fatal("JWKS before any key: not empty")
	}
	tok, _, err := a.Issue(ctx, Claims{Subject: "alice", Audience: "app1"})
	if err != nil {
		t.Fatal(err)
	}
	if kid := header(t, tok)["kid"]; jwksOf(t, b)[kid.(string)] == nil {
		t.Fatalf("b's JWKS lacks %v, the key a just signed with", kid)
	}
}

func TestIssue_InstanceLosingTheCreateRaceUsesTheWinnersKey(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	ks := &memKeys{}
	a, b := newIssuer(ks, clk), newIssuer(ks, clk)
	var winner string
	// b has looked and found no key; a stores one before b's own create lands.
	ks.beforeAdd = func() {
		tok, _, err := a.Issue(ctx, Claims{Subject: "alice", Audience: "app1"})
		if err != nil {
			t.Error(err)
		}
		winner = header(t, tok)["kid"].(string)
	}
	tok, _, err := b.Issue(ctx, Claims{Subject: "alice", Audience: "app1"})
	if err != nil {
		t.Fatal(err)
	}
	if k := header(t, tok)["kid"]; k != winner {
		t.Fatalf("loser signs with %v, want the winner's %s", k, winner)
	}
	if got := ks.active()["EdDSA"]; len(got) != 1 {
		t.Fatalf("active EdDSA keys = %v, want one", got)
	}
}

func TestIssue_ConcurrentInstancesEndWithOneKeyPerAlg(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	ks := &memKeys{}
	const instances, callers = 3, 4
	issuers := make([]*Issuer, instances)
	for i := range issuers {
		issuers[i] = newIssuer(ks, clk)
	}
	var start, wg sync.WaitGroup
	start.Add(1)
	var mu sync.Mutex
	kids := map[string]map[string]bool{}
	for _, iss := range issuers {
		for _, alg := range Algs {
			for range callers {
				wg.Go(func() {
					start.Wait()
					tok, _, err := iss.Issue(ctx, Claims{Subject: "alice", Audience: "app1", Alg: alg})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					defer mu.Unlock()
					if kids[alg] == nil {
						kids[alg] = map[string]bool{}
					}
					kids[alg][header(t, tok)["kid"].(string)] = true
				})
			}
		}
	}
	start.Done()
	wg.Wait()
	active := ks.active()
	for _, alg := range Algs {
		if len(active[alg]) != 1 {
			t.Errorf("%s: %d active keys %v, want 1", alg, len(active[alg]), active[alg])
		}
		if len(kids[alg]) != 1 {
			t.Errorf("%s: tokens signed under %d kids, want 1", alg, len(kids[alg]))
		}
	}
}

func TestJWKS_P256CoordinatesAre32Bytes(t *testing.T) {
	ctx := context.Background()
	iss := newIssuer(&memKeys{}, newClock())
	// About one key in 128 has a coordinate below 2^248; a big.Int encoding would make it
	// 31 bytes. 500 keys meet one with probability above 98%.
	for range 500 {
		if _, _, err := iss.Rotate(ctx, "ES256", 0); err != nil {
			t.Fatal(err)
		}
	}
	keys := jwksOf(t, iss)
	if len(keys) != 500 {
		t.Fatalf("JWKS has %d keys, want 500", len(keys))
	}
	for _, j := range keys {
		publicFromJWK(t, j) // checks 32 bytes each and that the point is on the curve
	}

	// And deterministically: keys whose x or y starts with a zero byte.
	for _, coord := range []int{1, 33} {
		for {
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			pt, _ := k.PublicKey.ECDH()
			if pt.Bytes()[coord] != 0 {
				continue
			}
			j, err := jwkOf("k", "ES256", &k.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			got := publicFromJWK(t, map[string]string{"kty": j.Kty, "x": j.X, "y": j.Y})
			if !k.PublicKey.Equal(got) {
				t.Fatal("JWK of a key with a leading zero coordinate is not that key")
			}
			break
		}
	}
}

func TestStoredKey_IsSealedAndBoundToItsKid(t *testing.T) {
	ctx := context.Background()
	ks := &memKeys{}
	iss := newIssuer(ks, newClock())
	for _, alg := range []string{"EdDSA", "ES256"} {
		if _, _, err := iss.Rotate(ctx, alg, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range ks.keys {
		der, err := master.Open(k.Sealed, []byte("signing_key:"+k.KID))
		if err != nil {
			t.Fatalf("%s does not open with aad signing_key:kid: %v", k.KID, err)
		}
		p, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			t.Fatal(err)
		}
		if kid, _ := kidOf(p.(crypto.Signer).Public()); kid != k.KID {
			t.Fatalf("kid %s, derived %s", k.KID, kid)
		}
	}
	// A sealed key moved to another row no longer opens.
	ks.keys[0].Sealed, ks.keys[1].Sealed = ks.keys[1].Sealed, ks.keys[0].Sealed
	if _, err := newIssuer(ks, newClock()).JWKS(ctx); !errors.Is(err, seal.ErrCorrupt) {
		t.Fatalf("JWKS with swapped sealed keys = %v, want seal.ErrCorrupt", err)
	}
}

func TestDiscovery(t *testing.T) {
	var d map[string]any
	if err := json.Unmarshal(New(Config{Issuer: issuerURL + "/"}, &memKeys{}, master).Discovery(), &d); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"issuer":                                issuerURL,
		"jwks_uri":                              issuerURL + "/.well-known/jwks.json",
		"id_token_signing_alg_values_supported": []any{"EdDSA", "ES256", "RS256"},
		"response_types_supported":              []any{"id_token"},
		"subject_types_supported":               []any{"public"},
	}
	a, _ := json.Marshal(d)
	b, _ := json.Marshal(want)
	if string(a) != string(b) {
		t.Fatalf("Discovery = %s\nwant %s", a, b)
	}
}

// issue has iss sign alice's token for app1 with the default algorithm.
func issue(t *testing.T, iss *Issuer) (token, kid string) {
	t.Helper()
	tok, _, err := iss.Issue(context.Background(), Claims{Subject: "alice", Audience: "app1"})
	if err != nil {
		t.Fatal(err)
	}
	return tok, header(t, tok)["kid"].(string)
}

// A key that may have leaked is withdrawn: it leaves the JWKS at once, tokens it signed
// stop verifying, a new key signs in its place, and another instance follows within
// CacheFor.
func TestWithdraw_SigningKey_GoneFromJWKSAndVerifyReplacedEverywhereWithinCacheFor(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	ks := &memKeys{}
	a, b := newIssuer(ks, clk), newIssuer(ks, clk)
	leaked, oldKid := issue(t, a)
	if _, err := b.Verify(ctx, leaked, "app1"); err != nil { // b has the key cached now
		t.Fatal(err)
	}

	newKid, err := a.Withdraw(ctx, oldKid)
	if err != nil {
		t.Fatal(err)
	}
	if newKid == "" || newKid == oldKid {
		t.Fatalf("Withdraw of the signing key replaced it with %q", newKid)
	}
	if keys := jwksOf(t, a); keys[oldKid] != nil || keys[newKid] == nil {
		t.Fatalf("JWKS after Withdraw has %v, want %s and not %s", slices.Collect(mapKeys(keys)), newKid, oldKid)
	}
	if _, err := a.Verify(ctx, leaked, "app1"); err == nil {
		t.Fatal("a token of the withdrawn key still verifies on the instance that withdrew it")
	}
	if _, kid := issue(t, a); kid != newKid {
		t.Fatalf("a signs with %s after Withdraw, want %s", kid, newKid)
	}

	clk.Add(5 * time.Second) // b's CacheFor
	if _, err := b.Verify(ctx, leaked, "app1"); err == nil {
		t.Fatal("another instance still verifies a token of the withdrawn key after CacheFor")
	}
	if _, kid := issue(t, b); kid != newKid {
		t.Fatalf("another instance signs with %s after CacheFor, want %s", kid, newKid)
	}

	for _, kid := range []string{oldKid, "no-such-kid"} {
		if _, err := a.Withdraw(ctx, kid); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("Withdraw(%s): %v, want ErrUnknownKey", kid, err)
		}
	}
}

// Withdrawing a key that already retired (still published for its tokens) leaves the key
// that signs now alone.
func TestWithdraw_RetiredKey_NoReplacement(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	iss := newIssuer(&memKeys{}, clk)
	_, oldKid := issue(t, iss)
	newKid, _, err := iss.Rotate(ctx, "EdDSA", 0)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := iss.Withdraw(ctx, oldKid); err != nil || r != "" {
		t.Fatalf("Withdraw of the retired key = %q, %v; want no replacement", r, err)
	}
	if keys := jwksOf(t, iss); keys[oldKid] != nil || keys[newKid] == nil || len(keys) != 1 {
		t.Fatalf("JWKS has %v, want only %s", slices.Collect(mapKeys(keys)), newKid)
	}
}

// Withdrawing a key published ahead of its time puts a new one in its place, published now
// for the same time: backends still learn the successor before its first token.
func TestWithdraw_KeyPublishedAhead_ReplacedOnTheSameSchedule(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	iss := newIssuer(&memKeys{}, clk)
	kidAt := func() string { _, kid := issue(t, iss); return kid }
	current := kidAt()
	pending, from, err := iss.Rotate(ctx, "EdDSA", RotationLead)
	if err != nil {
		t.Fatal(err)
	}
	successor, err := iss.Withdraw(ctx, pending)
	if err != nil {
		t.Fatal(err)
	}
	if successor == "" || successor == pending || successor == current {
		t.Fatalf("withdrawing the pending key gave successor %q", successor)
	}
	if keys := jwksOf(t, iss); keys[current] == nil || keys[successor] == nil || keys[pending] != nil {
		t.Fatalf("JWKS has %v, want %s and %s", slices.Collect(mapKeys(keys)), current, successor)
	}
	if k := kidAt(); k != current {
		t.Fatalf("before the pending key's time, tokens are signed by %s, want %s", k, current)
	}
	clk.Add(from.Sub(clk.Now()))
	if k := kidAt(); k != successor {
		t.Fatalf("at the pending key's time, tokens are signed by %s, want its successor %s", k, successor)
	}
}

// A withdrawn key vouches for nothing any more, its checkpoints included, and someone who
// can write to the database cannot put it back: its private key was erased.
func TestWithdraw_CheckpointsRefused_KeyCannotBePutBack(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	ks := &memKeys{}
	iss := newIssuer(ks, clk)
	kid, alg, sig, err := iss.SignDetached(ctx, []byte("head"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.Withdraw(ctx, kid); err != nil {
		t.Fatal(err)
	}
	if err := iss.VerifyDetached(ctx, kid, alg, []byte("head"), sig); !errors.Is(err, store.ErrWithdrawn) {
		t.Fatalf("a checkpoint of the withdrawn key: %v, want ErrWithdrawn", err)
	}
	// A database writer marks the row active again.
	ks.mu.Lock()
	for i := range ks.keys {
		if ks.keys[i].KID == kid {
			ks.keys[i].RetiredAt = time.Time{}
		}
	}
	ks.mu.Unlock()
	clk.Add(5 * time.Second)
	if keys := jwksOf(t, iss); keys[kid] != nil {
		t.Fatal("the withdrawn key is published again")
	}
	tok, _, err := iss.Issue(ctx, Claims{Subject: "alice", Audience: "app1"})
	if err != nil || header(t, tok)["kid"] == kid {
		t.Fatalf("after the row was put back: token by %v, %v; want another key, no outage", header(t, tok)["kid"], err)
	}
}
