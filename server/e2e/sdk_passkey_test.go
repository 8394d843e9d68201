package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/twofold-dev/twofold/internal/wire"
)

// Passkeys through the browser SDK: the verifier's WebAuthn routes, the SDK's ceremony and
// its components, in headless Chromium with a virtual authenticator (the DevTools WebAuthn
// domain) standing in for the device's platform authenticator. The harness is
// sdk_browser_test.go's.

// virtualAuthenticator gives the tab a platform authenticator like a phone's or a laptop's:
// CTAP 2.1 over the internal transport, resident keys, user verification that succeeds,
// and presence simulated (without that, navigator.credentials.create() waits forever).
func virtualAuthenticator(t *testing.T, ctx context.Context) webauthn.AuthenticatorID {
	t.Helper()
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	r, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol:                    webauthn.AuthenticatorProtocolCtap2,
		Ctap2version:                webauthn.Ctap2versionCtap21,
		Transport:                   webauthn.AuthenticatorTransportInternal,
		HasResidentKey:              true,
		HasUserVerification:         true,
		IsUserVerified:              true,
		AutomaticPresenceSimulation: true,
	}})
	if err != nil {
		t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	return r.AuthenticatorID
}

func storedCredentials(t *testing.T, ctx context.Context, id webauthn.AuthenticatorID) []*webauthn.Credential {
	t.Helper()
	r, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
	if err != nil {
		t.Fatalf("WebAuthn.getCredentials: %v", err)
	}
	return r.Credentials
}

// enrollTOTP gives user a confirmed authenticator app in the page's app, over HTTP, and
// returns its secret; the confirming code is the one of the verifier's current step.
func (v *verifier) enrollTOTP(apiKey, pageOrigin, user string) string {
	v.t.Helper()
	b := browser{v: v, ticket: v.ticketFor(apiKey, user), origin: pageOrigin}
	r := b.call("POST", "/v1/totp/enrollments", nil)
	if r.Status != 201 {
		v.t.Fatalf("enroll %s: %d %s", user, r.Status, r.Raw)
	}
	secret := r.str("secret")
	if c := b.call("POST", "/v1/totp/enrollments/"+r.str("id")+"/confirm", wire.CodeRequest{Code: code(v.t, secret, v.Clock.Now())}); c.Status != 200 {
		v.t.Fatalf("confirm %s: %d %s", user, c.Status, c.Raw)
	}
	return secret
}

