//go:build js && wasm

package main

import (
	"syscall/js"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/wasm/b64"
)

var errNoPasskeys = wire.NewError(wire.CodeUnavailable, "Passkeys are not available on this verifier yet. Use your authenticator app.")

// passkey runs a WebAuthn ceremony: the verifier's options, the browser's ceremony, the
// verifier's check. Binary fields cross as base64url both ways; the conversions are done
// here, for browsers without PublicKeyCredential.parse*OptionsFromJSON and toJSON().
func (c *client) passkey(register bool) (any, error) {
	begin, finish := "/v1/webauthn/assertions", "/v1/webauthn/assertions/finish"
	if register {
		begin, finish = "/v1/webauthn/registrations", "/v1/webauthn/registrations/finish"
	}
	pkc := js.Global().Get("PublicKeyCredential")
	creds := js.Undefined()
	if nav := js.Global().Get("navigator"); nav.Type() == js.TypeObject {
		creds = nav.Get("credentials")
	}
	if pkc.Type() != js.TypeFunction || creds.Type() != js.TypeObject {
		return nil, wire.NewError(wire.CodeUnavailable, "This browser does not support passkeys. Use your authenticator app.")
	}
	a, err := c.call("POST", begin, js.Undefined())
	if e, ok := err.(*wire.Error); ok && e.Code == wire.CodeNotFound {
		return nil, errNoPasskeys
	}
	if err != nil {
		return nil, err
	}
	opts := a.body.Get("publicKey")
	if opts.Type() != js.TypeObject {
		return nil, wire.NewError(wire.CodeInternal, "The verifier's passkey options are malformed.")
	}
	decode := func(o js.Value, k string) {
		if s := field(o, k); s != "" {
			if b, err := b64.Decode(s); err == nil {
				o.Set(k, arrayBuffer(b))
			}
		}
	}
	decode(opts, "challenge")
	if u := opts.Get("user"); u.Type() == js.TypeObject {
		decode(u, "id")
	}
	for _, k := range []string{"excludeCredentials", "allowCredentials"} {
		if l := opts.Get(k); l.Type() == js.TypeObject {
			for i := 0; i < l.Length(); i++ {
				decode(l.Index(i), "id")
			}
		}
	}
	method := "get"
	if register {
		method = "create"
	}
	cred, ok := await(creds.Call(method, obj{"publicKey": opts}.js()))
	if !ok {
		name := field(cred, "name")
		if name == "NotAllowedError" || name == "AbortError" {
			return nil, wire.NewError("cancelled", "The passkey prompt was closed or timed out. Try again when you are ready.")
		}
		return nil, wire.NewError(wire.CodeUnavailable, "The browser could not use a passkey: "+field(cred, "message"))
	}
	a, err = c.call("POST", finish, credentialJSON(cred))
	if err != nil {
		return nil, err
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
