package client

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// publicKey is one usable key of the JWK Set.
type publicKey struct {
	alg string
	key crypto.PublicKey
}

// keySet is the cached JWKS. Fetches are spaced at least minRefresh apart, whatever tokens
// arrive; a fetch that fails keeps the keys already known. There is at most one fetch in
// flight, shared by every caller that needs it; it runs detached from the caller that
// started it (only its own timeout ends it), so a caller that gives up (a client that hangs
// up) neither cancels it nor makes it count as failed. mu is never held across the network:
// a token whose key is known and fresh never waits for a fetch.
type keySet struct {
	url        string
	http       *http.Client
	now        func() time.Time
	algs       []string
	cacheFor   time.Duration
	minRefresh time.Duration

	mu        sync.Mutex
	keys      map[string]publicKey
	fetchedAt time.Time  // last successful fetch (when it began)
	triedAt   time.Time  // last attempt, successful or not
	inflight  *keysFetch // the fetch under way, if any
	fetches   int
}

// keysFetch is one fetch of the set; done is closed once its result is in the keySet.
type keysFetch struct {
	done chan struct{}
	err  error // set before done is closed
}

// key returns the key kid names, fetching the set when it is stale or the kid is unknown
// (and the last fetch is at least minRefresh ago), or waiting for the fetch under way. If
// ctx ends first, key refuses with ErrKeysUnavailable and the fetch goes on for the others.
func (s *keySet) key(ctx context.Context, kid string) (publicKey, error) {
	s.mu.Lock()
	now := s.now()
	k, ok := s.keys[kid]
	stale := s.keys == nil || now.Sub(s.fetchedAt) >= s.cacheFor || now.Before(s.fetchedAt)
	if ok && !stale {
		s.mu.Unlock()
		return k, nil
	}
	f := s.inflight
	if f == nil {
		mayFetch := s.triedAt.IsZero() || now.Sub(s.triedAt) >= s.minRefresh || now.Before(s.triedAt)
		if !mayFetch {
			defer s.mu.Unlock()
			if ok { // stale, but refetched lately without success: keep using what we know
				return k, nil
			}
			if s.keys == nil {
				return publicKey{}, refuse(ErrKeysUnavailable, "the JWKS could not be fetched; next try in %s", s.minRefresh-now.Sub(s.triedAt))
			}
			return publicKey{}, refuse(ErrUnknownKey, "no key %q in the JWKS (fetched %s ago)", kid, now.Sub(s.fetchedAt).Round(time.Second))
		}
		s.triedAt = now
		s.fetches++
		f = &keysFetch{done: make(chan struct{})}
		s.inflight = f
		go s.run(context.WithoutCancel(ctx), f, now)
	}
	s.mu.Unlock()

	select {
	case <-f.done:
	case <-ctx.Done():
		select {
		case <-f.done: // finished as well: use it
		default:
			return publicKey{}, &TokenError{Code: ErrKeysUnavailable.Code,
				Detail: fmt.Sprintf("gave up waiting for the JWKS: %v", ctx.Err()), cause: ctx.Err()}
		}
	}
	s.mu.Lock()
	k, ok = s.keys[kid]
	s.mu.Unlock()
	switch {
	case ok: // fetched now, or kept from before when the fetch failed
		return k, nil
	case f.err != nil:
		return publicKey{}, refuse(ErrKeysUnavailable, "%v", f.err)
	default:
		return publicKey{}, refuse(ErrUnknownKey, "no key %q in the JWKS", kid)
	}
}

// run fetches the set for f, begun at started, and records the result.
func (s *keySet) run(ctx context.Context, f *keysFetch, started time.Time) {
	keys, err := s.fetch(ctx)
	s.mu.Lock()
	if err == nil {
		s.keys, s.fetchedAt = keys, started
	}
	f.err = err
	s.inflight = nil
	s.mu.Unlock()
	close(f.done)
}

type jwk struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Alg    string   `json:"alg"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`
	Crv    string   `json:"crv"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
	N      string   `json:"n"`
	E      string   `json:"e"`
}

// sameOrigin is c, but following redirects only within the origin of jwksURL: keys served
// by another origin (another host, or plain http:// where anyone on the path may answer)
// would sign tokens for anyone. c itself is left as it is.
func sameOrigin(c *http.Client, jwksURL string) *http.Client {
	u, err := url.Parse(jwksURL)
	if err != nil {
		return c // the fetch refuses the URL itself
	}
	next := c.CheckRedirect
	cc := *c
	cc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != u.Scheme || req.URL.Host != u.Host {
			return fmt.Errorf("the JWKS at %s redirects to another origin, %s://%s", jwksURL, req.URL.Scheme, req.URL.Host)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &cc
}

// fetch gets and parses the set; it touches no field under mu.
func (s *keySet) fetch(ctx context.Context) (map[string]publicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	res, err := s.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch JWKS %s: %s", s.url, res.Status)
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("decode JWKS %s: %w", s.url, err)
	}
	keys := make(map[string]publicKey, len(set.Keys))
	for _, j := range set.Keys {
		if j.Kid == "" || (j.Use != "" && j.Use != "sig") || (j.KeyOps != nil && !slices.Contains(j.KeyOps, "verify")) {
			continue
		}
		k, err := parseJWK(j)
		if err != nil || !slices.Contains(s.algs, k.alg) {
			continue // a key of another kind or algorithm cannot verify a token we accept
		}
		keys[j.Kid] = k
	}
	return keys, nil
}

// parseJWK reads an Ed25519, P-256 or RSA public key. The key's algorithm is its alg
// member, which must fit its type; without one it is the only algorithm the type has here.
func parseJWK(j jwk) (publicKey, error) {
	b64 := base64.RawURLEncoding
	var k publicKey
	switch {
	case j.Kty == "OKP" && j.Crv == "Ed25519":
		x, err := b64.DecodeString(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return k, errors.New("bad Ed25519 key")
		}
		k = publicKey{alg: "EdDSA", key: ed25519.PublicKey(x)}
	case j.Kty == "EC" && j.Crv == "P-256":
		x, err1 := b64.DecodeString(j.X)
		y, err2 := b64.DecodeString(j.Y)
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			return k, errors.New("bad P-256 key")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return k, err
		}
		k = publicKey{alg: "ES256", key: pub}
	case j.Kty == "RSA":
		n, err1 := b64.DecodeString(j.N)
		e, err2 := b64.DecodeString(j.E)
		// The modulus's bits, not its bytes: leading zero bytes would pass a short key.
		mod := new(big.Int).SetBytes(n)
		if err1 != nil || err2 != nil || mod.BitLen() < 2048 || len(e) == 0 || len(e) > 4 {
			return k, errors.New("bad RSA key (or shorter than 2048 bits)")
		}
		k = publicKey{alg: "RS256", key: &rsa.PublicKey{N: mod, E: int(new(big.Int).SetBytes(e).Int64())}}
	default:
		return k, fmt.Errorf("unsupported key type %s %s", j.Kty, j.Crv)
	}
	if j.Alg != "" && j.Alg != k.alg {
		return k, fmt.Errorf("key alg %s does not fit a %s key", j.Alg, k.alg)
	}
	return k, nil
}