// sdkOutcome is what a script run against the SDK's API reports.
type sdkOutcome struct {
	OK      bool   `json:"ok"`
	Token   string `json:"token"`
	ID      string `json:"id"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Typed   bool   `json:"typed"` // the rejection was a TwofoldError
}

// withSDK runs body (an async function body that has Twofold and tf, loaded for ticket) in
// the page, and reports its value or its rejection.
func withSDK(t *testing.T, ctx context.Context, what, verifierURL, ticket, body string) sdkOutcome {
	t.Helper()
	opts, _ := json.Marshal(map[string]string{"verifier": verifierURL, "ticket": ticket})
	return run(t, ctx, what, chromedp.Evaluate[sdkOutcome](`(async () => {
  const { Twofold, TwofoldError } = await import("/sdk/index.js");
  try {
    const tf = await Twofold.load(`+string(opts)+`);
    const out = await (async () => { `+body+` })();
    return { ok: true, ...out };
  } catch (e) {
    return { ok: false, code: e.code, message: e.message, typed: e instanceof TwofoldError };
  }
})()`, chromedp.EvalAwaitPromise))
}

// sdkPage is the test page with the SDK imported and no component: the API alone.
func sdkPage(port, verifierURL, ticket string) string {
	return pageURL("localhost", port, "div", verifierURL, ticket)
}

func alertText(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return run(t, ctx, "error text", shadow[string](sel, `root.querySelector("[role=alert]").textContent`))
}

// waitPasskey waits for the component's passkey prompt to settle: the step leaves
// "waiting" (to done, or back with an error).
func waitPasskey(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return run(t, ctx, "wait for the passkey prompt to settle", chromedp.Poll[string](
		`(() => { const el = document.querySelector(`+jsString(sel)+`); const s = el.dataset.step; return s !== "waiting" ? s + (el.dataset.error ? ":" + el.dataset.error : "") : false; })()`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(45*time.Second)))
}

func TestSDK_Passkey(t *testing.T) {
	v, port, key, _ := sdkSite(t)
	pageOrigin := "http://localhost:" + port
	browserCtx := newBrowser(t)

	t.Run("TOTPUserStepsUpAddsPasskeyAndSignsInWithIt_TokenSaysKeyAndUserVerified_PasskeyOnlyThenRefusesValidTOTP", func(t *testing.T) {
		secret := v.enrollTOTP(key, pageOrigin, "pia")
		ctx := tab(t, browserCtx, "")
		auth := virtualAuthenticator(t, ctx)

		// Step up with a code from the app, in <twofold-verify>; the passkey is offered after.
		run(t, ctx, "open the verify page", chromedp.Navigate(pageURL("localhost", port, "twofold-verify", v.URL, v.ticketFor(key, "pia"))))
		if got := waitStep(t, ctx, "twofold-verify", "code", "passkey", "refused"); got != "code" {
			t.Fatalf("a user with only an authenticator app is asked at %q", got)
		}
		typeCode(t, ctx, "twofold-verify", code(t, secret, v.Clock.Now().Add(30*time.Second)))
		if got := waitAnswer(t, ctx, "twofold-verify", "code"); got != "done" {
			t.Fatalf("TOTP verify: %s", alertText(t, ctx, "twofold-verify"))
		}
		offer := run(t, ctx, "the offer", shadow[map[string]string]("twofold-verify", `({ state: host.dataset.offer || "", title: root.querySelector("[part=upgrade] h3")?.textContent || "" })`))
		if offer["state"] != "shown" || offer["title"] != "Sign in faster and safer with a passkey" {
			t.Fatalf("after a code from the app the passkey offer is %v", offer)
		}
		// The token waits for the answer, so a page that moves on at twofold:token shows
		// the offer first.
		if evs := run(t, ctx, "events", chromedp.Evaluate[[]pageEvent](`window.__events`)); len(evs) != 0 {
			t.Fatalf("events while the offer is open: %+v", evs)
		}

		// Accept it: the SDK registers a passkey on the virtual authenticator with this
		// ticket, which the code just elevated.
		run(t, ctx, "add a passkey", shadow[bool]("twofold-verify", `(root.querySelector("[part=upgrade] button:not(.secondary)").click(), true)`))
		if got := waitPasskey(t, ctx, "twofold-verify"); got != "done" {
			t.Fatalf("registering through the SDK ended at %q: %s", got, alertText(t, ctx, "twofold-verify"))
		}
		if state := run(t, ctx, "offer state", shadow[string]("twofold-verify", `host.dataset.offer`)); state != "added" {
			t.Fatalf("offer state %q after adding", state)
		}
		if evs := run(t, ctx, "events", chromedp.Evaluate[[]pageEvent](`window.__events`)); len(evs) != 2 || evs[0].Type != "twofold:passkey" || evs[1].Type != "twofold:token" {
			t.Fatalf("events after adding the passkey: %+v, want twofold:passkey then twofold:token", evs)
		}
		creds := storedCredentials(t, ctx, auth)
		if len(creds) != 1 || !creds[0].IsResidentCredential || creds[0].RpID != "localhost" {
			t.Fatalf("the authenticator holds %+v, want one resident credential for localhost", creds)
		}

		// Sign in again with a new ticket: the component asks for the passkey first, and
		// after it nothing else (no code field, no offer).
		login := v.ticketFor(key, "pia")
		run(t, ctx, "open the verify page again", chromedp.Navigate(pageURL("localhost", port, "twofold-verify", v.URL, login)))
		if got := waitStep(t, ctx, "twofold-verify", "code", "passkey", "refused"); got != "passkey" {
			t.Fatalf("a user with a passkey is asked at %q", got)
		}
		run(t, ctx, "sign in with the passkey", shadow[bool]("twofold-verify", `(root.querySelector("button[part=button]").click(), true)`))
		if got := waitPasskey(t, ctx, "twofold-verify"); got != "done" {
			t.Fatalf("passkey sign-in ended at %q: %s", got, alertText(t, ctx, "twofold-verify"))
		}
		after := run(t, ctx, "what follows", shadow[map[string]int]("twofold-verify", `({ inputs: root.querySelectorAll("input").length, offers: root.querySelectorAll("[part=upgrade]").length })`))
		if after["inputs"] != 0 || after["offers"] != 0 {
			t.Errorf("after the passkey the component still shows %v", after)
		}
		evs := run(t, ctx, "events", chromedp.Evaluate[[]pageEvent](`window.__events`))
		if len(evs) != 1 || evs[0].Type != "twofold:token" {
			t.Fatalf("events after the passkey: %+v", evs)
		}
		claims := joseVerify(t, v, "sdkpage", evs[0].Token)
		var amr []string
		for _, a := range claims["amr"].([]any) {
			amr = append(amr, a.(string))
		}
		if !(slices.Contains(amr, "hwk") || slices.Contains(amr, "swk")) || !slices.Contains(amr, "user") || slices.Contains(amr, "otp") {
			t.Errorf("amr %v: want hwk or swk, and user, and no otp", amr)
		}
		if claims["sub"] != "pia" || claims["acr"] != "phr" {
			t.Errorf("sub %v acr %v", claims["sub"], claims["acr"])
		}
		// The passkey was the whole second factor: the ticket is elevated, nothing to add.
		s := browser{v: v, ticket: login, origin: pageOrigin}.call("GET", "/v1/session", nil)
		if s.Body["elevated"] != true || s.Body["factors"].(map[string]any)["passkeys"] != float64(1) {
			t.Errorf("session after the passkey: %s", s.Raw)
		}

		// passkey_only: a valid code from the app no longer signs in, through the SDK either
		// (the verifier destroyed the TOTP secret as the policy was set).
		if r := v.call("PUT", "/v1/users/pia/policy", "Bearer "+key, "", wire.PolicyRequest{Policy: "passkey_only"}); r.Status != 204 {
			t.Fatalf("set policy: %d %s", r.Status, r.Raw)
		}
		valid := code(t, secret, v.Clock.Now().Add(60*time.Second))
		run(t, ctx, "open the SDK page", chromedp.Navigate(sdkPage(port, v.URL, v.ticketFor(key, "pia"))))
		got := withSDK(t, ctx, "TOTP under passkey_only", v.URL, v.ticketFor(key, "pia"), `return await tf.totp.verify(`+jsString(valid)+`);`)
		if got.OK || !got.Typed || got.Code != wire.CodePasskeyRequired {
			t.Fatalf("a valid TOTP code under passkey_only: %+v", got)
		}
		// And the component offers only the passkey now.
		run(t, ctx, "open the verify page under passkey_only", chromedp.Navigate(pageURL("localhost", port, "twofold-verify", v.URL, v.ticketFor(key, "pia"))))
		waitStep(t, ctx, "twofold-verify", "passkey")
		if n := run(t, ctx, "links to codes", shadow[int]("twofold-verify", `root.querySelectorAll("[data-mode=code]").length`)); n != 0 {
			t.Error("under passkey_only the component still offers the authenticator app")
		}
	})

	t.Run("Usernameless_DiscoverablePasskey_SignsInTheTicketsUser", func(t *testing.T) {
		secret := v.enrollTOTP(key, pageOrigin, "uli")
		ctx := tab(t, browserCtx, "")
		virtualAuthenticator(t, ctx)
		ticket := v.ticketFor(key, "uli")
		run(t, ctx, "open the SDK page", chromedp.Navigate(sdkPage(port, v.URL, ticket)))
		reg := withSDK(t, ctx, "step up and register", v.URL, ticket, `
    await tf.totp.verify(`+jsString(code(t, secret, v.Clock.Now().Add(30*time.Second)))+`);
    return await tf.passkeys.register({ label: "Phone" });`)
		if !reg.OK || reg.ID == "" {
			t.Fatalf("register: %+v", reg)
		}
		// No allow-list: the browser offers whatever resident passkey it holds for localhost.
		got := withSDK(t, ctx, "usernameless sign-in", v.URL, v.ticketFor(key, "uli"), `return await tf.passkeys.authenticate({ discoverable: true });`)
		if !got.OK || got.Token == "" {
			t.Fatalf("usernameless sign-in: %+v", got)
		}
		if claims := joseVerify(t, v, "sdkpage", got.Token); claims["sub"] != "uli" || claims["acr"] != "phr" {
			t.Errorf("claims %v", claims)
		}
	})

	t.Run("BogusSignature_SDKRejectsWithInvalidPasskey", func(t *testing.T) {
		secret := v.enrollTOTP(key, pageOrigin, "quin")
		ctx := tab(t, browserCtx, "")
		auth := virtualAuthenticator(t, ctx)
		ticket := v.ticketFor(key, "quin")
		run(t, ctx, "open the SDK page", chromedp.Navigate(sdkPage(port, v.URL, ticket)))
		reg := withSDK(t, ctx, "step up and register", v.URL, ticket, `
    await tf.totp.verify(`+jsString(code(t, secret, v.Clock.Now().Add(30*time.Second)))+`);
    return await tf.passkeys.register({ label: "Laptop" });`)
		if !reg.OK || reg.ID == "" {
			t.Fatalf("register: %+v", reg)
		}
		bogus := true
		if _, err := chromedp.Call(ctx, webauthn.SetResponseOverrideBits, webauthn.SetResponseOverrideBitsParams{AuthenticatorID: auth, IsBogusSignature: &bogus}); err != nil {
			t.Fatal(err)
		}
		got := withSDK(t, ctx, "sign in with a bogus signature", v.URL, v.ticketFor(key, "quin"), `return await tf.passkeys.authenticate();`)
		if got.OK || !got.Typed || got.Code != wire.CodeInvalidPasskey || got.Message == "" {
			t.Fatalf("a passkey answer with a bogus signature: %+v", got)
		}
	})

	t.Run("UpgradeOfferDismissed_NotShownAgain", func(t *testing.T) {
		secret := v.enrollTOTP(key, pageOrigin, "rita")
		ctx := tab(t, browserCtx, "")
		verifyWithCode := func(at time.Duration) {
			t.Helper()
			run(t, ctx, "open the verify page", chromedp.Navigate(pageURL("localhost", port, "twofold-verify", v.URL, v.ticketFor(key, "rita"))))
			waitStep(t, ctx, "twofold-verify", "code")
			typeCode(t, ctx, "twofold-verify", code(t, secret, v.Clock.Now().Add(at)))
			if got := waitAnswer(t, ctx, "twofold-verify", "code"); got != "done" {
				t.Fatalf("TOTP verify: %s", alertText(t, ctx, "twofold-verify"))
			}
		}
		verifyWithCode(30 * time.Second)
		run(t, ctx, "not now", shadow[bool]("twofold-verify", `(root.querySelector("[part=upgrade] button.secondary").click(), true)`))
		state := run(t, ctx, "after not now", shadow[map[string]any]("twofold-verify", `({ offer: host.dataset.offer, shown: root.querySelectorAll("[part=upgrade]").length, kept: Object.keys(localStorage).filter((k) => k.startsWith("twofold:passkey-offer:") && k.endsWith("|rita")).length })`))
		if state["offer"] != "dismissed" || state["shown"] != float64(0) || state["kept"] != float64(1) {
			t.Fatalf("after \"Not now\": %v", state)
		}
		if evs := run(t, ctx, "events", chromedp.Evaluate[[]pageEvent](`window.__events`)); len(evs) != 1 || evs[0].Type != "twofold:token" {
			t.Fatalf("events after \"Not now\": %+v, want the token", evs)
		}
		v.Clock.Advance(30 * time.Second) // the next code, inside the verifier's window
		verifyWithCode(30 * time.Second)
		if again := run(t, ctx, "offer again", shadow[string]("twofold-verify", `(host.dataset.offer || "") + root.querySelectorAll("[part=upgrade]").length`)); again != "0" {
			t.Fatalf("the dismissed offer came back (%s)", again)
		}
	})

	t.Run("UpgradeOfferIgnored_ShownOnce", func(t *testing.T) {
		secret := v.enrollTOTP(key, pageOrigin, "sven")
		ctx := tab(t, browserCtx, "")
		offers := func(at time.Duration) string {
			t.Helper()
			run(t, ctx, "open the verify page", chromedp.Navigate(pageURL("localhost", port, "twofold-verify", v.URL, v.ticketFor(key, "sven"))))
			waitStep(t, ctx, "twofold-verify", "code")
			typeCode(t, ctx, "twofold-verify", code(t, secret, v.Clock.Now().Add(at)))
			if got := waitAnswer(t, ctx, "twofold-verify", "code"); got != "done" {
				t.Fatalf("TOTP verify: %s", alertText(t, ctx, "twofold-verify"))
			}
			return run(t, ctx, "offer", shadow[string]("twofold-verify", `(host.dataset.offer || "") + root.querySelectorAll("[part=upgrade]").length`))
		}
		if first := offers(30 * time.Second); first != "shown1" {
			t.Fatalf("first sign-in with a code: offer %q, want it shown", first)
		}
		v.Clock.Advance(30 * time.Second)
		if again := offers(30 * time.Second); again != "0" {
			t.Fatalf("the offer, neither taken nor dismissed, came back (%s)", again)
		}
	})
}
