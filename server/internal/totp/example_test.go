package totp_test

import (
	"fmt"
	"time"

	"github.com/twofold-dev/twofold/server/internal/totp"
)

// A verifier checks a code at its own clock with one step of skew either side, and keeps
// the matched step: a code whose step is not newer than the last accepted one is a replay.
func ExampleMatch() {
	secret := []byte("12345678901234567890") // RFC 6238's SHA-1 seed; use totp.NewSecret()
	p := totp.Params{}                       // SHA1, 6 digits, 30 s
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

	// The phone's clock runs 25 s ahead, so its code belongs to the next step.
	code, _ := totp.Code(secret, p, totp.Step(now.Add(25*time.Second), 30))

	step, ok := totp.Match(secret, totp.NormalizeCode(code[:3]+" "+code[3:]), p, now, 1, 0)
	fmt.Println(ok, step-totp.Step(now, 30))

	lastStep := step
	step, ok = totp.Match(secret, code, p, now.Add(10*time.Second), 1, 0)
	fmt.Println(ok, "replay:", step <= lastStep)
	// Output:
	// true 1
	// true replay: true
}

// When Match fails, Drift tells whether the code belongs to a step further away, so the
// person can be told that their phone's clock is off rather than that the code is wrong.
func ExampleDrift() {
	secret := []byte("12345678901234567890")
	p := totp.Params{}
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	code, _ := totp.Code(secret, p, totp.Step(now.Add(-3*time.Minute), 30)) // 6 steps behind

	_, ok := totp.Match(secret, code, p, now, 1, 0)
	steps, drifted := totp.Drift(secret, code, p, now, 10, 1)
	fmt.Println(ok, drifted, steps)
	// Output: false true -6
}

func ExampleURI() {
	secret := []byte("12345678901234567890")
	fmt.Println(totp.URI("Example Co", "alice@example.com", secret, totp.Params{}))
	// Output: otpauth://totp/Example%20Co:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example%20Co&algorithm=SHA1&digits=6&period=30
}

func ExampleNormalizeCode() {
	fmt.Println(totp.NormalizeCode(" 123-456 "), totp.NormalizeCode("１２３ ４５６"))
	// Output: 123456 123456
}

func ExampleParams_Validate() {
	fmt.Println(totp.Params{}.WithDefaults())
	fmt.Println(totp.Params{Algorithm: "MD5", Digits: 7}.Validate())
	// Output:
	// {SHA1 6 30}
	// totp: algorithm "MD5" is not supported (want SHA1, SHA256 or SHA512)
	// totp: digits 7 is not supported (want 6 or 8)
}
