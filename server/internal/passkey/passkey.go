// Package passkey runs WebAuthn ceremonies for one relying party on top of go-webauthn (its
// only importer). Like go-webauthn it stores nothing: Begin returns the options for the
// browser and the session for the caller to keep; Finish takes them back.
package passkey

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// ErrNoRPID: none of the app's origins has a host name to serve as RP ID.
var ErrNoRPID = errors.New("passkey: the app has no origin with a host name (browsers refuse IP addresses as relying party IDs)")

// Config describes a relying party: one app.
type Config struct {
	RPID    string // default: the host of the first origin
	RPName  string
	Origins []string
	// UserVerification is "required" (the default), "preferred" or "discouraged".
	UserVerification string
	// Attestation is "none" (the default) or "direct": then a registration must carry a
	// verified attestation statement whose AAGUID (lower-case hex) is in AAGUIDs. Without a
	// metadata trust store a self attestation only claims its model: the allow-list keeps
	// honest users to the right authenticators; it does not stop a forged one.
	Attestation string
	AAGUIDs     []string
	// Timeout is how long a ceremony may take; 5 minutes by default.
	Timeout time.Duration
}

// RP is a relying party.
type RP struct {
	w       *webauthn.WebAuthn
	uv      protocol.UserVerificationRequirement
	aaguids []string // with direct attestation: the allowed models
	// Timeout is how long a ceremony may take.
	Timeout time.Duration
}

// DefaultRPID is the host of the first of origins that has a host name (browsers refuse IP
// addresses as RP IDs), or "" when none has.
func DefaultRPID(origins []string) string {
	for _, o := range origins {
		if u, err := url.Parse(o); err == nil && net.ParseIP(u.Hostname()) == nil && u.Hostname() != "" {
			return u.Hostname()
		}
	}
	return ""
}

// New validates cfg once and returns its relying party.
func New(cfg Config) (*RP, error) {
	if len(cfg.Origins) == 0 {
		return nil, errors.New("passkey: an app needs an origin")
	}
	if cfg.RPID == "" {
		if cfg.RPID = DefaultRPID(cfg.Origins); cfg.RPID == "" {
			return nil, ErrNoRPID
		}
	}
	if cfg.RPName == "" {
		cfg.RPName = cfg.RPID
	}
	if cfg.UserVerification == "" {
		cfg.UserVerification = string(protocol.VerificationRequired)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	uv := protocol.UserVerificationRequirement(cfg.UserVerification)
	conveyance := protocol.PreferNoAttestation
	switch cfg.Attestation {
	case "", "none":
	case "direct":
		if len(cfg.AAGUIDs) == 0 {
			return nil, errors.New("passkey: direct attestation needs an AAGUID allow-list")
		}
		conveyance = protocol.PreferDirectAttestation
	default:
		return nil, fmt.Errorf("passkey: attestation %q: want none or direct", cfg.Attestation)
	}
	w, err := webauthn.New(&webauthn.Config{
		RPID:                  cfg.RPID,
		RPDisplayName:         cfg.RPName,
		RPOrigins:             cfg.Origins,
		AttestationPreference: conveyance,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: uv,
		},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: cfg.Timeout},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: cfg.Timeout},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("passkey: %w", err)
	}
	rp := &RP{w: w, uv: uv, Timeout: cfg.Timeout}
	if conveyance == protocol.PreferDirectAttestation {
		rp.aaguids = cfg.AAGUIDs
	}
	return rp, nil
}

// User is what a ceremony needs to know of a person.
type User struct {
	Handle      []byte
	Name        string
	Credentials []Credential
}

// Credential is a registered passkey: the record go-webauthn checks logins against, and the
// facts the verifier shows and decides on.
type Credential struct {
	ID             string // base64url
	Record         []byte // go-webauthn's credential, as JSON
	SignCount      uint32
	AAGUID         []byte
	Transports     []string
	BackupEligible bool
	BackupState    bool
	// UserVerified: the ceremony that returned this credential verified its user.
	UserVerified bool
	// Cloned is set when the sign counter went backwards: the credential may have been
	// copied. Refusing it is the caller's decision.
	Cloned bool
}

