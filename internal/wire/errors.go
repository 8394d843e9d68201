package wire

// Error codes of the API. The HTTP status of each lives in one table in the server's api
// package; the SDK branches on these strings.
const (
	CodeInvalidRequest   = "invalid_request"
	CodeInvalidTicket    = "invalid_ticket"
	CodeInvalidAPIKey    = "invalid_api_key"
	CodeOriginNotAllowed = "origin_not_allowed"
	CodeStepUpRequired   = "step_up_required"
	CodeInvalidCode      = "invalid_code"
	CodeCodeAlreadyUsed  = "code_already_used"
	CodeRateLimited      = "rate_limited"
	CodeFactorLocked     = "factor_locked"
	CodeLastFactor       = "last_factor"
	CodeInvalidPasskey   = "invalid_passkey"
	CodeChallengeExpired = "challenge_expired"
	CodePasskeyRequired  = "passkey_required"
	CodeOperatorRequired = "operator_required"
	CodeNotFound         = "not_found"
	CodeConflict         = "conflict"
	CodeUnavailable      = "unavailable"
	CodeInternal         = "internal"
)

// Clock hints carried by an invalid_code error whose code matched a step well off the
// verifier's clock.
const (
	ClockBehind = "behind"
	ClockAhead  = "ahead"
)

// Error is the JSON body of every error answer and the error type of the domain: a machine
// code, a sentence a person can act on, and the optional hints some codes carry.
type Error struct {
	Code       string `json:"error"`
	Message    string `json:"message"`
	RetryAfter int    `json:"retry_after,omitempty"`
	Clock      string `json:"clock,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Is makes errors.Is match on the code alone, so a detail added to the message does not
// break a caller's check.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Errorf-free constructor: wasm callers avoid fmt.
func NewError(code, message string) *Error { return &Error{Code: code, Message: message} }
