package client_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// pythonWithPyJWT finds a python3 that can import jwt and cryptography, or "".
func pythonWithPyJWT() string {
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import jwt, cryptography").Run() == nil {
			return p
		}
	}
	return ""
}

// The README's Python snippet (PyJWT with PyJWKClient) accepts the verifier's tokens and
// refuses a wrong audience and a tampered signature.
func TestInterop_PyJWT(t *testing.T) {
	py := pythonWithPyJWT()
	if py == "" {
		t.Skip("no python3 with PyJWT and cryptography (Debian: apt-get install python3-jwt)")
	}
	tok := signIn(t, verifierURL, "shop", "py-user", "")
	check := func(aud, token string) ([]byte, error) {
		return exec.Command(py, "testdata/verify_pyjwt.py", verifierURL, aud, token).CombinedOutput()
	}
	out, err := check("shop", tok)
	if err != nil {
		t.Fatalf("PyJWT refused a good token: %v\n%s", err, out)
	}
	var claims map[string]any
	if err := json.Unmarshal(out, &claims); err != nil || claims["sub"] != "py-user" {
		t.Fatalf("PyJWT said %s", out)
	}
	if out, err := check("other", tok); err == nil || !strings.Contains(string(out), "Audience") {
		t.Errorf("PyJWT accepted a wrong audience: %s", out)
	}
	parts := strings.Split(tok, ".")
	sig := []byte(parts[2])
	sig[5] ^= 1
	if out, err := check("shop", parts[0]+"."+parts[1]+"."+string(sig)); err == nil {
		t.Errorf("PyJWT accepted a tampered signature: %s", out)
	}
}
