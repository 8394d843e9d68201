//go:build js && wasm

// Command wasm is the engine of the twofold browser SDK: a thin syscall/js bridge over the
// pure packages beside it (guard, clock, enroll, codes, b64). It registers one namespaced
// object, globalThis.__twofold, hands it to globalThis.__twofoldReady when the loader set
// one, and blocks. Every asynchronous export returns a Promise made by promise(), which
// recovers panics and rejects with {code, message}; the JS package wraps those in
// TwofoldError.
//
// Calls to the verifier go through the page's fetch, and answers are read field by field
// from the JS objects fetch parses, so the binary carries no net/http and no
// encoding/json reflection.
package main

import (
	"strconv"
	"strings"
	"syscall/js"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/wasm/b64"
	"github.com/twofold-dev/twofold/wasm/clock"
	"github.com/twofold-dev/twofold/wasm/codes"
	"github.com/twofold-dev/twofold/wasm/enroll"
	"github.com/twofold-dev/twofold/wasm/guard"
)

// refusalPath is where a page that the guard refused reports it (audit event
// origin_refused). Best effort: the SDK stops either way.
const refusalPath = "/v1/origin-refusals"

func main() {
	api := obj{
		"version":       wire.EngineVersion,
		"load":          asyncFunc(load),
		"normalizeCode": js.FuncOf(func(_ js.Value, a []js.Value) any { return codes.Normalize(arg(a, 0)) }),
		"validCode": js.FuncOf(func(_ js.Value, a []js.Value) any {
			_, ok := codes.Valid(arg(a, 0))
			return ok
		}),
		"formatRecovery": js.FuncOf(func(_ js.Value, a []js.Value) any {
			s, ok := codes.Recovery(arg(a, 0))
			return obj{"code": s, "ok": ok}.js()
		}),
		"b64encode": js.FuncOf(func(_ js.Value, a []js.Value) any { return b64.Encode(bytesOf(a[0])) }),
		"b64decode": js.FuncOf(func(_ js.Value, a []js.Value) any {
			b, err := b64.Decode(arg(a, 0))
			if err != nil {
				return js.Null()
			}
			return arrayBuffer(b)
		}),
	}.js()
	js.Global().Set("__twofold", api)
	if ready := js.Global().Get("__twofoldReady"); ready.Type() == js.TypeFunction {
		ready.Invoke(api)
	}
	select {}
}

// obj is a JS object literal; js.ValueOf converts it without reflection.
type obj map[string]any

func (o obj) js() js.Value { return js.ValueOf(map[string]any(o)) }

// promise runs fn on its own goroutine (it may block on fetch) and settles a Promise with
// its outcome. A panic becomes a rejection with code "internal", never a dead runtime.
func promise(fn func() (any, error)) js.Value {
	var executor js.Func
	executor = js.FuncOf(func(_ js.Value, a []js.Value) any {
		resolve, reject := a[0], a[1]
		executor.Release()
		go func() {
			defer func() {
				if r := recover(); r != nil {
					msg := "The twofold SDK failed unexpectedly."
					if e, ok := r.(error); ok {
						msg += " (" + e.Error() + ")"
					} else if s, ok := r.(string); ok {
						msg += " (" + s + ")"
					}
					reject.Invoke(errorValue(wire.NewError(wire.CodeInternal, msg)))
				}
			}()
			v, err := fn()
			if err != nil {
				reject.Invoke(errorValue(asWire(err)))
				return
			}
			resolve.Invoke(v)
		}()
		return nil
	})
	return js.Global().Get("Promise").New(executor)
}

// asyncFunc exports fn as a JS function returning a Promise.
func asyncFunc(fn func(args []js.Value) (any, error)) js.Func {
	return js.FuncOf(func(_ js.Value, a []js.Value) any {
		return promise(func() (any, error) { return fn(a) })
	})
}

func asWire(err error) *wire.Error {
	if e, ok := err.(*wire.Error); ok {
		return e
	}
	return wire.NewError(wire.CodeInternal, err.Error())
}

func errorValue(e *wire.Error) js.Value {
	o := obj{"code": e.Code, "message": e.Message}
	if e.Clock != "" {
		o["clock"] = e.Clock
	}
	if e.RetryAfter > 0 {
		o["retryAfter"] = e.RetryAfter
	}
	return o.js()
}

