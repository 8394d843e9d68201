package client_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/twofold-dev/twofold/server/client"
)

// These tests serve the JWKS themselves, so that a fetch can be held in flight until the
// test releases it: no sleeps, the fake clock for time.

const heldIssuer = "https://mfa.example.com"

// notBlocked bounds a wait for something that must not depend on a held fetch. It only
// matters when the code is wrong; it is far below the fetch's own 10 s timeout, which
// would otherwise release the wait and hide the fault.
const notBlocked = 5 * time.Second

type signingKey struct {
	kid  string
	priv ed25519.PrivateKey
}

func newSigningKey(t *testing.T, kid string) signingKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid, priv}
}

// sign makes a valid token of key for app "shop", issued at now.
func (k signingKey) sign(t *testing.T, now time.Time) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
		"iss": heldIssuer, "aud": "shop", "sub": "alice", "jti": fmt.Sprint(now.UnixNano()),
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "amr": []string{"otp"},
	})
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// heldJWKS serves a JWK Set whose answers can be held until released.
type heldJWKS struct {
	srv     *httptest.Server
	hits    chan struct{} // one per held request, once received
	fetches atomic.Int32

	mu      sync.Mutex
	keys    []signingKey
	hold    chan struct{} // while non-nil, requests wait for it to be closed
	release func()
}

func newHeldJWKS(t *testing.T, keys ...signingKey) *heldJWKS {
	t.Helper()
	j := &heldJWKS{keys: keys, hits: make(chan struct{}, 100)}
	j.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.fetches.Add(1)
		j.mu.Lock()
		hold := j.hold
		j.mu.Unlock()
		if hold != nil {
			j.hits <- struct{}{}
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		j.mu.Lock()
		var set []map[string]string
		for _, k := range j.keys {
			set = append(set, map[string]string{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": k.kid,
				"x": b64.EncodeToString(k.priv.Public().(ed25519.PublicKey))})
		}
		j.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"keys": set})
	}))
	t.Cleanup(func() { j.releaseHeld(); j.srv.Close() })
	return j
}

func (j *heldJWKS) setKeys(keys ...signingKey) { j.mu.Lock(); j.keys = keys; j.mu.Unlock() }

// holdNext makes the requests from now on wait until releaseHeld.
func (j *heldJWKS) holdNext() {
	j.mu.Lock()
	defer j.mu.Unlock()
	hold := make(chan struct{})
	j.hold, j.release = hold, sync.OnceFunc(func() { close(hold) })
}

func (j *heldJWKS) releaseHeld() {
	j.mu.Lock()
	release := j.release
	j.hold, j.release = nil, nil
	j.mu.Unlock()
	if release != nil {
		release()
	}
}

// awaitHit waits for the JWKS server to receive a held request.
func (j *heldJWKS) awaitHit(t *testing.T) {
	t.Helper()
	select {
	case <-j.hits:
	case <-time.After(10 * time.Second):
		t.Fatal("the verifier never fetched the JWKS")
	}
}

