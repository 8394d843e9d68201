package client_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"

	"github.com/twofold-dev/twofold/server/client"
	"github.com/twofold-dev/twofold/server/client/fiberclient"
	"github.com/twofold-dev/twofold/server/internal/serve"
	"github.com/twofold-dev/twofold/server/internal/tokens"
)

func newVerifier(t testing.TB, cfg client.Config) (*client.Verifier, *countingClient) {
	t.Helper()
	cc := &countingClient{}
	if cfg.Issuer == "" {
		cfg.Issuer = verifierURL
	}
	if cfg.Audience == "" {
		cfg.Audience = "shop"
	}
	cfg.HTTPClient = &http.Client{Transport: cc}
	v, err := client.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v, cc
}

var b64 = base64.RawURLEncoding

func segments(t *testing.T, token string) (head map[string]any, payload []byte) {
	t.Helper()
	parts := strings.Split(token, ".")
	h, _ := b64.DecodeString(parts[0])
	if err := json.Unmarshal(h, &head); err != nil {
		t.Fatal(err)
	}
	payload, _ = b64.DecodeString(parts[1])
	return head, payload
}

func encode(v any) string {
	b, _ := json.Marshal(v)
	return b64.EncodeToString(b)
}

// issueDirect signs a token with the verifier's own keys through its tokens package, for
// claims the API never produces (no amr at all).
func issueDirect(t *testing.T, c tokens.Claims) string {
	t.Helper()
	return issueDirectAt(t, nil, c)
}

