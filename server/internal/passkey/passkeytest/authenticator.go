// Package passkeytest is a software authenticator for tests: it answers WebAuthn creation
// and request options the way a browser's credential.toJSON() would, with an ES256 key and
// "none" attestation, and can be told to misbehave (another origin, a rewound counter).
package passkeytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
)

var b64 = base64.RawURLEncoding

// Authenticator holds one credential at a time, like a security key with one slot.
type Authenticator struct {
	Origin string // what clientDataJSON claims; change it to play a phishing page
	RPID   string // whose hash authenticatorData carries
	// Flags: user verified, backup eligible/state.
	UV, BE, BS bool
	Count      uint32
	// SelfAttest makes Create answer with a "packed" self attestation claiming AAGUID,
	// instead of "none".
	SelfAttest bool
	AAGUID     [16]byte

	key    *ecdsa.PrivateKey
	id     []byte
	handle []byte
}

// New returns an authenticator for pages on origin of relying party rpID.
func New(origin, rpID string) *Authenticator {
	return &Authenticator{Origin: origin, RPID: rpID, UV: true}
}

type options struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RPID      string `json:"rpId"`
		User      struct {
			ID string `json:"id"`
		} `json:"user"`
	} `json:"publicKey"`
}

func (a *Authenticator) flags(attested bool) byte {
	f := byte(0x01) // user present
	if a.UV {
		f |= 0x04
	}
	if a.BE {
		f |= 0x08
	}
	if a.BS {
		f |= 0x10
	}
	if attested {
		f |= 0x40
	}
	return f
}

func (a *Authenticator) clientData(typ, challenge string) []byte {
	cd, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": a.Origin, "crossOrigin": false})
	return cd
}

func (a *Authenticator) authData(attested bool, extra []byte) []byte {
	rp := sha256.Sum256([]byte(a.RPID))
	out := append(rp[:], a.flags(attested))
	out = binary.BigEndian.AppendUint32(out, a.Count)
	return append(out, extra...)
}

// Create answers creation options ({"publicKey":{...}}) with a fresh credential.
func (a *Authenticator) Create(optionsJSON []byte) ([]byte, error) {
	var o options
	if err := json.Unmarshal(optionsJSON, &o); err != nil {
		return nil, fmt.Errorf("creation options: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	a.key, a.id = key, make([]byte, 16)
	rand.Read(a.id)
	a.handle, _ = b64.DecodeString(o.PublicKey.User.ID)
	pub, _ := key.PublicKey.ECDH()
	raw := pub.Bytes() // 0x04 | x | y
	cose, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: raw[1:33], -3: raw[33:]})
	if err != nil {
		return nil, err
	}
	att := append([]byte{}, a.AAGUID[:]...)
	att = binary.BigEndian.AppendUint16(att, uint16(len(a.id)))
	att = append(append(att, a.id...), cose...)
	ad := a.authData(true, att)
	cd := a.clientData("webauthn.create", o.PublicKey.Challenge)
	format, stmt := "none", map[string]any{}
	if a.SelfAttest {
		sig, err := a.sign(ad, cd)
		if err != nil {
			return nil, err
		}
		format, stmt = "packed", map[string]any{"alg": -7, "sig": sig}
	}
	obj, err := webauthncbor.Marshal(map[string]any{"fmt": format, "attStmt": stmt, "authData": ad})
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id": b64.EncodeToString(a.id), "rawId": b64.EncodeToString(a.id), "type": "public-key",
		"authenticatorAttachment": "cross-platform", "clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(cd),
			"attestationObject": b64.EncodeToString(obj),
			"transports":        []string{"usb"},
		},
	})
}

// Get answers request options with a signed assertion, counting one use.
func (a *Authenticator) Get(optionsJSON []byte) ([]byte, error) {
	var o options
	if err := json.Unmarshal(optionsJSON, &o); err != nil {
		return nil, fmt.Errorf("request options: %w", err)
	}
	if a.key == nil {
		return nil, fmt.Errorf("no credential")
	}
	a.Count++
	ad := a.authData(false, nil)
	cd := a.clientData("webauthn.get", o.PublicKey.Challenge)
	sig, err := a.sign(ad, cd)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id": b64.EncodeToString(a.id), "rawId": b64.EncodeToString(a.id), "type": "public-key",
		"authenticatorAttachment": "cross-platform", "clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(cd),
			"authenticatorData": b64.EncodeToString(ad),
			"signature":         b64.EncodeToString(sig),
			"userHandle":        b64.EncodeToString(a.handle),
		},
	})
}

// sign is what an authenticator signs: authenticatorData followed by the hash of
// clientDataJSON.
func (a *Authenticator) sign(authData, clientData []byte) ([]byte, error) {
	h := sha256.Sum256(clientData)
	digest := sha256.Sum256(append(append([]byte{}, authData...), h[:]...))
	return ecdsa.SignASN1(rand.Reader, a.key, digest[:])
}