type user struct {
	u     User
	creds []webauthn.Credential
}

func (u *user) WebAuthnID() []byte                         { return u.u.Handle }
func (u *user) WebAuthnName() string                       { return u.u.Name }
func (u *user) WebAuthnDisplayName() string                { return u.u.Name }
func (u *user) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func wrap(u User) (*user, error) {
	w := &user{u: u}
	for _, c := range u.Credentials {
		var rec webauthn.Credential
		if err := json.Unmarshal(c.Record, &rec); err != nil {
			return nil, fmt.Errorf("passkey: stored credential %s: %w", c.ID, err)
		}
		w.creds = append(w.creds, rec)
	}
	return w, nil
}

// resume brings back what Begin left: the user and the session.
func resume(u User, session []byte) (*user, webauthn.SessionData, error) {
	var sd webauthn.SessionData
	w, err := wrap(u)
	if err != nil {
		return nil, sd, err
	}
	if err := json.Unmarshal(session, &sd); err != nil {
		return nil, sd, fmt.Errorf("passkey: session: %w", err)
	}
	return w, sd, nil
}

// Ceremony is what Begin hands out: the options for the browser (JSON of the shape
// {"publicKey":{...}}), the session to keep until Finish, and the challenge that names it.
type Ceremony struct {
	Options   []byte
	Session   []byte
	Challenge string
}

func ceremony(options any, session *webauthn.SessionData) (Ceremony, error) {
	o, err := json.Marshal(options)
	if err != nil {
		return Ceremony{}, err
	}
	s, err := json.Marshal(session)
	if err != nil {
		return Ceremony{}, err
	}
	return Ceremony{Options: o, Session: s, Challenge: session.Challenge}, nil
}

// BeginRegistration starts adding a passkey for u; its existing ones are excluded.
func (rp *RP) BeginRegistration(u User) (Ceremony, error) {
	w, err := wrap(u)
	if err != nil {
		return Ceremony{}, err
	}
	var exclude []protocol.CredentialDescriptor
	for _, c := range w.creds {
		exclude = append(exclude, c.Descriptor())
	}
	opts, session, err := rp.w.BeginRegistration(w, webauthn.WithExclusions(exclude))
	if err != nil {
		return Ceremony{}, fmt.Errorf("passkey: begin registration: %w", err)
	}
	return ceremony(opts, session)
}

