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
}

// Enrollment answers POST /v1/totp/enrollments.
type Enrollment struct {
	ID         string    `json:"id"`
	OTPAuthURI string    `json:"otpauth_uri"`
	Secret     string    `json:"secret"`
	QRSVG      string    `json:"qr_svg"`
	ExpiresAt  time.Time `json:"expires_at"`
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