// issueDirectAt is issueDirect by a verifier whose clock is now (nil: the real one).
func issueDirectAt(t *testing.T, now func() time.Time, c tokens.Claims) string {
	t.Helper()
	env, err := serve.Open(context.Background(), serve.Config{DataDir: dataDir, Issuer: verifierURL, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	tok, _, err := env.Tokens.Issue(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// publicKeyOf is the raw Ed25519 public key the JWKS publishes for kid.
func publicKeyOf(t *testing.T, kid string) []byte {
	t.Helper()
	res, err := http.Get(verifierURL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var set struct{ Keys []struct{ Kid, X string } }
	json.NewDecoder(res.Body).Decode(&set)
	for _, k := range set.Keys {
		if k.Kid == kid {
			x, _ := b64.DecodeString(k.X)
			return x
		}
	}
	t.Fatalf("kid %s not in the JWKS", kid)
	return nil
}

func TestVerify_RealTokens_Accepted(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ app, alg string }{{"shop", "EdDSA"}, {"es-shop", "ES256"}, {"rs-shop", "RS256"}} {
		t.Run(tc.alg, func(t *testing.T) {
			v, _ := newVerifier(t, client.Config{Audience: tc.app, Algorithms: []string{tc.alg}})
			tok := signIn(t, verifierURL, tc.app, "ann-"+tc.alg, "n-123")
			c, err := v.Verify(ctx, tok, client.RequireNonce("n-123"), client.RequireAMR("otp"), client.RequireACR("mfa", "phr"), client.SingleUse())
			if err != nil {
				t.Fatal(err)
			}
			if c.Subject != "ann-"+tc.alg || c.Audience != tc.app || c.Issuer != verifierURL || !c.HasAMR("otp") || c.ACR != "mfa" || c.ID == "" || c.Nonce != "n-123" {
				t.Errorf("claims %+v", c)
			}
			if d := c.ExpiresAt.Sub(c.IssuedAt); d != 5*time.Minute {
				t.Errorf("lifetime %s", d)
			}
		})
	}
}

// Every way a token can be wrong, each refused with its own reason.
func TestVerify_BadTokens_RefusedWithTheirReason(t *testing.T) {
	ctx := context.Background()
	good := signIn(t, verifierURL, "shop", "bob", "")
	head, payload := segments(t, good)
	kid := head["kid"].(string)
	parts := strings.Split(good, ".")

	// One character of the signature changed (a middle one: the last carries spare bits).
	sig := []byte(parts[2])
	// Another base64url letter, never a character outside the alphabet ('-' ^ 3 is '.').
	if sig[10] == 'A' {
		sig[10] = 'B'
	} else {
		sig[10] = 'A'
	}
	tampered := parts[0] + "." + parts[1] + "." + string(sig)
	// The claims changed under the original signature.
	var claims map[string]any
	json.Unmarshal(payload, &claims)
	claims["sub"] = "mallory"
	otherSub := parts[0] + "." + encode(claims) + "." + parts[2]
	// alg none, with and without a signature, naming the real key.
	none := encode(map[string]any{"alg": "none", "typ": "JWT", "kid": kid}) + "." + parts[1] + "."
	// HS256 with the published public key as the HMAC secret: the classic confusion.
	hsHead := encode(map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid})
	mac := hmac.New(sha256.New, publicKeyOf(t, kid))
	mac.Write([]byte(hsHead + "." + parts[1]))
	hs256 := hsHead + "." + parts[1] + "." + b64.EncodeToString(mac.Sum(nil))
	// The same, with an alg in capitals after it that a case-blind reading of the header
	// would take for the alg (golang-jwt reads "alg" only). Written by hand: a map would
	// put "ALG" first.
	hsCaps := b64.EncodeToString([]byte(`{"alg":"HS256","ALG":"EdDSA","typ":"JWT","kid":"` + kid + `"}`))
	mac = hmac.New(sha256.New, publicKeyOf(t, kid))
	mac.Write([]byte(hsCaps + "." + parts[1]))
	hs256Caps := hsCaps + "." + parts[1] + "." + b64.EncodeToString(mac.Sum(nil))
	// A real-looking token from a key the verifier never published.
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	fj := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims(claims))
	fj.Header["kid"] = "not-a-published-kid"
	foreign, _ := fj.SignedString(stranger)
	// The same forged token naming the real kid: a signature the real key does not match.
	fj.Header["kid"] = kid
	foreignRealKid, _ := fj.SignedString(stranger)

	noAMR := issueDirect(t, tokens.Claims{Subject: "bob", Audience: "shop"})

	cases := []struct {
		name  string
		token string
		cfg   func(*client.Config)
		reqs  []client.Requirement
		want  error
	}{
		{"WrongSignature", tampered, nil, nil, client.ErrSignature},
		{"ClaimsChangedUnderTheSignature", otherSub, nil, nil, client.ErrSignature},
		{"SignedByAnotherKeyUnderTheRealKid", foreignRealKid, nil, nil, client.ErrSignature},
		{"AlgNone", none, nil, nil, client.ErrAlgorithm},
		{"AlgNoneWithTheOriginalSignature", none + parts[2], nil, nil, client.ErrAlgorithm},
		{"HS256SignedWithThePublicKey", hs256, nil, nil, client.ErrAlgorithm},
		{"HS256EvenWhenConfiguredForIt", hs256, func(c *client.Config) {}, nil, client.ErrAlgorithm},
		{"HS256BehindACapitalizedALG", hs256Caps, nil, nil, client.ErrAlgorithm},
		{"UnknownKid", foreign, nil, nil, client.ErrUnknownKey},
		{"Expired", good, func(c *client.Config) {
			c.Now = func() time.Time { return time.Now().Add(5*time.Minute + 31*time.Second) }
		}, nil, client.ErrExpired},
		{"NotYetValid", good, func(c *client.Config) { c.Now = func() time.Time { return time.Now().Add(-time.Minute) } }, nil, client.ErrNotYetValid},
		{"WrongAudience", signIn(t, verifierURL, "other", "bob", ""), nil, nil, client.ErrAudience},
		{"WrongIssuerSameKeys", signIn(t, imposterURL, "shop", "carl", ""), nil, nil, client.ErrIssuer},
		{"WrongIssuerConfigured", good, func(c *client.Config) {
			c.Issuer = "https://mfa.example.com"
			c.JWKSURL = verifierURL + "/.well-known/jwks.json"
		}, nil, client.ErrIssuer},
		{"AlgorithmNotPinned", signIn(t, verifierURL, "es-shop", "bob", ""), func(c *client.Config) { c.Audience = "es-shop" }, nil, client.ErrAlgorithm},
		{"NoAMR", noAMR, nil, []client.Requirement{client.RequireAMR("otp", "hwk", "swk")}, client.ErrAMR},
		{"AMRNotTheOneRequired", good, nil, []client.Requirement{client.RequireAMR("hwk", "swk")}, client.ErrAMR},
		{"ACRNotPhishingResistant", good, nil, []client.Requirement{client.RequireACR("phr")}, client.ErrACR},
		{"ConfiguredRequirement", good, func(c *client.Config) { c.Require = []client.Requirement{client.RequireACR("phr")} }, nil, client.ErrACR},
		{"NonceMissing", good, nil, []client.Requirement{client.RequireNonce("expected")}, client.ErrNonce},
		{"WrongNonce", signIn(t, verifierURL, "shop", "dee", "session-1"), nil, []client.Requirement{client.RequireNonce("session-2")}, client.ErrNonce},
		{"NotAJWT", "hello", nil, nil, client.ErrMalformed},
		{"Empty", "", nil, nil, client.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := client.Config{}
			if tc.name == "HS256EvenWhenConfiguredForIt" {
				// HS256 is not a configurable algorithm at all.
				if _, err := client.NewVerifier(client.Config{Issuer: verifierURL, Audience: "shop", Algorithms: []string{"HS256"}}); err == nil {
					t.Fatal("a Verifier accepted HS256 as an algorithm")
				}
			}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			v, _ := newVerifier(t, cfg)
			c, err := v.Verify(ctx, tc.token, tc.reqs...)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v (claims %+v), want %v", err, c, tc.want)
			}
			var te *client.TokenError
			if !errors.As(err, &te) || c != nil {
				t.Errorf("refusal %T with claims %v", err, c)
			}
		})
	}
	// The good token itself passes every check above that it was not made to fail.
	v, _ := newVerifier(t, client.Config{})
	if _, err := v.Verify(ctx, good, client.RequireAMR("otp"), client.SingleUse()); err != nil {
		t.Fatalf("the good token: %v", err)
	}
}

