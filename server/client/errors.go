package client

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// TokenError is why a token was refused: a machine code (one of the Err values below) and
// a detail for logs. errors.Is(err, client.ErrExpired) compares the code only.
type TokenError struct {
	Code   string
	Detail string
	cause  error // what made it, when an error did (a caller's context ending)
}

func (e *TokenError) Error() string {
	if e.Detail == "" {
		return "twofold token refused: " + e.Code
	}
	return "twofold token refused: " + e.Code + ": " + e.Detail
}

// Unwrap returns the error behind the refusal, if any: context.Canceled or
// context.DeadlineExceeded when the caller's context ended while the keys were being fetched.
func (e *TokenError) Unwrap() error { return e.cause }

// Is reports whether target is a TokenError with the same code.
func (e *TokenError) Is(target error) bool {
	t, ok := target.(*TokenError)
	return ok && t.Code == e.Code
}

func refuse(base *TokenError, format string, args ...any) error {
	return &TokenError{Code: base.Code, Detail: fmt.Sprintf(format, args...)}
}

// The reasons a token is refused. Every one but ErrKeysUnavailable means the token is not
// good; ErrKeysUnavailable means the verifier's keys could not be fetched (try later).
var (
	ErrMalformed       = &TokenError{Code: "malformed"}
	ErrAlgorithm       = &TokenError{Code: "algorithm_not_allowed"}
	ErrUnknownKey      = &TokenError{Code: "unknown_key"}
	ErrSignature       = &TokenError{Code: "bad_signature"}
	ErrExpired         = &TokenError{Code: "expired"}
	ErrNotYetValid     = &TokenError{Code: "not_yet_valid"}
	ErrIssuer          = &TokenError{Code: "wrong_issuer"}
	ErrAudience        = &TokenError{Code: "wrong_audience"}
	ErrClaims          = &TokenError{Code: "bad_claims"}
	ErrNonce           = &TokenError{Code: "wrong_nonce"}
	ErrAMR             = &TokenError{Code: "amr_not_satisfied"}
	ErrACR             = &TokenError{Code: "acr_not_satisfied"}
	ErrReplayed        = &TokenError{Code: "replayed"}
	ErrKeysUnavailable = &TokenError{Code: "keys_unavailable"}
)

// APIError is an error answer of the verifier's API: {"error","message"} and the status.
type APIError struct {
	Status  int
	Code    string `json:"error"`
	Message string `json:"message"`
	// RetryAfter is set on rate_limited, in seconds.
	RetryAfter int `json:"retry_after,omitempty"`
}

func (e *APIError) Error() string {
	return "twofold: " + strconv.Itoa(e.Status) + " " + e.Code + ": " + e.Message
}

// Is reports whether target is an APIError with the same code, so
// errors.Is(err, &client.APIError{Code: "invalid_api_key"}) works.
func (e *APIError) Is(target error) bool {
	t, ok := target.(*APIError)
	return ok && t.Code == e.Code
}

// Refusal is how middleware answers a request whose token was refused.
type Refusal struct {
	Status  int    // 401, or 403 for a good token that lacks what was required, or 503
	Code    string // invalid_token, insufficient_authentication or unavailable
	Message string
}

// RefusalOf maps a Verify error to the answer middleware sends.
func RefusalOf(err error) Refusal {
	var te *TokenError
	switch {
	case err == nil:
		return Refusal{}
	case errors.As(err, &te) && te.Code == ErrKeysUnavailable.Code:
		return Refusal{http.StatusServiceUnavailable, "unavailable", "The second-factor keys could not be fetched. Try again in a moment."}
	case errors.As(err, &te) && (te.Code == ErrAMR.Code || te.Code == ErrACR.Code):
		return Refusal{http.StatusForbidden, "insufficient_authentication", "This needs a stronger second factor."}
	default:
		return Refusal{http.StatusUnauthorized, "invalid_token", "Sign in again with your second factor."}
	}
}

// WWWAuthenticate is the header value of the answer (RFC 6750).
func (r Refusal) WWWAuthenticate() string {
	switch r.Code {
	case "invalid_token":
		return `Bearer error="invalid_token"`
	case "insufficient_authentication":
		return `Bearer error="insufficient_scope"`
	}
	return "Bearer"
}