// FinishRegistration checks the browser's answer (the credential's toJSON()) against the
// kept session and returns the new credential.
func (rp *RP) FinishRegistration(u User, session, body []byte) (Credential, error) {
	w, sd, err := resume(u, session)
	if err != nil {
		return Credential{}, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(body)
	if err != nil {
		return Credential{}, refusal(err)
	}
	c, err := rp.w.CreateCredential(w, sd, parsed)
	if err != nil {
		return Credential{}, refusal(err)
	}
	if rp.aaguids != nil {
		if c.AttestationFormat == "" || c.AttestationFormat == "none" {
			return Credential{}, Refused{Reason: "this app requires an attested authenticator"}
		}
		if !slices.Contains(rp.aaguids, hex.EncodeToString(c.Authenticator.AAGUID)) {
			return Credential{}, Refused{Reason: "authenticator model " + hex.EncodeToString(c.Authenticator.AAGUID) + " is not on the app's allow-list"}
		}
	}
	return export(c)
}

// BeginLogin starts a login. With u.Credentials empty the browser may offer any
// discoverable passkey of this relying party (usernameless).
func (rp *RP) BeginLogin(u User) (Ceremony, error) {
	if len(u.Credentials) == 0 {
		opts, session, err := rp.w.BeginDiscoverableLogin(webauthn.WithUserVerification(rp.uv))
		if err != nil {
			return Ceremony{}, fmt.Errorf("passkey: begin login: %w", err)
		}
		return ceremony(opts, session)
	}
	w, err := wrap(u)
	if err != nil {
		return Ceremony{}, err
	}
	opts, session, err := rp.w.BeginLogin(w, webauthn.WithUserVerification(rp.uv))
	if err != nil {
		return Ceremony{}, fmt.Errorf("passkey: begin login: %w", err)
	}
	return ceremony(opts, session)
}

// FinishLogin checks the browser's answer against the kept session and u's passkeys and
// returns the credential used, with its sign count moved on.
func (rp *RP) FinishLogin(u User, session, body []byte) (Credential, error) {
	w, sd, err := resume(u, session)
	if err != nil {
		return Credential{}, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(body)
	if err != nil {
		return Credential{}, refusal(err)
	}
	if len(sd.AllowedCredentialIDs) == 0 {
		// Usernameless: the answer must come from one of this user's passkeys.
		if !bytes.Equal(parsed.Response.UserHandle, u.Handle) {
			return Credential{}, Refused{Reason: "the passkey belongs to someone else"}
		}
		c, err := rp.w.ValidateDiscoverableLogin(func(_, _ []byte) (webauthn.User, error) { return w, nil }, sd, parsed)
		if err != nil {
			return Credential{}, refusal(err)
		}
		return exportLogin(c, parsed)
	}
	c, err := rp.w.ValidateLogin(w, sd, parsed)
	if err != nil {
		return Credential{}, refusal(err)
	}
	return exportLogin(c, parsed)
}

// exportLogin is the credential a login leaves, saying whether this login verified the
// user: go-webauthn's record latches the flag from the registration, so without this a key
// whose PIN was never asked would pass as user-verified under "preferred".
func exportLogin(c *webauthn.Credential, parsed *protocol.ParsedCredentialAssertionData) (Credential, error) {
	out, err := export(c)
	out.UserVerified = parsed.Response.AuthenticatorData.Flags.HasUserVerified()
	return out, err
}

func export(c *webauthn.Credential) (Credential, error) {
	rec, err := json.Marshal(c)
	if err != nil {
		return Credential{}, err
	}
	out := Credential{
		ID: base64.RawURLEncoding.EncodeToString(c.ID), Record: rec, SignCount: c.Authenticator.SignCount,
		AAGUID: c.Authenticator.AAGUID, BackupEligible: c.Flags.BackupEligible, BackupState: c.Flags.BackupState,
		UserVerified: c.Flags.UserVerified, Cloned: c.Authenticator.CloneWarning,
	}
	for _, t := range c.Transport {
		out.Transports = append(out.Transports, string(t))
	}
	slices.Sort(out.Transports)
	return out, nil
}

// ChallengeOf reads the challenge a browser's answer carries, to find its ceremony.
func ChallengeOf(body []byte) (string, error) {
	var r struct {
		Response struct {
			ClientDataJSON string `json:"clientDataJSON"`
		} `json:"response"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", Refused{Reason: "the answer is not a WebAuthn credential"}
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(r.Response.ClientDataJSON, "="))
	if err != nil {
		return "", Refused{Reason: "clientDataJSON is not base64url"}
	}
	var cd struct {
		Challenge string `json:"challenge"`
	}
	if err := json.Unmarshal(raw, &cd); err != nil || cd.Challenge == "" {
		return "", Refused{Reason: "clientDataJSON carries no challenge"}
	}
	return cd.Challenge, nil
}

// Refused is a ceremony answer that does not verify: wrong origin or relying party, bad
// signature, a malformed credential. Reason is for logs and the audit trail.
type Refused struct{ Reason string }

func (r Refused) Error() string { return "passkey refused: " + r.Reason }

func refusal(err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return Refused{Reason: strings.TrimSpace(pe.Type + ": " + pe.Details)}
	}
	return Refused{Reason: err.Error()}
}
