package tokens

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestVerifyDetached_SignedByAnyStoredKey_EvenRetiredLongAgo(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	iss := newIssuer(&memKeys{}, clk)
	msg := []byte("checkpoint 41 abcdef")
	kid, alg, sig, err := iss.SignDetached(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := iss.Rotate(ctx, alg, 0); err != nil {
		t.Fatal(err)
	}
	clk.Add(400 * 24 * time.Hour) // long past the JWKS publication of the old key
	other := append([]byte(nil), sig...)
	other[0] ^= 1
	for _, tc := range []struct {
		name     string
		kid, alg string
		msg, sig []byte
		ok       bool
	}{
		{"genuine, key retired", kid, alg, msg, sig, true},
		{"other message", kid, alg, []byte("checkpoint 40 abcdef"), sig, false},
		{"altered signature", kid, alg, msg, other, false},
		{"unknown kid", "nope", alg, msg, sig, false},
		{"alg swapped", kid, "ES256", msg, sig, false},
	} {
		err := iss.VerifyDetached(ctx, tc.kid, tc.alg, tc.msg, tc.sig)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("%s: err %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