// await blocks the calling goroutine (never the event loop's) until p settles.
func await(p js.Value) (js.Value, bool) {
	type result struct {
		v  js.Value
		ok bool
	}
	ch := make(chan result, 1)
	var then, catch js.Func
	then = js.FuncOf(func(_ js.Value, a []js.Value) any {
		ch <- result{argv(a, 0), true}
		return nil
	})
	catch = js.FuncOf(func(_ js.Value, a []js.Value) any {
		ch <- result{argv(a, 0), false}
		return nil
	})
	p.Call("then", then, catch)
	r := <-ch
	then.Release()
	catch.Release()
	return r.v, r.ok
}

func argv(a []js.Value, i int) js.Value {
	if i < len(a) {
		return a[i]
	}
	return js.Undefined()
}

func arg(a []js.Value, i int) string {
	if v := argv(a, i); v.Type() == js.TypeString {
		return v.String()
	}
	return ""
}

// field reads o[k] as a string, "" when o is not an object or the field is not a string.
func field(o js.Value, k string) string {
	if o.Type() != js.TypeObject {
		return ""
	}
	if v := o.Get(k); v.Type() == js.TypeString {
		return v.String()
	}
	return ""
}

func number(o js.Value, k string) int {
	if o.Type() != js.TypeObject {
		return 0
	}
	if v := o.Get(k); v.Type() == js.TypeNumber {
		return v.Int()
	}
	return 0
}

func boolean(o js.Value, k string) bool {
	return o.Type() == js.TypeObject && o.Get(k).Type() == js.TypeBoolean && o.Get(k).Bool()
}

func strings_(o js.Value, k string) []string {
	if o.Type() != js.TypeObject {
		return nil
	}
	v := o.Get(k)
	if !js.Global().Get("Array").Call("isArray", v).Bool() {
		return nil
	}
	out := make([]string, v.Length())
	for i := range out {
		if s := v.Index(i); s.Type() == js.TypeString {
			out[i] = s.String()
		}
	}
	return out
}

func timeField(o js.Value, k string) time.Time {
	t, _ := clock.ParseRFC3339(field(o, k))
	return t
}

func bytesOf(v js.Value) []byte {
	u8 := js.Global().Get("Uint8Array")
	if !v.InstanceOf(u8) {
		v = u8.New(v)
	}
	b := make([]byte, v.Length())
	js.CopyBytesToGo(b, v)
	return b
}

func arrayBuffer(b []byte) js.Value {
	u := js.Global().Get("Uint8Array").New(len(b))
	js.CopyBytesToJS(u, b)
	return u.Get("buffer")
}

func jsStrings(list []string) js.Value {
	a := make([]any, len(list))
	for i, s := range list {
		a[i] = s
	}
	return js.ValueOf(a)
}

// ---- the verifier over fetch ----

var (
	errUnreachable = wire.NewError(wire.CodeUnavailable, "The verifier cannot be reached. Check your connection, then try again.")
	// A page on a foreign origin and a verifier failing behind a proxy look the same from
	// here (the answer cannot be read), so the message names both.
	errCORS = wire.NewError(wire.CodeOriginNotAllowed, "The verifier would not answer this page. If you opened it from a link, open the app from its real address instead; otherwise the verifier may be failing right now: try again in a moment.")
)

// client is one loaded SDK: a verifier, a ticket, and what the session told.
type client struct {
	verifier, ticket string
	page             guard.Page
	session          wire.Session
	skew             clock.Estimate
	skewKnown        bool
	state            enroll.State
	storageKey       string
}

// answer is one response: its parsed JSON body and the Date header.
type answer struct {
	body js.Value
	date string
}

