// Package codes cleans up what people type or paste into a code field before it is sent:
// one-time codes arrive with spaces, dashes and full-width or Arabic-Indic digits from
// phone keyboards and password managers, recovery codes with any case and the letters
// people confuse with digits. It mirrors the verifier's own normalisation, so the SDK can
// say "that is not a code" without a round trip and never rejects what the verifier accepts.
package codes

import "strings"

// Digits is the length of a one-time code (RFC 6238 default, the verifier's default).
const Digits = 6

// Recovery codes are 12 characters of Crockford's base32, shown as xxxx-xxxx-xxxx.
const (
	RecoveryLen   = 12
	RecoveryGroup = 4
	crockford     = "0123456789abcdefghjkmnpqrstvwxyz"
)

// digit maps the decimal digits of the scripts people type codes in to ASCII.
func digit(r rune) (rune, bool) {
	switch {
	case r >= '0' && r <= '9':
		return r, true
	case r >= '０' && r <= '９': // full-width
		return '0' + r - '０', true
	case r >= '٠' && r <= '٩': // Arabic-Indic
		return '0' + r - '٠', true
	case r >= '۰' && r <= '۹': // Extended Arabic-Indic (Persian, Urdu)
		return '0' + r - '۰', true
	case r >= '०' && r <= '९': // Devanagari
		return '0' + r - '०', true
	}
	return 0, false
}

// separator reports the characters dropped from any code: spaces of every kind, ASCII and
// typographic dashes, minus signs, dots and zero-width characters that copy-paste brings.
func separator(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', 0xA0, 0x3000, 0x2007, 0x202F, 0x200B, 0x200C, 0x200D, 0xFEFF,
		'-', '‐', '‑', '‒', '–', '—', '−', '－', '.', '·', '_':
		return true
	}
	return false
}

// Normalize returns a one-time code as the verifier expects it: ASCII digits only.
// Characters that are neither digits nor separators are kept, so Valid can refuse them.
func Normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if d, ok := digit(r); ok {
			b.WriteRune(d)
		} else if !separator(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Valid reports whether s, normalised, is a complete one-time code, and returns it.
func Valid(s string) (string, bool) {
	n := Normalize(s)
	if len(n) != Digits {
		return n, false
	}
	for i := 0; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return n, false
		}
	}
	return n, true
}

// recoveryRune maps one typed character onto Crockford's alphabet: any case, full-width
// forms, and the look-alikes o→0, i/l→1 that the alphabet leaves out for that reason.
func recoveryRune(r rune) (byte, bool) {
	if d, ok := digit(r); ok {
		return byte(d), true
	}
	if r >= 'Ａ' && r <= 'Ｚ' {
		r = 'a' + r - 'Ａ'
	}
	if r >= 'ａ' && r <= 'ｚ' {
		r = 'a' + r - 'ａ'
	}
	if r >= 'A' && r <= 'Z' {
		r += 'a' - 'A'
	}
	switch r {
	case 'o':
		return '0', true
	case 'i', 'l':
		return '1', true
	}
	if r < 0x80 && strings.IndexByte(crockford, byte(r)) >= 0 {
		return byte(r), true
	}
	return 0, false
}

// Recovery normalises a typed recovery code to the verifier's xxxx-xxxx-xxxx form. ok is
// false when it cannot be one (wrong length or a character outside the alphabet); the
// returned string is then the best effort, for showing back to the person.
func Recovery(s string) (string, bool) {
	var raw []byte
	ok := true
	for _, r := range s {
		if separator(r) {
			continue
		}
		c, good := recoveryRune(r)
		if !good {
			ok = false
			continue
		}
		raw = append(raw, c)
	}
	if len(raw) != RecoveryLen {
		ok = false
	}
	return group(raw), ok
}

// group writes raw in dash-separated groups of RecoveryGroup.
func group(raw []byte) string {
	var b strings.Builder
	for i, c := range raw {
		if i > 0 && i%RecoveryGroup == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Kind is what a typed code looks like.
type Kind int

const (
	KindUnknown  Kind = iota
	KindOneTime       // six digits from an authenticator app
	KindRecovery      // a recovery code
)

// Classify tells a one-time code from a recovery code, so one field can take either.
func Classify(s string) Kind {
	if _, ok := Valid(s); ok {
		return KindOneTime
	}
	if _, ok := Recovery(s); ok {
		return KindRecovery
	}
	return KindUnknown
}

// RecoveryFile is the text of the downloadable recovery-code file: one code a line,
// with a header that says what they are for and that each works once.
func RecoveryFile(issuer, account string, list []string) string {
	var b strings.Builder
	b.WriteString("Recovery codes")
	if issuer != "" {
		b.WriteString(" for " + issuer)
	}
	if account != "" {
		b.WriteString(" (" + account + ")")
	}
	b.WriteString("\nEach code works once. Keep them somewhere safe, apart from your phone.\n\n")
	for _, c := range list {
		f, _ := Recovery(c)
		b.WriteString(f)
		b.WriteByte('\n')
	}
	return b.String()
}
