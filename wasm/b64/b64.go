// Package b64 converts between bytes and base64url, the encoding WebAuthn's JSON forms use
// for every binary field, for browsers that lack PublicKeyCredential.parse*OptionsFromJSON
// and toJSON(). Decoding accepts padded and unpadded input and the standard alphabet too,
// since servers and libraries disagree on both.
package b64

import (
	"encoding/base64"
	"strings"
)

// Encode returns unpadded base64url, as WebAuthn Level 3 JSON uses.
func Encode(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// Decode reads base64url or standard base64, padded or not.
func Decode(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "+/") {
		return base64.RawStdEncoding.DecodeString(s)
	}
	return base64.RawURLEncoding.DecodeString(s)
}