// call sends one request with the ticket. A fetch that fails outright (network, or a CORS
// refusal the page cannot read) is errUnreachable; a JSON error answer is its wire.Error.
func (c *client) call(method, path string, body js.Value) (answer, error) {
	headers := obj{"Authorization": "Ticket " + c.ticket}
	init := obj{"method": method, "credentials": "omit", "cache": "no-store", "mode": "cors"}
	if !body.IsUndefined() {
		headers["Content-Type"] = "application/json"
		init["body"] = js.Global().Get("JSON").Call("stringify", body)
	}
	init["headers"] = headers.js()
	res, ok := await(js.Global().Call("fetch", c.verifier+path, init.js()))
	if !ok {
		return answer{}, errUnreachable
	}
	a := answer{date: headerOf(res, "date")}
	status := res.Get("status").Int()
	if status == 204 {
		return a, nil
	}
	parsed, ok := await(res.Call("json"))
	if !ok {
		return a, wire.NewError(wire.CodeInternal, "The verifier answered "+strconv.Itoa(status)+" without JSON. Is the verifier URL right?")
	}
	a.body = parsed
	if !res.Get("ok").Bool() {
		e := &wire.Error{Code: field(parsed, "error"), Message: field(parsed, "message"), Clock: field(parsed, "clock"), RetryAfter: number(parsed, "retry_after")}
		if e.Code == "" {
			e.Code, e.Message = wire.CodeInternal, "The verifier answered "+strconv.Itoa(status)+"."
		}
		return a, e
	}
	return a, nil
}

func headerOf(res js.Value, name string) string {
	v := res.Get("headers").Call("get", name)
	if v.Type() == js.TypeString {
		return v.String()
	}
	return ""
}

// reachable tells a CORS refusal from a dead network: a no-cors request cannot be read,
// but it succeeds when the verifier is up.
func (c *client) reachable() bool {
	_, ok := await(js.Global().Call("fetch", c.verifier+"/healthz", obj{"mode": "no-cors", "credentials": "omit", "cache": "no-store"}.js()))
	return ok
}

// currentPage reads where the page runs. Without location.ancestorOrigins (older Firefox) the
// ancestors are frames, which the JS loader walked (frameAncestors in sdk-js/src/engine.ts):
// reading a cross-origin frame's location throws, and a JS exception in a property read
// here would end the engine rather than reach recover. frames not an array (null: one
// could not be read) leaves them unknown, which the guard refuses.
func currentPage(frames js.Value) guard.Page {
	g := js.Global()
	loc := g.Get("location")
	p := guard.Page{Origin: field(loc, "origin")}
	top, self := g.Get("top"), g.Get("self")
	if top.Type() != js.TypeObject || self.Type() != js.TypeObject || top.Equal(self) {
		return p
	}
	p.Framed = true
	list := loc.Get("ancestorOrigins")
	if list.Type() != js.TypeObject {
		list = frames
	}
	if list.Type() != js.TypeObject || list.Get("length").Type() != js.TypeNumber {
		return p
	}
	var ancestors []string
	for i := 0; i < list.Length(); i++ {
		o := list.Index(i)
		if o.Type() != js.TypeString && list.Get("item").Type() == js.TypeFunction {
			o = list.Call("item", i) // a DOMStringList read through its method
		}
		if o.Type() != js.TypeString {
			return p
		}
		ancestors = append(ancestors, o.String())
	}
	p.Ancestors = ancestors
	return p
}

// load is __twofold.load({verifier, ticket}): the guard, the session, the clock.
func load(a []js.Value) (any, error) {
	opts := argv(a, 0)
	c := &client{verifier: strings.TrimRight(field(opts, "verifier"), "/"), ticket: field(opts, "ticket")}
	if c.verifier == "" || c.ticket == "" {
		return nil, wire.NewError(wire.CodeInvalidRequest, "Twofold.load needs { verifier, ticket }: the verifier's URL and the ticket your backend got for this user.")
	}
	c.page = currentPage(opts.Get("frames"))
	if r := guard.CheckScheme(c.page.Origin); r != nil {
		return nil, r.Err
	}
	raw, err := c.refreshSession()
	if err == errUnreachable && c.reachable() {
		// Up, yet unreadable: a CORS refusal, or a moment's failure. Ask once more.
		if raw, err = c.refreshSession(); err == errUnreachable {
			return nil, errCORS
		}
	}
	if err != nil {
		return nil, err
	}
	if r := guard.Check(c.page, c.session.Origins); r != nil {
		c.report(r)
		return nil, r.Err
	}
	c.storageKey = "twofold:enroll:" + c.verifier + "|" + c.session.User
	if snap := storage("getItem", c.storageKey, ""); snap != "" {
		if s, err := enroll.Resume(snap, time.Now()); err == nil {
			c.state = s
		} else {
			storage("removeItem", c.storageKey, "")
		}
	}
	_ = raw
	return c.export(), nil
}

