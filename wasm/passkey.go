//go:build js && wasm

package main

import (
	"syscall/js"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/wasm/b64"
)

// browserErrorPrefix marks a rejection that is the browser's own WebAuthn error: the code
// is the prefix and the DOMException's name, which the JS package maps to one of the SDK's
// codes (its table in errors.ts) with a message a person can act on.
const browserErrorPrefix = "browser:"

// passkey runs a WebAuthn ceremony: the verifier's options, the browser's ceremony, the
// verifier's check. opts is {label, discoverable, signal}, each optional. Binary fields
// cross as base64url both ways; the conversions are done here, for browsers without
// PublicKeyCredential.parse*OptionsFromJSON and toJSON().
func (c *client) passkey(register bool, opts js.Value) (any, error) {
	begin, finish := "/v1/webauthn/assertions", "/v1/webauthn/assertions/finish"
	method := "get"
	if register {
		begin, finish = "/v1/webauthn/registrations", "/v1/webauthn/registrations/finish"
		method = "create"
		if label := field(opts, "label"); label != "" {
			finish += "?label=" + js.Global().Call("encodeURIComponent", label).String()
		}
	}
	creds := js.Undefined()
	if nav := js.Global().Get("navigator"); nav.Type() == js.TypeObject {
		creds = nav.Get("credentials")
	}
	if js.Global().Get("PublicKeyCredential").Type() != js.TypeFunction || creds.Type() != js.TypeObject {
		return nil, wire.NewError(browserErrorPrefix+"NotSupportedError", "")
	}
	body := js.Undefined()
	if !register && boolean(opts, "discoverable") {
		body = obj{"discoverable": true}.js()
	}
	a, err := c.call("POST", begin, body)
	if err != nil {
		return nil, err
	}
	pk := a.body.Get("publicKey")
	if pk.Type() != js.TypeObject {
		return nil, wire.NewError(wire.CodeInternal, "The verifier's passkey options are malformed.")
	}
	decode := func(o js.Value, k string) {
		if s := field(o, k); s != "" {
			if b, err := b64.Decode(s); err == nil {
				o.Set(k, arrayBuffer(b))
			}
		}
	}
	decode(pk, "challenge")
	if u := pk.Get("user"); u.Type() == js.TypeObject {
		decode(u, "id")
	}
	for _, k := range []string{"excludeCredentials", "allowCredentials"} {
		if l := pk.Get(k); l.Type() == js.TypeObject {
			for i := 0; i < l.Length(); i++ {
				decode(l.Index(i), "id")
			}
		}
	}
	req := obj{"publicKey": pk}
	if opts.Type() == js.TypeObject && opts.Get("signal").Type() == js.TypeObject {
		req["signal"] = opts.Get("signal")
	}
	cred, ok := await(creds.Call(method, req.js()))
	if !ok {
		return nil, wire.NewError(browserErrorPrefix+field(cred, "name"), field(cred, "message"))
	}
	if cred.Type() != js.TypeObject {
		// Only a conditional (autofill) request answers null; the SDK makes none.
		return nil, wire.NewError(browserErrorPrefix+"NotAllowedError", "")
	}
	a, err = c.call("POST", finish, credentialJSON(cred))
	if err != nil {
		return nil, err
	}
	if register {
		c.session.Factors.Passkeys++
	} else {
		c.session.Elevated = true
	}
	return a.body, nil
}

// credentialJSON is the credential as toJSON() gives it, built by hand where it is missing.
func credentialJSON(cred js.Value) js.Value {
	if cred.Get("toJSON").Type() == js.TypeFunction {
		return cred.Call("toJSON")
	}
	enc := func(v js.Value) any {
		if v.Type() != js.TypeObject {
			return nil
		}
		return b64.Encode(bytesOf(v))
	}
	r := cred.Get("response")
	resp := obj{"clientDataJSON": enc(r.Get("clientDataJSON"))}
	for _, k := range []string{"attestationObject", "authenticatorData", "signature", "userHandle"} {
		if v := r.Get(k); v.Type() == js.TypeObject {
			resp[k] = enc(v)
		}
	}
	if r.Get("getTransports").Type() == js.TypeFunction {
		resp["transports"] = r.Call("getTransports")
	}
	out := obj{
		"id": field(cred, "id"), "rawId": enc(cred.Get("rawId")), "type": field(cred, "type"),
		"response": resp.js(), "clientExtensionResults": cred.Call("getClientExtensionResults"),
	}
	if at := field(cred, "authenticatorAttachment"); at != "" {
		out["authenticatorAttachment"] = at
	}
	return out.js()
}
