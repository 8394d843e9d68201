package wire

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// CheckText returns what is wrong with a free-text field (a user id, a nonce, a label), or
// "": empty when required, over 256 bytes, invalid UTF-8, or control characters.
func CheckText(field, v string, required bool) string {
	switch {
	case v == "" && required:
		return field + " is required."
	case len(v) > 256:
		return field + " must be at most 256 bytes."
	case !utf8.ValidString(v):
		return field + " must be valid UTF-8."
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return field + " must not contain control characters."
	}
	return ""
}

// CheckUser is CheckText for a user id, which the API also names in paths
// (/v1/users/{user}/...): "." and ".." would name another path there.
func CheckUser(v string) string {
	if v == "." || v == ".." {
		return `user cannot be "." or "..": the API names users in its paths.`
	}
	return CheckText("user", v, true)
}
