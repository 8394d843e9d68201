package api

import (
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/twofold-dev/twofold/internal/wire"
)

// Seeds shared by every decoder; the corpora under testdata/fuzz add the crashers found.
var seeds = []string{
	``, `{}`, `null`, `[]`, `"x"`, `1`, `{"code":"123456"}`, `{"code":123456}`, `{"code":null}`,
	`{"code":"12 34 56"}`, `{"code":"\u0000"}`, "{\"code\":\"\xff\xfe\"}", `{"user":"alice","nonce":"n"}`,
	`{"user":["a"]}`, `{"label":"phone","replaces":"totp_x"}`, `{"label":{}}`, `{`, `{"code":"1"}{"code":"2"}`,
}

func fuzzDecoder[T any](f *testing.F, dec func([]byte) (T, error), ok func(T) bool) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := dec(body)
		if err != nil {
			var we *wire.Error
			if !errors.As(err, &we) || we.Code != wire.CodeInvalidRequest || we.Message == "" {
				t.Fatalf("error %v is not an invalid_request with a message", err)
			}
			return
		}
		if !ok(v) {
			t.Fatalf("accepted %q as %+v", body, v)
		}
	})
}

func FuzzDecodeTicket(f *testing.F) {
	fuzzDecoder(f, decodeTicket, func(r wire.TicketRequest) bool {
		return wire.CheckUser(r.User) == "" && wire.CheckText("nonce", r.Nonce, false) == ""
	})
}

func FuzzDecodeEnrollment(f *testing.F) {
	fuzzDecoder(f, decodeEnrollment, func(r wire.EnrollmentRequest) bool {
		return wire.CheckText("label", r.Label, false) == "" && wire.CheckText("replaces", r.Replaces, false) == ""
	})
}

func FuzzDecodeCode(f *testing.F) {
	fuzzDecoder(f, decodeCode, func(c string) bool { return c != "" && len(c) <= 64 && utf8.ValidString(c) })
}

func FuzzDecodeAssertionStart(f *testing.F) {
	fuzzDecoder(f, decodeAssertionStart, func(assertionStart) bool { return true })
}

func FuzzDecodePolicy(f *testing.F) {
	fuzzDecoder(f, decodePolicy, func(wire.PolicyRequest) bool { return true })
}

func FuzzDecodeRefusal(f *testing.F) {
	f.Add([]byte(`{"page_origin":"https://a.example","reason":"framed","ancestors":["https://b.example"]}`))
	fuzzDecoder(f, decodeRefusal, func(r refusal) bool {
		return r.PageOrigin != "" && r.Reason != "" && len(r.Ancestors) <= 16 && len(r.PageOrigin) <= 256
	})
}