func TestVerify_ReusedJTI_RefusedOnlyWithSingleUse(t *testing.T) {
	ctx := context.Background()
	v, _ := newVerifier(t, client.Config{})
	tok := signIn(t, verifierURL, "shop", "eve", "")
	// Without SingleUse a token may be checked again (a bearer token on API calls).
	for range 2 {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.Verify(ctx, tok, client.SingleUse()); err != nil {
		t.Fatalf("first single use: %v", err)
	}
	if _, err := v.Verify(ctx, tok, client.SingleUse()); !errors.Is(err, client.ErrReplayed) {
		t.Fatalf("second single use: %v, want replayed", err)
	}
	// A token refused for another reason first is not remembered.
	other := signIn(t, verifierURL, "shop", "fay", "")
	if _, err := v.Verify(ctx, other, client.RequireACR("phr"), client.SingleUse()); !errors.Is(err, client.ErrACR) {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, other, client.SingleUse()); err != nil {
		t.Fatalf("a token refused for its acr was remembered as used: %v", err)
	}
}

func TestVerify_SingleUse_OneOfConcurrentWins(t *testing.T) {
	ctx := context.Background()
	v, _ := newVerifier(t, client.Config{})
	tok := signIn(t, verifierURL, "shop", "gus", "")
	const n = 16
	errs := make(chan error, n)
	for range n {
		go func() { _, err := v.Verify(ctx, tok, client.SingleUse()); errs <- err }()
	}
	ok := 0
	for range n {
		if err := <-errs; err == nil {
			ok++
		} else if !errors.Is(err, client.ErrReplayed) {
			t.Error(err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent uses passed", ok, n)
	}
}

// A token is a few hundred bytes. One of many kilobytes is refused before anything of it
// is decoded, even when it is well signed: else any client could make the backend parse a
// megabyte of JSON per request, for a signature it could never have.
func TestVerify_OversizedToken_RefusedUnread(t *testing.T) {
	ctx := context.Background()
	v, _ := newVerifier(t, client.Config{})
	big := issueDirect(t, tokens.Claims{Subject: "hana", Audience: "shop", AMR: []string{"otp"},
		Extra: map[string]any{"pad": strings.Repeat("a", 64<<10)}})
	if _, err := v.Verify(ctx, big); !errors.Is(err, client.ErrMalformed) {
		t.Fatalf("a %d-byte token: %v, want malformed", len(big), err)
	}
	// The largest token the verifier issues (a sub and a nonce of 256 bytes that JSON
	// escapes six-fold, the RS256 signature) still passes.
	odd := strings.Repeat("<", 256)
	tok := issueDirect(t, tokens.Claims{Subject: odd, Audience: "rs-shop", Nonce: odd, AMR: []string{"hwk", "user"}, Alg: "RS256",
		Extra: map[string]any{"acr": "phr"}})
	rs, _ := newVerifier(t, client.Config{Audience: "rs-shop", Algorithms: []string{"RS256"}})
	if _, err := rs.Verify(ctx, tok, client.RequireNonce(odd)); err != nil {
		t.Fatalf("a %d-byte token of the verifier's: %v", len(tok), err)
	}
}

// The default replay cache is the process's: a token used once through one Verifier is
// refused by another of the same process (a login handler's and an API middleware's).
func TestVerify_SingleUse_TwoVerifiersOfOneProcess_SecondRefused(t *testing.T) {
	ctx := context.Background()
	login, _ := newVerifier(t, client.Config{})
	api, _ := newVerifier(t, client.Config{})
	tok := signIn(t, verifierURL, "shop", "gil", "")
	if _, err := login.Verify(ctx, tok, client.SingleUse()); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Verify(ctx, tok, client.SingleUse()); !errors.Is(err, client.ErrReplayed) {
		t.Fatalf("the token used once went through another Verifier: %v, want replayed", err)
	}
}

// SingleUse in Config.Require comes before the call's requirements in the list, yet a
// token the call refuses (a nonce of another sign-in) must not be spent by it: the person
// whose token it is could not sign in with it any more.
func TestVerify_SingleUseForEveryCall_TokenRefusedByTheCallNotSpent(t *testing.T) {
	ctx := context.Background()
	v, _ := newVerifier(t, client.Config{Require: []client.Requirement{client.SingleUse()}, Replay: client.NewMemoryReplayCache()})
	tok := signIn(t, verifierURL, "shop", "gina", "n-right")
	if _, err := v.Verify(ctx, tok, client.RequireNonce("n-other")); !errors.Is(err, client.ErrNonce) {
		t.Fatalf("another sign-in's nonce: %v, want a nonce refusal", err)
	}
	if _, err := v.Verify(ctx, tok, client.RequireNonce("n-right")); err != nil {
		t.Fatalf("the token's own sign-in, after a refusal for the nonce: %v", err)
	}
	if _, err := v.Verify(ctx, tok, client.RequireNonce("n-right")); !errors.Is(err, client.ErrReplayed) {
		t.Fatalf("a second use: %v, want replayed", err)
	}
}

// A Verifier whose clock is set apart from the wall clock (Config.Now, say corrected by
// NTP on a host whose own clock is wrong) still remembers a jti for as long as it would
// accept the token: the cache keeps time by the wall clock.
func TestVerify_SingleUse_ClockBehindTheWallClock_ReplayStillRefused(t *testing.T) {
	ctx := context.Background()
	behind := func() time.Time { return time.Now().Add(-time.Hour) }
	tok := issueDirectAt(t, behind, tokens.Claims{Subject: "gwen", Audience: "shop", AMR: []string{"otp"}})
	v, _ := newVerifier(t, client.Config{Now: behind, Replay: client.NewMemoryReplayCache()})
	if _, err := v.Verify(ctx, tok, client.SingleUse()); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, tok, client.SingleUse()); !errors.Is(err, client.ErrReplayed) {
		t.Fatalf("second use: %v, want replayed", err)
	}
}

func TestJWKS_FetchedOnceThenCached(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	v, cc := newVerifier(t, client.Config{Now: clock.Now, CacheFor: 2 * time.Minute})
	tok := signIn(t, verifierURL, "shop", "hal", "")
	for range 50 {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := cc.n.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches for 50 verifications", n)
	}
	clock.Advance(2 * time.Minute)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if n := cc.n.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches after CacheFor; want the set fetched again", n)
	}
}

func TestJWKS_UnknownKid_RefreshedOnceThenRefused(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	v, cc := newVerifier(t, client.Config{Now: clock.Now, MinRefresh: 30 * time.Second})
	good := signIn(t, verifierURL, "shop", "ida", "")
	if _, err := v.Verify(ctx, good); err != nil {
		t.Fatal(err)
	}
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	_, payload := segments(t, good)
	var claims jwt.MapClaims
	json.Unmarshal(payload, &claims)
	forge := func(kid string) string {
		j := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
		j.Header["kid"] = kid
		s, _ := j.SignedString(stranger)
		return s
	}
	// The cache is fresh (fetched just now): an unknown kid may not fetch within MinRefresh.
	clock.Advance(31 * time.Second)
	if _, err := v.Verify(ctx, forge("rotated-1")); !errors.Is(err, client.ErrUnknownKey) {
		t.Fatal(err)
	}
	if n := cc.n.Load(); n != 2 {
		t.Fatalf("%d fetches; an unknown kid should refresh the set once", n)
	}
	// A flood of unknown kids right after: refused from the cache, no fetch at all.
	for i := range 100 {
		if _, err := v.Verify(ctx, forge("flood-"+string(rune('a'+i%26)))); !errors.Is(err, client.ErrUnknownKey) {
			t.Fatal(err)
		}
	}
	if n := cc.n.Load(); n != 2 {
		t.Fatalf("%d fetches after a flood of unknown kids; want none more", n)
	}
	// Known keys still verify meanwhile, from the cache.
	if _, err := v.Verify(ctx, good); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Second)
	v.Verify(ctx, forge("later"))
	if n := cc.n.Load(); n != 3 {
		t.Fatalf("%d fetches; after MinRefresh an unknown kid may fetch once more", n)
	}
}

