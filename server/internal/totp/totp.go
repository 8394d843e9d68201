// Package totp checks RFC 6238 time-based one-time passwords and says which time step a
// code belongs to, which replay blocking needs and a true/false validator cannot give.
//
// The clock is always a parameter: nothing here reads the current time.
package totp

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
)

// The parameters every authenticator app understands; Params' zero values mean these.
const (
	DefaultAlgorithm = "SHA1"
	DefaultDigits    = 6
	DefaultPeriod    = 30
)

// MaxPeriod bounds Params.Period: a longer step makes a code live too long to be an OTP.
const MaxPeriod = 300

// SecretSize is the length of a secret from NewSecret: 160 bits, RFC 4226's recommendation.
const SecretSize = 20

// Params are the parameters of one TOTP credential. Zero values mean the defaults.
type Params struct {
	Algorithm string // "SHA1" (default), "SHA256" or "SHA512"
	Digits    int    // 6 (default) or 8
	Period    int    // seconds per step; 30 by default
}

// WithDefaults returns p with every zero field replaced by its default. It is the one place
// the defaults are applied.
func (p Params) WithDefaults() Params {
	if p.Algorithm == "" {
		p.Algorithm = DefaultAlgorithm
	}
	if p.Digits == 0 {
		p.Digits = DefaultDigits
	}
	if p.Period == 0 {
		p.Period = DefaultPeriod
	}
	return p
}

// Validate reports every unsupported parameter at once, naming each. Zero values are valid.
func (p Params) Validate() error {
	p = p.WithDefaults()
	var errs []error
	if _, ok := algorithms[p.Algorithm]; !ok {
		errs = append(errs, fmt.Errorf("totp: algorithm %q is not supported (want SHA1, SHA256 or SHA512)", p.Algorithm))
	}
	if p.Digits != 6 && p.Digits != 8 {
		errs = append(errs, fmt.Errorf("totp: digits %d is not supported (want 6 or 8)", p.Digits))
	}
	if p.Period < 1 || p.Period > MaxPeriod {
		errs = append(errs, fmt.Errorf("totp: period %d is out of range (want 1 to %d seconds)", p.Period, MaxPeriod))
	}
	return errors.Join(errs...)
}

var algorithms = map[string]otp.Algorithm{
	"SHA1":   otp.AlgorithmSHA1,
	"SHA256": otp.AlgorithmSHA256,
	"SHA512": otp.AlgorithmSHA512,
}

// Step returns the RFC 6238 time step of t: floor(unix seconds / period). A period of zero
// or less means the default period.
func Step(t time.Time, period int) int64 {
	if period <= 0 {
		period = Params{}.WithDefaults().Period
	}
	u, p := t.Unix(), int64(period)
	s := u / p
	if u%p < 0 { // round toward minus infinity for times before 1970
		s--
	}
	return s
}

// Code returns the code of one step. It fails on invalid Params or a negative step.
func Code(secret []byte, p Params, step int64) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	if step < 0 {
		return "", errors.New("totp: negative step")
	}
	return codeOf(EncodeSecret(secret), p.WithDefaults(), step)
}

// codeOf computes one code; p must be valid and defaulted, b32 the encoded secret.
func codeOf(b32 string, p Params, step int64) (string, error) {
	return hotp.GenerateCodeCustom(b32, uint64(step), hotp.ValidateOpts{
		Digits:    otp.Digits(p.Digits),
		Algorithm: algorithms[p.Algorithm],
	})
}

// Match reports whether code is the code of a step in
// [Step(t)+offset-skew, Step(t)+offset+skew], and which step. Every step of the window is
// computed and compared in constant time, with no early exit, so the time taken does not
// tell which step matched. When two steps of the window share the code (a 10^-digits
// chance) the later one is returned, so a replayed code can never map to a step that is
// newer than the one recorded the first time.
//
// A code of the wrong length or with anything but ASCII digits, an empty secret, invalid
// Params or a negative skew is simply not ok. Callers pass user input through
// NormalizeCode first.
func Match(secret []byte, code string, p Params, t time.Time, skew int, offset int) (step int64, ok bool) {
	p = p.WithDefaults()
	if skew < 0 || !wellFormed(code, p, secret) {
		return 0, false
	}
	center := Step(t, p.Period) + int64(offset)
	hits, err := compare(secret, code, p, center-int64(skew), center+int64(skew))
	if err != nil {
		return 0, false
	}
	found := 0
	for i, hit := range hits {
		s := center - int64(skew) + int64(i)
		mask := -int64(hit) // all ones on a hit, zero otherwise
		step = s&mask | step&^mask
		found |= hit
	}
	if found == 0 {
		return 0, false
	}
	return step, true
}