func heldVerifier(t *testing.T, j *heldJWKS) (*client.Verifier, *fakeClock) {
	t.Helper()
	clock := newClock()
	v, err := client.NewVerifier(client.Config{Issuer: heldIssuer, Audience: "shop", JWKSURL: j.srv.URL, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return v, clock
}

// verifyAsync runs Verify in the background; its result arrives on the channel.
func verifyAsync(ctx context.Context, v *client.Verifier, token string) <-chan error {
	done := make(chan error, 1)
	go func() { _, err := v.Verify(ctx, token); done <- err }()
	return done
}

// A caller whose context ends while the key set is being fetched (a client that hangs up:
// Middleware passes r.Context()) gets its own refusal; the fetch goes on for everyone else
// and is not counted as failed. Before, the aborted fetch counted as a failed attempt, so
// for MinRefresh (30 s) a cold backend refused every token, a rotated key's tokens were
// refused, and a key withdrawn from the JWKS stayed usable past CacheFor.
func TestVerify_CallerHangsUp_KeySetStillFetched(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup brings the verifier to the state of the case and returns the token the
		// hung-up caller sends, the token a legitimate caller sends after, and what that
		// one should get (nil: accepted).
		setup func(t *testing.T, j *heldJWKS, v *client.Verifier, clock *fakeClock) (hungUp, legit string, want error)
	}{
		{"ColdCache_ValidTokenAccepted", func(t *testing.T, j *heldJWKS, v *client.Verifier, clock *fakeClock) (string, string, error) {
			k1 := j.keys[0]
			return newSigningKey(t, "junk").sign(t, clock.Now()), k1.sign(t, clock.Now()), nil
		}},
		{"Rotation_NewKeyAccepted", func(t *testing.T, j *heldJWKS, v *client.Verifier, clock *fakeClock) (string, string, error) {
			k1, k2 := j.keys[0], newSigningKey(t, "k2")
			if _, err := v.Verify(context.Background(), k1.sign(t, clock.Now())); err != nil {
				t.Fatal(err)
			}
			j.setKeys(k1, k2)
			clock.Advance(31 * time.Second) // past MinRefresh: an unknown kid may fetch
			return newSigningKey(t, "junk").sign(t, clock.Now()), k2.sign(t, clock.Now()), nil
		}},
		{"WithdrawnKey_RefusedPastCacheFor", func(t *testing.T, j *heldJWKS, v *client.Verifier, clock *fakeClock) (string, string, error) {
			k1 := j.keys[0]
			if _, err := v.Verify(context.Background(), k1.sign(t, clock.Now())); err != nil {
				t.Fatal(err)
			}
			j.setKeys(newSigningKey(t, "k2")) // k1 withdrawn
			clock.Advance(61 * time.Second)   // past the default CacheFor: the set must be fetched again
			return k1.sign(t, clock.Now()), k1.sign(t, clock.Now()), client.ErrUnknownKey
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := newHeldJWKS(t, newSigningKey(t, "k1"))
			v, clock := heldVerifier(t, j)
			hungUp, legit, want := tc.setup(t, j, v, clock)
			before := j.fetches.Load()

			j.holdNext()
			ctx, hangUp := context.WithCancel(context.Background())
			done := verifyAsync(ctx, v, hungUp)
			j.awaitHit(t)
			hangUp()
			var err error
			select {
			case err = <-done:
			case <-time.After(notBlocked):
				t.Fatal("the caller that hung up is still waiting for the held fetch")
			}
			if !errors.Is(err, client.ErrKeysUnavailable) || !errors.Is(err, context.Canceled) {
				t.Errorf("the caller that hung up got %v; want keys_unavailable wrapping its context's error", err)
			}

			j.releaseHeld()
			// No time passes: the next caller is within MinRefresh of the fetch.
			if _, err := v.Verify(context.Background(), legit); !errors.Is(err, want) {
				t.Fatalf("the next caller got %v, want %v", err, want)
			}
			if n := j.fetches.Load() - before; n != 1 {
				t.Errorf("%d fetches for the hang-up and the next caller; want the one", n)
			}
		})
	}
}

// The same attack end to end: a client sends a token to a Middleware-protected handler and
// closes its connection while the key set is being fetched.
func TestMiddleware_ClientHangsUp_OthersStillServed(t *testing.T) {
	k1 := newSigningKey(t, "k1")
	j := newHeldJWKS(t, k1)
	v, clock := heldVerifier(t, j)
	handled := make(chan struct{}, 10)
	mw := v.Middleware()(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { handled <- struct{}{} }()
		mw.ServeHTTP(w, r)
	}))
	defer app.Close()

	j.holdNext()
	conn, err := net.Dial("tcp", app.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer %s\r\n\r\n", newSigningKey(t, "junk").sign(t, clock.Now()))
	j.awaitHit(t)
	conn.Close()
	select {
	case <-handled:
	case <-time.After(notBlocked):
		t.Fatal("the handler of the hung-up request is still waiting for the held fetch")
	}
	j.releaseHeld()

	req, _ := http.NewRequest(http.MethodGet, app.URL, nil)
	req.Header.Set("Authorization", "Bearer "+k1.sign(t, clock.Now()))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("a valid token after another client hung up: %d, want 200", res.StatusCode)
	}
}

// A token whose key is cached and fresh is verified at once, whatever fetch is in flight
// (before, the fetch held the key set's lock: every token waited for it).
func TestVerify_FreshKeyNotHeldBehindSlowFetch(t *testing.T) {
	k1 := newSigningKey(t, "k1")
	j := newHeldJWKS(t, k1)
	v, clock := heldVerifier(t, j)
	if _, err := v.Verify(context.Background(), k1.sign(t, clock.Now())); err != nil {
		t.Fatal(err)
	}
	clock.Advance(31 * time.Second) // past MinRefresh, well within CacheFor

	j.holdNext()
	unknown := verifyAsync(context.Background(), v, newSigningKey(t, "unknown").sign(t, clock.Now()))
	j.awaitHit(t)
	select {
	case err := <-verifyAsync(context.Background(), v, k1.sign(t, clock.Now())):
		if err != nil {
			t.Fatalf("a token of the cached key during the fetch: %v", err)
		}
	case <-time.After(notBlocked):
		t.Fatal("a token of a cached, fresh key waited for a fetch for an unknown kid")
	}
	select {
	case err := <-unknown:
		t.Fatalf("the unknown kid's caller did not wait for the fetch it started: %v", err)
	default:
	}
	j.releaseHeld()
	if err := <-unknown; !errors.Is(err, client.ErrUnknownKey) {
		t.Fatalf("the unknown kid after the fetch: %v", err)
	}
}