func TestJWKS_Unreachable_KeysUnavailable(t *testing.T) {
	v, err := client.NewVerifier(client.Config{Issuer: "http://127.0.0.1:1", Audience: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	tok := signIn(t, verifierURL, "shop", "jon", "")
	_, err = v.Verify(context.Background(), tok)
	if !errors.Is(err, client.ErrKeysUnavailable) {
		t.Fatalf("got %v", err)
	}
	if r := client.RefusalOf(err); r.Status != 503 {
		t.Errorf("refusal %+v", r)
	}
}

func TestConfig_Validate_ReportsEveryProblem(t *testing.T) {
	_, err := client.NewVerifier(client.Config{Issuer: "mfa.example.com", Algorithms: []string{"none", "HS256"}, Leeway: time.Hour})
	msg := err.Error()
	for _, want := range []string{"Config.Issuer", "Config.Audience", `"none"`, `"HS256"`, "Config.Leeway"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not name %s", msg, want)
		}
	}
}

// The key set decides which tokens pass: over plain http from another host, whoever is on
// the way can swap it. That takes https://, loopback, or saying the network is private.
func TestConfig_PlainHTTPToAnotherHost_RefusedUnlessSaidPrivate(t *testing.T) {
	for _, tc := range []struct {
		issuer, jwks string
		plain        bool
		refused      bool
	}{
		{"https://mfa.example.com", "", false, false},
		{"http://127.0.0.1:8080", "", false, false},
		{"http://localhost:8080", "", false, false},
		{"http://[::1]:8080", "", false, false},
		{"http://twofold:8080", "", false, true},
		{"https://mfa.example.com", "http://10.0.0.5:8080/.well-known/jwks.json", false, true},
		{"http://twofold:8080", "", true, false},
		{"https://mfa.example.com", "ftp://mfa.example.com/jwks", true, true},
	} {
		_, err := client.NewVerifier(client.Config{Issuer: tc.issuer, JWKSURL: tc.jwks, Audience: "shop", PlainHTTP: tc.plain})
		if refused := err != nil && strings.Contains(err.Error(), "Config.JWKSURL"); refused != tc.refused {
			t.Errorf("issuer %s, JWKS %q, PlainHTTP %v: %v; want refused %v", tc.issuer, tc.jwks, tc.plain, err, tc.refused)
		}
	}
}

// The API key goes with every ticket request: over plain http to another host, anyone on
// the way could take it. That takes https://, loopback, or saying the network is private.
func TestTicketClient_PlainHTTPToAnotherHost_RefusedUnlessSaidPrivate(t *testing.T) {
	for _, tc := range []struct {
		url     string
		plain   bool
		refused bool
	}{
		{"https://mfa.example.com", false, false},
		{"http://127.0.0.1:8080", false, false},
		{"http://localhost:8080", false, false},
		{"http://twofold:8080", false, true},
		{"http://twofold:8080", true, false},
		{"ftp://twofold", true, true},
	} {
		var opts []client.TicketClientOption
		if tc.plain {
			opts = append(opts, client.AllowPlainHTTP())
		}
		_, err := client.NewTicketClient(tc.url, "shop.key", nil, opts...)
		if (err != nil) != tc.refused {
			t.Errorf("%s, AllowPlainHTTP %v: %v; want refused %v", tc.url, tc.plain, err, tc.refused)
		}
	}
}

func TestTicketClient_WrongKey_APIError(t *testing.T) {
	tc, _ := client.NewTicketClient(verifierURL, "shop.not-the-key", nil)
	_, err := tc.Ticket(context.Background(), "kim", client.TicketOptions{})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 401 || ae.Code != "invalid_api_key" || ae.Message == "" {
		t.Fatalf("got %v", err)
	}
	if !errors.Is(err, &client.APIError{Code: "invalid_api_key"}) {
		t.Error("errors.Is does not match the code")
	}
}

func TestMiddleware_NetHTTP(t *testing.T) {
	v, _ := newVerifier(t, client.Config{})
	h := v.Middleware(client.RequireAMR("otp"))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := client.ClaimsFrom(r.Context())
		io.WriteString(w, "hello "+c.Subject)
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	strict := httptest.NewServer(v.Middleware(client.RequireACR("phr"))(h))
	defer strict.Close()
	tok := signIn(t, verifierURL, "shop", "lea", "")
	for _, tc := range []struct {
		url, auth string
		status    int
		body      string
	}{
		{srv.URL, "Bearer " + tok, 200, "hello lea"},
		{srv.URL, "", 401, `"invalid_token"`},
		{srv.URL, "Bearer " + tok[:len(tok)-4], 401, `"invalid_token"`},
		{strict.URL, "Bearer " + tok, 403, `"insufficient_authentication"`},
	} {
		req, _ := http.NewRequest("GET", tc.url, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.status || !strings.Contains(string(body), tc.body) {
			t.Errorf("%s: %d %s", tc.auth, res.StatusCode, body)
		}
		if tc.status != 200 && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("no WWW-Authenticate on %d", tc.status)
		}
	}
}

func TestMiddleware_Fiber(t *testing.T) {
	v, _ := newVerifier(t, client.Config{})
	app := fiber.New()
	app.Get("/me", fiberclient.New(v, client.RequireAMR("otp")), func(c *fiber.Ctx) error {
		return c.SendString("hello " + fiberclient.Claims(c).Subject)
	})
	tok := signIn(t, verifierURL, "shop", "max", "")
	for _, tc := range []struct {
		auth   string
		status int
		body   string
	}{
		{"Bearer " + tok, 200, "hello max"},
		{"", 401, `"invalid_token"`},
		{"Bearer " + signIn(t, verifierURL, "other", "max", ""), 401, `"invalid_token"`},
	} {
		req := httptest.NewRequest("GET", "/me", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		res, err := app.Test(req, 10000)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != tc.status || !strings.Contains(string(body), tc.body) {
			t.Errorf("%q: %d %s", tc.auth, res.StatusCode, body)
		}
	}
}

// After the verifier rotates its signing key, the first token with the new kid fetches the
// set once; tokens of the old key keep verifying from the cache.
func TestJWKS_Rotation_NewKidFetchedOnce(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	v, cc := newVerifier(t, client.Config{Now: clock.Now})
	old := signIn(t, verifierURL, "shop", "rot-old", "")
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatal(err)
	}
	env, err := serve.Open(ctx, serve.Config{DataDir: dataDir, Issuer: verifierURL})
	if err != nil {
		t.Fatal(err)
	}
	kid, _, err := env.Tokens.Rotate(ctx, "EdDSA", 0) // at once: the kit copes without a lead too
	env.Close()
	if err != nil {
		t.Fatal(err)
	}
	fresh := issueDirect(t, tokens.Claims{Subject: "rot-new", Audience: "shop", AMR: []string{"otp"}})
	if head, _ := segments(t, fresh); head["kid"] != kid {
		t.Fatalf("the new token's kid is %v, not the rotated key's %s", head["kid"], kid)
	}
	clock.Advance(31 * time.Second)
	if _, err := v.Verify(ctx, fresh); err != nil {
		t.Fatalf("a token of the rotated key: %v", err)
	}
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatalf("a token of the old key after the rotation: %v", err)
	}
	if n := cc.n.Load(); n != 2 {
		t.Fatalf("%d fetches; want one for the first key and one for the new kid", n)
	}
}