// Drift reports whether code belongs to a step within ±wide of Step(t) but outside ±narrow,
// the window Match already tried, and the signed distance in steps: positive when the device
// that made the code is ahead of t, negative when it is behind. It tells a person that their
// phone's clock is off rather than that the code is wrong. When several steps match, the
// nearest wins.
func Drift(secret []byte, code string, p Params, t time.Time, wide int, narrow int) (steps int, ok bool) {
	p = p.WithDefaults()
	if wide <= narrow || wide < 0 || !wellFormed(code, p, secret) {
		return 0, false
	}
	center := Step(t, p.Period)
	hits, err := compare(secret, code, p, center-int64(wide), center+int64(wide))
	if err != nil {
		return 0, false
	}
	for i, hit := range hits {
		d := i - wide
		if hit == 1 && abs(d) > narrow && (!ok || abs(d) < abs(steps)) {
			steps, ok = d, true
		}
	}
	return steps, ok
}

// wellFormed is the check on public facts (length, digits, parameters) done before any
// secret-dependent work.
func wellFormed(code string, p Params, secret []byte) bool {
	if len(secret) == 0 || p.Validate() != nil || len(code) != p.Digits {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}

// compare returns, for each step from first to last, 1 if code is that step's code and 0
// if not. Steps before zero never match but are still computed, to keep the work constant.
func compare(secret []byte, code string, p Params, first, last int64) ([]int, error) {
	b32 := EncodeSecret(secret)
	hits := make([]int, 0, last-first+1)
	for s := first; s <= last; s++ {
		c, err := codeOf(b32, p, max(s, 0))
		if err != nil {
			return nil, err
		}
		eq := subtle.ConstantTimeCompare([]byte(c), []byte(code))
		if s < 0 { // the step comes from the clock, not the secret: branching is fine
			eq = 0
		}
		hits = append(hits, eq)
	}
	return hits, nil
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// NewSecret returns a new random secret of SecretSize bytes.
func NewSecret() ([]byte, error) {
	b := make([]byte, SecretSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("totp: new secret: %w", err)
	}
	return b, nil
}

// EncodeSecret returns secret as authenticator apps take it: upper-case base32, no padding.
func EncodeSecret(secret []byte) string {
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret)
}

// URI returns the otpauth:// URI of a credential in Google's Key Uri Format, the content of
// the enrollment QR code: otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…&algorithm=…
// &digits=…&period=…. Label parts and values are percent-encoded per RFC 3986 (a space is
// %20, never '+', which some apps show literally), and a ':' inside the issuer or account is
// encoded so that the label's separator stays unambiguous. An empty issuer leaves the label
// as the account alone, with no issuer parameter.
func URI(issuer, account string, secret []byte, p Params) string {
	p = p.WithDefaults()
	var b strings.Builder
	b.WriteString("otpauth://totp/")
	if issuer != "" {
		b.WriteString(escape(issuer))
		b.WriteByte(':')
	}
	b.WriteString(escape(account))
	b.WriteString("?secret=")
	b.WriteString(EncodeSecret(secret))
	if issuer != "" {
		b.WriteString("&issuer=")
		b.WriteString(escape(issuer))
	}
	b.WriteString("&algorithm=")
	b.WriteString(escape(p.Algorithm))
	b.WriteString("&digits=")
	b.WriteString(strconv.Itoa(p.Digits))
	b.WriteString("&period=")
	b.WriteString(strconv.Itoa(p.Period))
	return b.String()
}

// escape percent-encodes everything but RFC 3986 unreserved characters and '@', which is
// legal in both a path segment and a query and common in account names.
func escape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '@':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		}
	}
	return b.String()
}

// NormalizeCode turns what a person typed or pasted into the code to check: it drops white
// space and dashes (codes are often shown as "123 456" or "123-456") and maps full-width
// digits, which Japanese and Chinese input methods produce, to ASCII. Anything else is kept,
// so that Match refuses it.
func NormalizeCode(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r >= '０' && r <= '９':
			b.WriteRune('0' + (r - '０'))
		case unicode.IsSpace(r), r == '-', r == '‐', r == '‑', r == '‒', r == '–', r == '—',
			r == '−', r == '－', r == 0x200B:
			// dropped: spaces, ASCII and typographic dashes, minus signs, zero-width space
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
