package tokens

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/twofold-dev/twofold/server/internal/store"
)

// signingKey is a stored key, opened and parsed.
type signingKey struct {
	kid, alg string
	priv     crypto.Signer
	from     time.Time // when it starts signing (its CreatedAt); published before
	retired  time.Time // zero while active
}

// publishFor is how long a retired key stays published: a token it signed lives TTL, and
// another instance may sign with it for up to CacheFor after the rotation; a minute more
// covers clock skew.
func (i *Issuer) publishFor() time.Duration { return i.cfg.TTL + i.cfg.CacheFor + time.Minute }

// keys returns the published keys, from the cache unless it is older than CacheFor or
// force is set.
func (i *Issuer) keys(ctx context.Context, force bool) ([]*signingKey, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	now := i.cfg.Now()
	if age := now.Sub(i.loadedAt); !force && i.cached != nil && age >= 0 && age < i.cfg.CacheFor {
		return i.cached, nil
	}
	recs, err := i.ks.SigningKeys(ctx, now.Add(-i.publishFor()))
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	parsed := make(map[string]*signingKey, len(i.cached))
	for _, k := range i.cached {
		parsed[k.kid] = k
	}
	keys := make([]*signingKey, 0, len(recs))
	for _, r := range recs {
		if r.Withdrawn() {
			continue // withdrawn, and listed again by someone who wrote to the database
		}
		var priv crypto.Signer
		if k := parsed[r.KID]; k != nil {
			priv = k.priv // opening and parsing an RSA key every CacheFor is not free
		} else if priv, err = i.open(r); err != nil {
			return nil, err
		}
		keys = append(keys, &signingKey{kid: r.KID, alg: r.Alg, priv: priv, from: r.CreatedAt, retired: r.RetiredAt})
	}
	i.cached, i.loadedAt = keys, now
	return keys, nil
}

// invalidate makes the next keys call read the store, after this process changed it.
func (i *Issuer) invalidate() {
	i.mu.Lock()
	i.cached = nil
	i.mu.Unlock()
}

// active returns the key that signs alg tokens, creating it if there is none yet.
func (i *Issuer) active(ctx context.Context, alg string) (*signingKey, error) {
	keys, err := i.keys(ctx, false)
	if err != nil {
		return nil, err
	}
	if k := activeOf(keys, alg, i.cfg.Now()); k != nil {
		return k, nil
	}
	i.gen.Lock()
	defer i.gen.Unlock()
	// Another goroutine or instance may have created it while we waited.
	if keys, err = i.keys(ctx, true); err != nil {
		return nil, err
	}
	if k := activeOf(keys, alg, i.cfg.Now()); k != nil {
		return k, nil
	}
	k, err := i.create(ctx, alg, false, i.cfg.Now())
	if errors.Is(err, store.ErrConflict) { // another instance won the race: use its key
		if keys, err = i.keys(ctx, true); err != nil {
			return nil, err
		}
		if k := activeOf(keys, alg, i.cfg.Now()); k != nil {
			return k, nil
		}
		return nil, fmt.Errorf("no active %s key after a conflicting create", alg)
	}
	return k, err
}

// activeOf is the key that signs alg tokens at now: the newest of those whose time has
// come and that are not retired by now. An instance whose clock is a little behind the one
// that made the first key may not see its time come yet; then the earliest key still to
// come signs, rather than none.
func activeOf(keys []*signingKey, alg string, now time.Time) *signingKey {
	var found, next *signingKey
	for _, k := range keys {
		if k.alg != alg || (!k.retired.IsZero() && !k.retired.After(now)) {
			continue
		}
		switch {
		case k.from.After(now):
			if next == nil || k.from.Before(next.from) {
				next = k
			}
		case found == nil || !k.from.Before(found.from):
			found = k
		}
	}
	if found == nil {
		return next
	}
	return found
}

