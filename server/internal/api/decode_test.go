package api

import (
	"errors"
	"testing"

	"github.com/twofold-dev/twofold/internal/wire"
)

// A body a proxy or a log reads one way must not mean another thing here: a name given
// twice is refused, and so is a body a case-blind reader would read otherwise, such as
// {"user":"alice","User":"mallory"} (encoding/json takes mallory).
func TestDecode_DuplicateOrCaseFoldedNames_NeverChooseTheValue(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       string // the user decoded; "" when the body is refused
	}{
		{"plain", `{"user":"alice"}`, "alice"},
		{"a name twice", `{"user":"alice","user":"mallory"}`, ""},
		{"a name twice, the same value", `{"user":"alice","user":"alice"}`, ""},
		{"the name in capitals after it", `{"user":"alice","User":"mallory"}`, ""},
		{"the name in capitals before it", `{"USER":"mallory","user":"alice"}`, ""},
		{"an unknown name", `{"user":"alice","role":"admin"}`, "alice"},
		{"only the name in capitals", `{"USER":"mallory"}`, ""},
		{"a name twice, escaped the second time", `{"user":"alice","\u0075ser":"mallory"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := decodeTicket([]byte(tc.body))
			if tc.want == "" {
				var we *wire.Error
				if !errors.As(err, &we) || we.Code != wire.CodeInvalidRequest {
					t.Fatalf("decoded %+v, err %v; want invalid_request", r, err)
				}
				return
			}
			if err != nil || r.User != tc.want {
				t.Fatalf("decoded user %q, err %v; want %q", r.User, err, tc.want)
			}
		})
	}
}

// An optional field under another spelling is refused too, rather than silently dropped
// where a case-blind reader would take it.
func TestDecode_OptionalFieldInOtherCase_Refused(t *testing.T) {
	if r, err := decodeEnrollment([]byte(`{"LABEL":"work phone"}`)); err == nil {
		t.Fatalf("decoded %+v", r)
	}
	if r, err := decodeEnrollment([]byte(`{"label":"work phone"}`)); err != nil || r.Label != "work phone" {
		t.Fatalf("decoded %+v, %v", r, err)
	}
}
