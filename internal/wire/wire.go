// Package wire holds the request and response shapes of the twofold HTTP API and its error
// codes. It has no dependencies, so the verifier and the WebAssembly SDK share it and cannot
// drift apart.
package wire

import "time"

// TicketRequest is the body of POST /v1/tickets.
type TicketRequest struct {
	User  string `json:"user"`
	Nonce string `json:"nonce,omitempty"`
}

// TicketResponse answers POST /v1/tickets.
type TicketResponse struct {
	Ticket    string    `json:"ticket"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Factors summarises what second factors a user has.
type Factors struct {
	TOTP                   bool `json:"totp"`
	Passkeys               int  `json:"passkeys"`
	RecoveryCodesRemaining int  `json:"recovery_codes_remaining"`
}

// Session answers GET /v1/session.
type Session struct {
	User       string    `json:"user"`
	Factors    Factors   `json:"factors"`
	ServerTime time.Time `json:"server_time"`
	Elevated   bool      `json:"elevated"`
	Origins    []string  `json:"origins"`
	// RecoveryUsed is set when this ticket passed with a recovery code: the app should ask
	// the person to set up a new authenticator.
	RecoveryUsed bool `json:"recovery_used"`
}

// Enrollment answers POST /v1/totp/enrollments.
type Enrollment struct {
	ID         string    `json:"id"`
	OTPAuthURI string    `json:"otpauth_uri"`
	Secret     string    `json:"secret"`
	QRSVG      string    `json:"qr_svg"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// EnrollmentRequest is the optional body of POST /v1/totp/enrollments. Replaces names an
// authenticator the new one takes over from: it is removed once the new one is confirmed.
type EnrollmentRequest struct {
	Label    string `json:"label,omitempty"`
	Replaces string `json:"replaces,omitempty"`
}

// Factor is one second factor of a user, as GET /v1/factors lists it.
type Factor struct {
	ID         string     `json:"id"`
	Type       string     `json:"type"` // "totp" or "passkey"
	Label      string     `json:"label"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// Factors answers GET /v1/factors.
type FactorList struct {
	Factors []Factor `json:"factors"`
}

// RecoveryCodes answers POST /v1/recovery/codes: a new set, shown this once.
type RecoveryCodes struct {
	RecoveryCodes []string `json:"recovery_codes"`
}

// CodeRequest is the body of every call that submits a one-time or recovery code.
type CodeRequest struct {
	Code string `json:"code"`
}

// Token answers every call that completes a second factor.
type Token struct {
	Token     string `json:"token"`
	TokenType string `json:"token_type"`
	ExpiresIn int    `json:"expires_in"`
}

// Confirmation answers POST /v1/totp/enrollments/{id}/confirm. RecoveryCodes is filled only
// when the confirmation created the user's first set; they are shown this once.
type Confirmation struct {
	RecoveryCodes []string `json:"recovery_codes"`
	Token
}

// AppCreated is what `twofold apps create` prints.
type AppCreated struct {
	ID     string `json:"id"`
	APIKey string `json:"api_key"`
}

// PasskeyRegistered answers POST /v1/webauthn/registrations/finish.
type PasskeyRegistered struct {
	ID string `json:"id"`
}

// PolicyRequest is the body of PUT /v1/users/{user}/policy: "totp_fallback" or
// "passkey_only".
type PolicyRequest struct {
	Policy string `json:"policy"`
}

// Event is one security event of a user, as GET /v1/users/{user}/events lists it for the
// user's app (newest first).
type Event struct {
	At        time.Time `json:"at"`
	Kind      string    `json:"kind"`
	Outcome   string    `json:"outcome"`
	Factor    string    `json:"factor,omitempty"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

// EventList answers GET /v1/users/{user}/events.
type EventList struct {
	Events []Event `json:"events"`
}

// EngineVersion is the browser SDK engine's version: twofold.wasm reports it, and the JS
// loader refuses an engine of any other, so a cached or stray twofold.wasm fails plainly.
const EngineVersion = "0.1.0"