// With a lead, as keys rotate-signing uses by default, a backend that fetched the JWKS
// between the rotation and the new key's time already knows the key when its first token
// arrives: no fetch, so no refusal while the fetch cooldown lasts.
func TestJWKS_RotationWithLead_FirstTokenOfTheNewKeyNeedsNoFetch(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	// Keys kept longer than the lead, so that a fetch could only be for the new kid.
	v, cc := newVerifier(t, client.Config{Now: clock.Now, CacheFor: 10 * time.Minute})
	env, err := serve.Open(ctx, serve.Config{DataDir: dataDir, Issuer: verifierURL})
	if err != nil {
		t.Fatal(err)
	}
	kid, from, err := env.Tokens.Rotate(ctx, "EdDSA", time.Minute)
	env.Close()
	if err != nil {
		t.Fatal(err)
	}
	old := signIn(t, verifierURL, "shop", "lead-old", "")
	if head, _ := segments(t, old); head["kid"] == kid {
		t.Fatalf("a token signed with the rotated key %s before its time %v", kid, from)
	}
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatal(err)
	}
	later := func() time.Time { return from.Add(time.Second) }
	fresh := issueDirectAt(t, later, tokens.Claims{Subject: "lead-new", Audience: "shop", AMR: []string{"otp"}})
	if head, _ := segments(t, fresh); head["kid"] != kid {
		t.Fatalf("at the rotated key's time the token's kid is %v, not %s", head["kid"], kid)
	}
	clock.Advance(later().Sub(clock.Now()))
	if _, err := v.Verify(ctx, fresh); err != nil {
		t.Fatalf("the first token of the rotated key: %v", err)
	}
	if n := cc.n.Load(); n != 1 {
		t.Fatalf("%d fetches; want the one before the new key's time only", n)
	}
}

