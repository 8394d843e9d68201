package b64

import (
	"bytes"
	"testing"
)

func TestRoundTrip_AllLengths(t *testing.T) {
	for n := 0; n < 70; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*37 + n)
		}
		s := Encode(b)
		if bytes.ContainsAny([]byte(s), "+/=") {
			t.Fatalf("Encode gave %q, not unpadded base64url", s)
		}
		got, err := Decode(s)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("n=%d: Decode(Encode(b)) = %x, %v", n, got, err)
		}
	}
}

func TestDecode_AcceptsPaddingAndStandardAlphabet(t *testing.T) {
	want := []byte{0xfb, 0xff, 0xbf}
	for _, s := range []string{"-_-_", "+/+/", "-_-_", "-_-_=="} {
		got, err := Decode(s)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Decode(%q) = %x, %v", s, got, err)
		}
	}
	if got, err := Decode("YQ=="); err != nil || string(got) != "a" {
		t.Errorf("Decode(YQ==) = %q, %v", got, err)
	}
	if _, err := Decode("a!b"); err == nil {
		t.Error("Decode accepted a character outside base64")
	}
}