// create generates a key for alg that signs from from on, and stores it sealed. With
// replace it retires the active key as of from; without, it fails with store.ErrConflict
// if one exists.
func (i *Issuer) create(ctx context.Context, alg string, replace bool, from time.Time) (*signingKey, error) {
	priv, err := generate(alg)
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode %s key: %w", alg, err)
	}
	defer clear(der)
	kid, err := kidOf(priv.Public())
	if err != nil {
		return nil, err
	}
	sealed, err := i.sealer.Seal(der, aad(kid))
	if err != nil {
		return nil, fmt.Errorf("seal %s key: %w", alg, err)
	}
	rec := store.SigningKey{KID: kid, Alg: alg, Sealed: sealed, CreatedAt: from}
	if err := i.ks.AddSigningKey(ctx, rec, replace); err != nil {
		return nil, fmt.Errorf("store %s key: %w", alg, err)
	}
	i.invalidate()
	return &signingKey{kid: kid, alg: alg, priv: priv, from: from}, nil
}

// open unseals and parses a stored key, refusing one whose type is not its alg's.
func (i *Issuer) open(r store.SigningKey) (crypto.Signer, error) {
	der, err := i.sealer.Open(r.Sealed, aad(r.KID))
	if err != nil {
		return nil, fmt.Errorf("open signing key %s: %w", r.KID, err)
	}
	defer clear(der)
	p, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse signing key %s: %w", r.KID, err)
	}
	var ok bool
	switch r.Alg {
	case "EdDSA":
		_, ok = p.(ed25519.PrivateKey)
	case "ES256":
		var k *ecdsa.PrivateKey
		k, ok = p.(*ecdsa.PrivateKey)
		ok = ok && k.Curve == elliptic.P256()
	case "RS256":
		_, ok = p.(*rsa.PrivateKey)
	}
	if !ok {
		return nil, fmt.Errorf("signing key %s: a %T is not an %s key", r.KID, p, r.Alg)
	}
	return p.(crypto.Signer), nil
}

// aad binds a sealed key to its kid with the store's one sealing scheme.
func aad(kid string) []byte { return store.Sealed{Kind: "signing_key", ID: kid}.AAD() }

func generate(alg string) (crypto.Signer, error) {
	switch alg {
	case "EdDSA":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case "ES256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS256":
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("%w %q", ErrAlg, alg)
}

// kidOf names a key by its public half, so every instance derives the same kid.
func kidOf(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encode public key: %w", err)
	}
	h := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(h[:12]), nil
}

// lookup finds a published key by kid, asking the store again for a kid it has not seen:
// another instance may just have rotated.
func (i *Issuer) lookup(ctx context.Context, kid string) (*signingKey, error) {
	for _, force := range []bool{false, true} {
		keys, err := i.keys(ctx, force)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if k.kid == kid {
				return k, nil
			}
		}
	}
	return nil, fmt.Errorf("unknown kid %q", kid)
}

// jwk is one JSON Web Key, in the forms TESTING.md records that jose accepts.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

func jwkOf(kid, alg string, pub crypto.PublicKey) (jwk, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	j := jwk{Kid: kid, Alg: alg, Use: "sig"}
	switch p := pub.(type) {
	case ed25519.PublicKey:
		j.Kty, j.Crv, j.X = "OKP", "Ed25519", b64(p)
	case *ecdsa.PublicKey:
		// Fixed-width coordinates: big.Int.Bytes would drop leading zeros, which jose rejects.
		e, err := p.ECDH()
		if err != nil {
			return jwk{}, fmt.Errorf("key %s: %w", kid, err)
		}
		pt := e.Bytes() // 0x04 || x || y
		j.Kty, j.Crv, j.X, j.Y = "EC", "P-256", b64(pt[1:33]), b64(pt[33:65])
	case *rsa.PublicKey:
		j.Kty, j.N, j.E = "RSA", b64(p.N.Bytes()), b64(big.NewInt(int64(p.E)).Bytes())
	default:
		return jwk{}, fmt.Errorf("key %s: unsupported type %T", kid, pub)
	}
	return j, nil
}

// JWKS is the JSON Web Key Set of every key that may have signed a live token: the active
// keys and those retired within publishFor. It reads the store every time: a key another
// instance just created may already sign, so a cached set here could miss it.
func (i *Issuer) JWKS(ctx context.Context) ([]byte, error) {
	keys, err := i.keys(ctx, true)
	if err != nil {
		return nil, err
	}
	cutoff := i.cfg.Now().Add(-i.publishFor())
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, k := range keys {
		if !k.retired.IsZero() && !k.retired.After(cutoff) {
			continue
		}
		j, err := jwkOf(k.kid, k.alg, k.priv.Public())
		if err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, j)
	}
	return json.Marshal(set)
}