// BenchmarkVerify is what a backend pays per request to check a token: the signature
// against the cached key set, then iss, aud, exp, nbf and the claims. Per algorithm an
// app can sign with; a real token of this verifier each.
//
//	go test -run '^$' -bench Verify ./server/client
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	for _, tc := range []struct{ app, alg string }{{"shop", "EdDSA"}, {"es-shop", "ES256"}, {"rs-shop", "RS256"}} {
		b.Run(tc.alg, func(b *testing.B) {
			v, _ := newVerifier(b, client.Config{Audience: tc.app, Algorithms: []string{tc.alg}})
			tok := signIn(b, verifierURL, tc.app, "bench-"+tc.alg, "")
			if _, err := v.Verify(ctx, tok); err != nil { // fetches the key set
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// signWithVerifierKey signs header and claims as they are, with the verifier's own active
// EdDSA key (the one "shop" tokens are signed with): the header gets that key's alg and
// kid, nothing else is added. It makes tokens the verifier never issues but whose
// signature is good, so a refusal can only be for what they say.
func signWithVerifierKey(t *testing.T, head, claims map[string]any) string {
	t.Helper()
	env, err := serve.Open(context.Background(), serve.Config{DataDir: dataDir, Issuer: verifierURL})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	// The kid of the active EdDSA key: sign once to learn it, then again with it in the header.
	kid, alg, _, err := env.Tokens.SignDetached(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]any{"alg": alg, "kid": kid}
	for k, v := range head {
		h[k] = v
	}
	msg := encode(h) + "." + encode(claims)
	kid2, _, sig, err := env.Tokens.SignDetached(context.Background(), []byte(msg))
	if err != nil || kid2 != kid {
		t.Fatalf("signing: %v (kid %s, then %s)", err, kid, kid2)
	}
	return msg + "." + b64.EncodeToString(sig)
}

// shopClaims are the claims of a good token for "shop" as the verifier would sign them.
func shopClaims(sub string) map[string]any {
	now := time.Now().Unix()
	return map[string]any{"iss": verifierURL, "sub": sub, "aud": "shop", "iat": now, "nbf": now,
		"exp": now + 300, "jti": "jti-" + sub, "auth_time": now, "amr": []string{"otp"}}
}

// RFC 7515 §4.1.11: a recipient that does not understand an extension listed in crit must
// refuse the token. The kit understands none, so any crit is refused, even on a token
// signed by the verifier's own key with every claim right; and so is a crit that is empty,
// not a list, or lists a registered header (which it must not).
func TestVerify_CritHeader_RefusedEvenWellSigned(t *testing.T) {
	ctx := context.Background()
	v, _ := newVerifier(t, client.Config{})
	// The same construction without crit passes: the refusals below are for crit alone.
	if c, err := v.Verify(ctx, signWithVerifierKey(t, map[string]any{"typ": "JWT"}, shopClaims("crit-control"))); err != nil || c.Subject != "crit-control" {
		t.Fatalf("the control token: %v", err)
	}
	for _, tc := range []struct {
		name string
		head map[string]any
	}{
		{"ClaimNameExp", map[string]any{"crit": []string{"exp"}, "exp": time.Now().Add(time.Hour).Unix()}},
		{"PrivateExtension", map[string]any{"crit": []string{"x-custom"}, "x-custom": "must be understood"}},
		{"UnencodedPayload", map[string]any{"crit": []string{"b64"}, "b64": true}},
		{"ExtensionNotInTheHeader", map[string]any{"crit": []string{"x-absent"}}},
		{"Empty", map[string]any{"crit": []string{}}},
		{"RegisteredHeader", map[string]any{"crit": []string{"alg"}}},
		{"NotAList", map[string]any{"crit": "x-custom", "x-custom": 1}},
		{"Null", map[string]any{"crit": nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := signWithVerifierKey(t, tc.head, shopClaims("crit-"+tc.name))
			c, err := v.Verify(ctx, tok)
			if !errors.Is(err, client.ErrMalformed) || c != nil {
				t.Fatalf("got %v (claims %+v), want %v", err, c, client.ErrMalformed)
			}
			var te *client.TokenError
			if !errors.As(err, &te) || !strings.Contains(te.Detail, "crit") {
				t.Errorf("refusal %v does not say it is for crit", err)
			}
		})
	}
}

// The verifier signs one aud, a string. A token naming several audiences is refused in
// either order, even when one of them is this app, so that Claims.Audience can only ever
// be the app id the check accepted, never another app's.
func TestVerify_MultiValuedAudience_Refused(t *testing.T) {
	ctx := context.Background()
	v, _ := newVerifier(t, client.Config{})
	for _, tc := range []struct {
		name string
		aud  any
		want error // nil: accepted, with Audience "shop"
	}{
		{"String", "shop", nil},
		{"ListOfJustThisApp", []string{"shop"}, nil},
		{"OtherAppFirst", []string{"other", "shop"}, client.ErrAudience},
		{"ThisAppFirst", []string{"shop", "other"}, client.ErrAudience},
		{"ThisAppTwice", []string{"shop", "shop"}, client.ErrAudience},
		{"OtherAppOnly", []string{"other"}, client.ErrAudience},
		{"EmptyList", []string{}, client.ErrClaims},
		{"EmptyString", "", client.ErrClaims},
		{"NotAString", []any{"shop", 7}, client.ErrClaims},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claims := shopClaims("aud-" + tc.name)
			claims["aud"] = tc.aud
			c, err := v.Verify(ctx, signWithVerifierKey(t, map[string]any{"typ": "JWT"}, claims))
			if tc.want == nil {
				if err != nil || c.Audience != "shop" {
					t.Fatalf("aud %v: %v (claims %+v)", tc.aud, err, c)
				}
				return
			}
			if !errors.Is(err, tc.want) || c != nil {
				t.Fatalf("aud %v: got %v (claims %+v), want %v", tc.aud, err, c, tc.want)
			}
		})
	}
	// Configured for the other app, the same tokens are refused too: neither position of
	// the list is the one that counts.
	other, _ := newVerifier(t, client.Config{Audience: "other"})
	for _, aud := range [][]string{{"other", "shop"}, {"shop", "other"}} {
		claims := shopClaims("aud-other")
		claims["aud"] = aud
		if c, err := other.Verify(ctx, signWithVerifierKey(t, map[string]any{"typ": "JWT"}, claims)); !errors.Is(err, client.ErrAudience) {
			t.Errorf("aud %v for app other: %v (claims %+v), want %v", aud, err, c, client.ErrAudience)
		}
	}
}
