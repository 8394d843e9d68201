// Package client is what an app's backend imports to use a twofold verifier: a
// TicketClient that asks for tickets (POST /v1/tickets with the app's API key) and a
// Verifier that checks the tokens the browser brings back, with middleware for net/http
// (fiberclient has the same for Fiber).
//
// The flow: after your own first factor (a password), get a ticket for the user and hand it
// to the page; the browser SDK runs the second factor and gives the page a token; the page
// posts the token to your backend, which calls Verifier.Verify and signs the person in.
//
// The Verifier fetches the verifier's JWKS once and caches it. A token signed by a key it has
// not seen (the verifier rotated) makes it fetch again, at most once per MinRefresh, so a
// flood of forged kids cannot turn into a flood of fetches. The algorithm is pinned by the
// configuration and by the key: a token's alg must be allowed and must be the alg of the key
// its kid names, so alg "none" and HS256 signed with a public key are refused before any
// signature is checked, and so is a token with a crit header (RFC 7515 §4.1.11: this package
// understands no header extension, so it may accept none that must be understood). iss, aud,
// exp and nbf are always checked (with Leeway); nonce, amr, acr and single use are
// Requirements you add per call or for every call. aud must be your app id and nothing else:
// the verifier signs a single aud, so a token whose aud lists several apps is refused even
// when yours is among them (it would be good at the others too), and Claims.Audience is
// always the app id that was checked.
//
// This package imports neither Fiber nor anything of the verifier's internals.
package client