// refreshSession fetches /v1/session, remembers it and measures the clock.
func (c *client) refreshSession() (js.Value, error) {
	sent := time.Now()
	a, err := c.call("GET", "/v1/session", js.Undefined())
	received := time.Now()
	if err != nil {
		return js.Undefined(), err
	}
	b := a.body
	f := b.Get("factors")
	c.session = wire.Session{
		User:       field(b, "user"),
		Factors:    wire.Factors{TOTP: boolean(f, "totp"), Passkeys: number(f, "passkeys"), RecoveryCodesRemaining: number(f, "recovery_codes_remaining")},
		ServerTime: timeField(b, "server_time"),
		Elevated:   boolean(b, "elevated"),
		Origins:    strings_(b, "origins"),
	}
	date, _ := clock.ParseHTTPDate(a.date)
	c.skew, c.skewKnown = clock.Measure(clock.Sample{Sent: sent, Received: received, ServerTime: c.session.ServerTime, Date: date})
	return b, nil
}

// report tells the verifier a page was refused (audit event origin_refused). It is
// awaited so it leaves before load rejects; its outcome does not matter.
func (c *client) report(r *guard.Refusal) {
	body := obj{"page_origin": c.page.Origin, "reason": string(r.Reason), "ancestors": jsStrings(c.page.Ancestors)}.js()
	c.call("POST", refusalPath, body)
}

// storage calls sessionStorage.method(key[, value]); storage can be missing or throw
// (sandboxed frames, privacy modes), and then nothing is kept.
func storage(method, key, value string) (out string) {
	defer func() { recover() }()
	// Read through Reflect.get: reading sessionStorage throws where the browser blocks
	// storage, and a throw in a plain property read (syscall/js valueGet) ends the engine,
	// while one in a call (valueCall) is a panic that recover catches.
	ss := js.Global().Get("Reflect").Call("get", js.Global(), "sessionStorage")
	if ss.Type() != js.TypeObject {
		return ""
	}
	var v js.Value
	if method == "setItem" {
		v = ss.Call(method, key, value)
	} else {
		v = ss.Call(method, key)
	}
	if v.Type() == js.TypeString {
		return v.String()
	}
	return ""
}

// export is the client object the JS package wraps. Calls return the verifier's JSON as
// parsed, so the JS side maps it with the types generated from internal/wire.
func (c *client) export() js.Value {
	code := func(a []js.Value) js.Value { return obj{"code": arg(a, 0)}.js() }
	return obj{
		"session": asyncFunc(func([]js.Value) (any, error) {
			return c.refreshSession()
		}),
		"totpEnroll": asyncFunc(func([]js.Value) (any, error) {
			a, err := c.call("POST", "/v1/totp/enrollments", js.Undefined())
			return a.body, err
		}),
		"totpConfirm": asyncFunc(func(a []js.Value) (any, error) {
			r, err := c.call("POST", "/v1/totp/enrollments/"+js.Global().Call("encodeURIComponent", arg(a, 0)).String()+"/confirm", code(a[1:]))
			return r.body, err
		}),
		"totpVerify": asyncFunc(func(a []js.Value) (any, error) {
			r, err := c.call("POST", "/v1/totp/verify", code(a))
			return r.body, err
		}),
		"recoveryVerify": asyncFunc(func(a []js.Value) (any, error) {
			r, err := c.call("POST", "/v1/recovery/verify", code(a))
			return r.body, err
		}),
		"recoveryRegenerate": asyncFunc(func([]js.Value) (any, error) {
			r, err := c.call("POST", "/v1/recovery/codes", js.Undefined())
			return r.body, err
		}),
		"factorList": asyncFunc(func([]js.Value) (any, error) {
			r, err := c.call("GET", "/v1/factors", js.Undefined())
			return r.body, err
		}),
		"factorRemove": asyncFunc(func(a []js.Value) (any, error) {
			_, err := c.call("DELETE", "/v1/factors/"+js.Global().Call("encodeURIComponent", arg(a, 0)).String(), js.Undefined())
			return nil, err
		}),
		"passkeyRegister":     asyncFunc(func(a []js.Value) (any, error) { return c.passkey(true, argv(a, 0)) }),
		"passkeyAuthenticate": asyncFunc(func(a []js.Value) (any, error) { return c.passkey(false, argv(a, 0)) }),
		"clock": js.FuncOf(func(js.Value, []js.Value) any {
			return obj{"known": c.skewKnown, "skew": c.skew.Seconds(), "warn": c.skewKnown && c.skew.Warn(), "direction": c.skew.Direction()}.js()
		}),
		"user":    js.FuncOf(func(js.Value, []js.Value) any { return c.session.User }),
		"factors": js.FuncOf(func(js.Value, []js.Value) any { return c.factors() }),
		"enrollState": js.FuncOf(func(js.Value, []js.Value) any {
			c.state, _ = enroll.Next(c.state, enroll.Event{Kind: enroll.Tick}, time.Now())
			return c.view()
		}),
		"enrollSend": asyncFunc(func(a []js.Value) (any, error) {
			return c.enroll(enroll.Event{Kind: enroll.EventKind(arg(a, 0)), Code: arg(a, 1)}), nil
		}),
		"recoveryFile": js.FuncOf(func(_ js.Value, a []js.Value) any {
			return codes.RecoveryFile(arg(a, 0), c.session.User, strings_(obj{"l": argv(a, 1)}.js(), "l"))
		}),
	}.js()
}