// Callers that need the set while it is being fetched wait for that one fetch; one that
// gives up (its context ends) leaves at once, and the others still get the keys.
func TestVerify_WaiterGivesUp_OthersGetTheSharedFetch(t *testing.T) {
	k1 := newSigningKey(t, "k1")
	j := newHeldJWKS(t, k1)
	v, clock := heldVerifier(t, j)

	j.holdNext()
	first := verifyAsync(context.Background(), v, k1.sign(t, clock.Now()))
	j.awaitHit(t)
	ctx, giveUp := context.WithCancel(context.Background())
	waiter := verifyAsync(ctx, v, k1.sign(t, clock.Now()))
	giveUp()
	select {
	case err := <-waiter:
		if !errors.Is(err, client.ErrKeysUnavailable) || !errors.Is(err, context.Canceled) {
			t.Errorf("the waiter that gave up got %v; want keys_unavailable wrapping context.Canceled", err)
		}
	case <-time.After(notBlocked):
		t.Fatal("a waiter whose context ended is still waiting for the held fetch")
	}
	j.releaseHeld()
	if err := <-first; err != nil {
		t.Fatalf("the caller that started the fetch: %v", err)
	}
	if n := j.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches; want one shared", n)
	}
}

// The keys are the ones the JWKS URL's own origin serves. A redirect elsewhere (a proxy
// that sends /.well-known/jwks.json to http://, where anyone on the path answers, or to
// another host) is refused, not followed to keys that would then sign anything.
func TestJWKS_RedirectToAnotherOrigin_NotFollowed(t *testing.T) {
	ctx := context.Background()
	mallory := newSigningKey(t, "k1")
	elsewhere := newHeldJWKS(t, mallory)
	real := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.srv.URL+"/.well-known/jwks.json", http.StatusFound)
	}))
	t.Cleanup(real.Close)
	v, err := client.NewVerifier(client.Config{Issuer: heldIssuer, Audience: "shop", JWKSURL: real.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, mallory.sign(t, time.Now())); !errors.Is(err, client.ErrKeysUnavailable) {
		t.Fatalf("a token signed by the keys of another origin: %v, want keys_unavailable", err)
	}
	if n := elsewhere.fetches.Load(); n != 0 {
		t.Errorf("the other origin was asked for its keys %d times", n)
	}
}

// A redirect within the JWKS URL's origin is still followed.
func TestJWKS_RedirectWithinTheOrigin_Followed(t *testing.T) {
	alice := newSigningKey(t, "k1")
	j := newHeldJWKS(t, alice)
	v, err := client.NewVerifier(client.Config{Issuer: heldIssuer, Audience: "shop", JWKSURL: j.srv.URL + "/old",
		HTTPClient: &http.Client{Transport: movedOnce{}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), alice.sign(t, time.Now())); err != nil {
		t.Fatal(err)
	}
}

// movedOnce answers a request for /old with a redirect to /keys on the same
// origin, and passes every other request on.
type movedOnce struct{}

func (movedOnce) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasPrefix(r.URL.Path, "/old") {
		return &http.Response{StatusCode: http.StatusMovedPermanently, Request: r, Body: http.NoBody,
			Header: http.Header{"Location": {"/keys"}}}, nil
	}
	return http.DefaultTransport.RoundTrip(r)
}

// An RSA key shorter than 2048 bits is not used, also when its modulus is padded to 256
// bytes with leading zeros.
func TestJWKS_ShortRSAKeyPaddedWithZeros_NotUsed(t *testing.T) {
	short, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	padded := append(make([]byte, 256-len(short.N.Bytes())), short.N.Bytes()...)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "k1",
			"n": b64.EncodeToString(padded), "e": b64.EncodeToString(big.NewInt(int64(short.E)).Bytes())}}})
	}))
	t.Cleanup(srv.Close)
	v, err := client.NewVerifier(client.Config{Issuer: heldIssuer, Audience: "shop", JWKSURL: srv.URL, Algorithms: []string{"RS256"}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": heldIssuer, "aud": "shop", "sub": "alice",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(short)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), s); !errors.Is(err, client.ErrUnknownKey) {
		t.Fatalf("a token of a 1024-bit key: %v, want unknown_key", err)
	}
}