func (c *client) factors() js.Value {
	f := c.session.Factors
	return obj{"totp": f.TOTP, "passkeys": f.Passkeys, "recoveryCodesRemaining": f.RecoveryCodesRemaining}.js()
}

// enroll runs one event through the machine and every effect it asks for, keeping the
// snapshot in sessionStorage in step, and returns the view.
func (c *client) enroll(ev enroll.Event) js.Value {
	s, fx := enroll.Next(c.state, ev, time.Now())
	for {
		c.state = s
		c.persist()
		switch fx {
		case enroll.CallStart:
			a, err := c.call("POST", "/v1/totp/enrollments", js.Undefined())
			if err != nil {
				s, fx = enroll.Next(c.state, enroll.Event{Kind: enroll.StartFailed, Err: asWire(err)}, time.Now())
				continue
			}
			b := a.body
			e := wire.Enrollment{ID: field(b, "id"), OTPAuthURI: field(b, "otpauth_uri"), Secret: field(b, "secret"), QRSVG: field(b, "qr_svg"), ExpiresAt: timeField(b, "expires_at")}
			s, fx = enroll.Next(c.state, enroll.Event{Kind: enroll.Started, Enrollment: e}, time.Now())
		case enroll.CallConfirm:
			a, err := c.call("POST", "/v1/totp/enrollments/"+js.Global().Call("encodeURIComponent", c.state.Enrollment.ID).String()+"/confirm", obj{"code": c.state.Sending}.js())
			if err != nil {
				s, fx = enroll.Next(c.state, enroll.Event{Kind: enroll.ConfirmFailed, Err: asWire(err)}, time.Now())
				continue
			}
			b := a.body
			conf := wire.Confirmation{RecoveryCodes: strings_(b, "recovery_codes"), Token: wire.Token{Token: field(b, "token"), TokenType: field(b, "token_type"), ExpiresIn: number(b, "expires_in")}}
			s, fx = enroll.Next(c.state, enroll.Event{Kind: enroll.Confirmed, Confirmation: conf}, time.Now())
		default:
			return c.view()
		}
	}
}

func (c *client) persist() {
	if c.storageKey == "" {
		return
	}
	if snap := enroll.Snapshot(c.state); snap != "" {
		storage("setItem", c.storageKey, snap)
	} else {
		storage("removeItem", c.storageKey, "")
	}
}

// view is the enrollment state as the components render it.
func (c *client) view() js.Value {
	s := c.state
	e := s.Enrollment
	v := obj{
		"step":          string(s.Step),
		"attempts":      s.Attempts,
		"hint":          s.Attempts >= enroll.HintAfter,
		"recoveryCodes": jsStrings(s.RecoveryCodes),
		"token":         s.Token.Token,
		"expiresIn":     s.Token.ExpiresIn,
		"error":         js.Null(),
	}
	if e.ID != "" {
		v["enrollment"] = obj{"id": e.ID, "otpauth_uri": e.OTPAuthURI, "secret": e.Secret, "qr_svg": e.QRSVG, "expires_at": clock.FormatRFC3339(e.ExpiresAt)}.js()
	} else {
		v["enrollment"] = js.Null()
	}
	if s.Err != nil {
		v["error"] = errorValue(s.Err)
	}
	return v.js()
}
