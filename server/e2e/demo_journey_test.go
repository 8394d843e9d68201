package e2e

import (
	"bufio"
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// The demo app's whole journey in headless Chromium, against the two processes `make run`
// starts, started the same way: the launcher (demo/cmd/run) registers the demo app with
// the verifier, starts `twofold serve` and the demo, and prints their URLs. Every step is
// asserted on what the page shows, and photographed into docs/ for the README.

// demoStack is a running launcher with its verifier and demo.
type demoStack struct {
	Verifier, Origin string
	Logs             *demoLogs
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// startDemoStack builds the demo and the launcher, and runs the launcher on free ports with
// the twofold binary TestMain built and the SDK built from this tree.
func startDemoStack(t *testing.T, sdk string) demoStack {
	t.Helper()
	bin := t.TempDir()
	for _, b := range []struct{ out, pkg string }{{"demo", "./demo"}, {"demo-run", "./demo/cmd/run"}} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, b.out), b.pkg)
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	data := t.TempDir()
	cmd := exec.Command(filepath.Join(bin, "demo-run"), "-twofold", binary, "-demo", filepath.Join(bin, "demo"),
		"-data", data, "-sdk", sdk, "-verifier-addr", "127.0.0.1:0", "-demo-addr", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &demoLogs{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	urls := make(chan demoStack, 1)
	var stackURLs demoStack // for the cleanup
	go func() {
		var s demoStack
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) >= 2 && f[0] == "verifier:":
				s.Verifier = f[1]
			case len(f) >= 2 && f[0] == "demo:":
				s.Origin, s.Logs = f[1], logs
				urls <- s
			}
		}
	}()
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		// Ctrl-C, as a person stops make run: both processes must go, and the launcher with them.
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Errorf("the launcher did not stop within 20 s of Ctrl-C\n%s", logs.String())
		}
		for _, u := range []string{stackURLs.Verifier + "/healthz", stackURLs.Origin + "/healthz"} {
			if res, err := http.Get(u); err == nil {
				res.Body.Close()
				t.Errorf("%s still answers after the launcher stopped", u)
			}
		}
	})
	select {
	case s := <-urls:
		stackURLs = s
		if !strings.HasPrefix(s.Origin, "http://localhost:") {
			t.Fatalf("the demo's URL %q is not on localhost", s.Origin)
		}
		return s
	case err := <-exited:
		t.Fatalf("the launcher exited: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("the launcher printed no URLs within 60 s\n%s", logs.String())
	}
	return demoStack{}
}

// demoShot photographs the whole page. With TWOFOLD_SCREENSHOTS=1 (`make screenshots`) it
// writes docs/demo-NN-name.png for the README; otherwise into the test's temporary
// directory, so an ordinary test run leaves the tree as it was.
func demoShot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := run(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	if len(png) < 1000 {
		t.Fatalf("screenshot %s is %d bytes", name, len(png))
	}
	dir := filepath.Join(repoRoot(), "docs")
	if os.Getenv("TWOFOLD_SCREENSHOTS") != "1" {
		dir = shotDir(t)
	}
	if err := os.WriteFile(filepath.Join(dir, "demo-"+name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

var shots struct {
	sync.Once
	dir string
}

// shotDir is one temporary directory for the screenshots of a run.
func shotDir(t *testing.T) string {
	shots.Do(func() { shots.dir = t.TempDir() })
	return shots.dir
}

// demoEval runs a script in the page and returns its value.
func demoEval[T any](t *testing.T, ctx context.Context, what, js string) T {
	t.Helper()
	return run(t, ctx, what, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// demoWait polls until js is truthy and returns its value.
func demoWait[T any](t *testing.T, ctx context.Context, what, js string) T {
	t.Helper()
	return run(t, ctx, "wait for "+what, chromedp.Poll[T](js, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(45*time.Second)))
}

// demoPoll evaluates js until it gives a non-empty string, and returns it. It polls with
// plain evaluations, since a navigation in between ends a chromedp.Poll.
func demoPoll(t *testing.T, ctx context.Context, what, js string) string {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		text, err := chromedp.Run(c, chromedp.Evaluate[string](`(() => { try { return (`+js+`) || ""; } catch (e) { return ""; } })()`))
		cancel()
		if err == nil && text != "" {
			return text
		}
		time.Sleep(50 * time.Millisecond)
	}
	where, _ := chromedp.Run(ctx, chromedp.Evaluate[string](demoPageText))
	t.Fatalf("waited in vain for %s; the tab shows %s", what, where)
	return ""
}

// demoAt waits for the page at path to be loaded and returns the text of its <main>.
func demoAt(t *testing.T, ctx context.Context, path string) string {
	t.Helper()
	return demoPoll(t, ctx, "the page "+path, `location.pathname === `+jsString(path)+` && document.readyState === "complete" && document.getElementById("app").innerText`)
}

func demoFill(t *testing.T, ctx context.Context, fields map[string]string, submit string) {
	t.Helper()
	js := ""
	for id, v := range fields {
		js += `document.getElementById(` + jsString(id) + `).value = ` + jsString(v) + `;`
	}
	demoEval[bool](t, ctx, "fill the form", `(() => { `+js+` document.getElementById(`+jsString(submit)+`).click(); return true; })()`)
}

// demoPageText is the visible text of the page, components' shadow roots included.
const demoPageText = `(() => {
  const walk = (n) => [...n.childNodes].map((c) => c.nodeType === 3 ? c.textContent : c.nodeType === 1 && c.localName !== "style" && c.localName !== "script" ? (c.shadowRoot ? walk(c.shadowRoot) : "") + walk(c) : "").join(" ");
  return walk(document.body).replace(/\s+/g, " ");
})()`

func demoSignIn(t *testing.T, ctx context.Context, origin, user, password string) {
	t.Helper()
	run(t, ctx, "open sign-in", chromedp.Navigate(origin+"/signin"))
	demoAt(t, ctx, "/signin")
	demoFill(t, ctx, map[string]string{"username": user, "password": password}, "signin")
	demoAt(t, ctx, "/2fa")
}

func demoSignOut(t *testing.T, ctx context.Context) {
	t.Helper()
	demoEval[bool](t, ctx, "sign out", `(document.getElementById("signout").click(), true)`)
	if text := demoAt(t, ctx, "/signin"); !strings.Contains(text, "You are signed out.") {
		t.Fatalf("after signing out the page says %q", text)
	}
}

// demoAccount waits for the security page with n factors listed and returns the page text.
func demoAccount(t *testing.T, ctx context.Context, n int) string {
	t.Helper()
	demoAt(t, ctx, "/account")
	got := demoPoll(t, ctx, "the factor list", `document.getElementById("app").dataset.factors || (document.getElementById("page-error") && document.getElementById("page-error").textContent ? "error: " + document.getElementById("page-error").textContent : false)`)
	if got != strconv.Itoa(n) {
		t.Fatalf("the security page lists %s factors, want %d:\n%s", got, n, demoEval[string](t, ctx, "page", demoPageText))
	}
	demoPoll(t, ctx, "the recovery codes left", `document.getElementById("codes-left").textContent`)
	return demoEval[string](t, ctx, "page text", demoPageText)
}

// demoLogs collects the launcher's logs (both processes write there) for failure messages.
type demoLogs struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *demoLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *demoLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func demoMustSay(t *testing.T, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("the page does not say %q:\n%s", w, text)
		}
	}
}

// demoEnrollFromQR reads the QR on screen, types the app's code and returns the secret.
func demoEnrollFromQR(t *testing.T, ctx context.Context) string {
	t.Helper()
	uri := decodeQR(t, ctx)
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "otpauth" || u.Query().Get("secret") == "" {
		t.Fatalf("the QR code on screen carries %q", uri)
	}
	if iss := u.Query().Get("issuer"); iss == "" {
		t.Errorf("the otpauth URI names no issuer: %s", uri)
	}
	secret := u.Query().Get("secret")
	typeCode(t, ctx, "twofold-enroll", code(t, secret, time.Now()))
	return secret
}

func TestDemo_Journey(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the demo and drives Chromium")
	}
	sdk := buildSDK(t)
	stack := startDemoStack(t, sdk)
	browser := newBrowser(t) // closed before the stack: cleanups run last first
	ctx := tab(t, browser, "")
	origin := stack.Origin
	const user, password = "dana", "correct horse battery"

	// 1. Sign up with the demo's own first factor.
	run(t, ctx, "open sign-up", chromedp.Navigate(origin+"/signup"))
	demoAt(t, ctx, "/signup")
	csp := demoEval[string](t, ctx, "CSP", `fetch("/signup").then((r) => r.headers.get("content-security-policy"))`)
	if !strings.Contains(csp, "script-src 'self' 'wasm-unsafe-eval';") {
		t.Errorf("CSP %q", csp)
	}
	if n := demoEval[int](t, ctx, "inline scripts", `[...document.scripts].filter((s) => !s.src).length`); n != 0 {
		t.Errorf("%d inline scripts on the page", n)
	}
	demoEval[bool](t, ctx, "fill", `(() => { document.getElementById("username").value = "dana"; document.getElementById("password").value = "correct horse battery"; document.getElementById("password2").value = "correct horse battery"; return true; })()`)
	demoShot(t, ctx, "01-signup")
	demoEval[bool](t, ctx, "submit", `(document.getElementById("signup").click(), true)`)

	// 2. First-time setup: the QR code on screen, scanned from a screenshot.
	demoAt(t, ctx, "/2fa")
	if got := waitStep(t, ctx, "twofold-enroll", "scan", "failed", "refused"); got != "scan" {
		t.Fatalf("the setup is at %q: %s", got, demoEval[string](t, ctx, "page", demoPageText))
	}
	demoMustSay(t, demoEval[string](t, ctx, "page", demoPageText), "Set up two-step verification", "scan this QR code")
	demoShot(t, ctx, "02-setup-qr")
	secret := demoEnrollFromQR(t, ctx)

	// 3. The recovery codes, shown once; saved.
	if got := waitAnswer(t, ctx, "twofold-enroll", "scan"); got != "recovery" {
		t.Fatalf("after the code the setup is at %q: %s", got, demoEval[string](t, ctx, "page", demoPageText))
	}
	codes := run(t, ctx, "recovery codes", shadow[[]string]("twofold-enroll", `[...root.querySelectorAll("[part=recovery-codes] li")].map((li) => li.textContent)`))
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes shown", len(codes))
	}
	demoShot(t, ctx, "03-recovery-codes")
	run(t, ctx, "I saved them", shadow[bool]("twofold-enroll", `(root.querySelector("#saved").click(), [...root.querySelectorAll("button")].find((b) => !b.disabled && b.textContent === "Continue").click(), true)`))

	// 4. Signed in: the backend checked the token; the security page lists the authenticator.
	text := demoAccount(t, ctx, 1)
	demoMustSay(t, text, "Signed in as "+user, "Authenticator app", "Two-step verification set up", "Signed in · with an authenticator app code", "10 unused recovery codes left.")
	demoShot(t, ctx, "04-signed-in")

	// 5. Sign out; sign in again: password, then the code prompt.
	demoSignOut(t, ctx)
	demoSignIn(t, ctx, origin, user, password)
	if got := waitStep(t, ctx, "twofold-verify", "code", "passkey", "refused"); got != "code" {
		t.Fatalf("the second step is at %q", got)
	}
	demoMustSay(t, demoEval[string](t, ctx, "page", demoPageText), "Two-step verification", "Lost your phone?")
	demoShot(t, ctx, "05-code-prompt")
	// The setup's code is spent: the next step's code.
	typeCode(t, ctx, "twofold-verify", code(t, secret, time.Now().Add(30*time.Second)))
	// The passkey offered after the code: not now (one is added on the security page next).
	if got := waitAnswer(t, ctx, "twofold-verify", "code"); got != "done" {
		t.Fatalf("the code was answered at %q: %s", got, demoEval[string](t, ctx, "page", demoPageText))
	}
	run(t, ctx, "not now", shadow[bool]("twofold-verify", `(root.querySelector("[part=upgrade] button.secondary").click(), true)`))
	text = demoAccount(t, ctx, 1)
	demoMustSay(t, text, "Signed in · with an authenticator app code", "Signed out")

	// 6. A passkey, added on the security page with the virtual authenticator.
	passkeyOK := true
	auth := demoAuthenticator(t, ctx)
	if got := waitStep(t, ctx, "twofold-passkey", "ready", "unsupported", "refused"); got != "ready" {
		t.Fatalf("the passkey button is at %q", got)
	}
	run(t, ctx, "add a passkey", shadow[bool]("twofold-passkey", `(root.querySelector("button").click(), true)`))
	outcome := demoPoll(t, ctx, "the passkey", `(() => { if (document.getElementById("app").dataset.factors === "2") return "added"; const p = document.querySelector("twofold-passkey"); return p && p.dataset.error ? "error " + p.dataset.error + ": " + p.shadowRoot.querySelector("[role=alert]").textContent : ""; })()`)
	if outcome != "added" {
		passkeyOK = false
		t.Errorf("adding a passkey on the security page failed: %s\n%s", outcome, demoErrors(stack.Logs.String()))
	} else {
		text = demoAccount(t, ctx, 2)
		demoMustSay(t, text, "Passkey", "Second factor added · passkey: Passkey")
		if n := len(demoCredentials(t, ctx, auth)); n != 1 {
			t.Errorf("the authenticator holds %d credentials", n)
		}
		demoShot(t, ctx, "06-passkey-added")
	}

	// 7. Sign in with the passkey: asked for first, no code after it.
	if passkeyOK {
		demoSignOut(t, ctx)
		demoSignIn(t, ctx, origin, user, password)
		if got := waitStep(t, ctx, "twofold-verify", "passkey", "code", "refused"); got != "passkey" {
			t.Errorf("with a passkey the second step opens at %q", got)
		} else {
			demoShot(t, ctx, "07-passkey-prompt")
			run(t, ctx, "use the passkey", shadow[bool]("twofold-verify", `(root.querySelector("button[part=button]").click(), true)`))
			text = demoAccount(t, ctx, 2)
			demoMustSay(t, text, "Signed in · with a passkey")
		}
	}
	factors := 1
	if passkeyOK {
		factors = 2
	}

	// 8. Lost the phone: a recovery code, then straight on to a new authenticator.
	demoSignOut(t, ctx)
	demoSignIn(t, ctx, origin, user, password)
	demoPoll(t, ctx, "the lost-phone link", `(() => { const a = document.querySelector("#lost-link a"); return !!a && !document.getElementById("lost-link").hidden && "yes"; })()`)
	demoEval[bool](t, ctx, "lost your phone?", `(document.querySelector("#lost-link a").click(), true)`)
	demoAt(t, ctx, "/2fa/lost")
	demoPoll(t, ctx, "the recovery-code form", `(() => { const v = document.querySelector("twofold-verify"); return !!v && v.dataset.view === "recovery" && v.dataset.step === "code" && !!v.shadowRoot.querySelector("input[name=recovery-code]") && "yes"; })()`)
	demoMustSay(t, demoEval[string](t, ctx, "page", demoPageText), "Lost your phone?", "Recovery code")
	demoShot(t, ctx, "08-lost-phone")
	run(t, ctx, "focus", shadow[bool]("twofold-verify", `(root.querySelector("input[name=recovery-code]").focus(), true)`))
	run(t, ctx, "type the recovery code", chromedp.KeyEvent(codes[0]+"\r"))
	demoAt(t, ctx, "/2fa/new")
	if got := waitStep(t, ctx, "twofold-enroll", "scan", "failed", "refused"); got != "scan" {
		t.Fatalf("the new authenticator's setup is at %q: %s", got, demoEval[string](t, ctx, "page", demoPageText))
	}
	demoMustSay(t, demoEval[string](t, ctx, "page", demoPageText), "You signed in with a recovery code", "scan this QR code")
	demoShot(t, ctx, "09-new-authenticator")
	newSecret := demoEnrollFromQR(t, ctx)
	if newSecret == secret {
		t.Fatal("the new authenticator has the lost one's secret")
	}
	// No recovery codes this time (the set from the first setup stays): straight to done.
	if got := demoPoll(t, ctx, "the confirmation", `location.pathname === "/account" ? "account" : (() => { const e = document.querySelector("twofold-enroll"); return e && (e.dataset.step === "recovery" || e.dataset.error) ? e.dataset.step + " " + (e.dataset.error || "") : ""; })()`); got != "account" {
		t.Fatalf("confirming the new authenticator: %q", got)
	}
	text = demoAccount(t, ctx, factors+1)
	demoMustSay(t, text, "Signed in · with a recovery code", "Authenticator app added", "9 unused recovery codes left.")

	// 9. Remove the lost phone's authenticator (the older one, never used since).
	lost := demoEval[string](t, ctx, "the old authenticator", `document.querySelector("tr[data-type=totp] button[data-remove]").dataset.remove`)
	demoEval[bool](t, ctx, "remove it", `(document.querySelector("button[data-remove=`+jsString(lost)[1:len(jsString(lost))-1]+`]").click(), true)`)
	demoPoll(t, ctx, "the removal", `location.pathname === "/account" && document.readyState === "complete" && document.getElementById("app").dataset.factors === "`+strconv.Itoa(factors)+`" && "yes"`)
	text = demoAccount(t, ctx, factors)
	demoMustSay(t, text, "Second factor removed")
	if n := demoEval[int](t, ctx, "rows", `document.querySelectorAll("tr[data-factor="+CSS.escape(`+jsString(lost)+`)+"]").length`); n != 0 {
		t.Errorf("the removed authenticator is still listed")
	}
	demoShot(t, ctx, "10-factor-removed")

	// New recovery codes, shown once, replacing the 9 left.
	demoEval[bool](t, ctx, "new recovery codes", `(document.getElementById("regen").click(), true)`)
	fresh := demoPoll(t, ctx, "the new codes", `!document.getElementById("codes").hidden && [...document.querySelectorAll("#code-list li")].map((li) => li.textContent).join(" ")`)
	if n := len(strings.Fields(fresh)); n != 10 || strings.Contains(fresh, codes[1]) {
		t.Fatalf("new recovery codes: %q", fresh)
	}
	demoEval[bool](t, ctx, "I saved them", `(window.__stale = true, document.getElementById("codes-saved").click(), true)`)
	demoPoll(t, ctx, "the reload", `!window.__stale && document.readyState === "complete" && "yes"`)
	demoMustSay(t, demoAccount(t, ctx, factors), "New recovery codes issued", "10 unused recovery codes left.")

	// The lost phone's codes no longer sign in; the new phone's do.
	demoSignOut(t, ctx)
	demoSignIn(t, ctx, origin, user, password)
	if passkeyOK {
		waitStep(t, ctx, "twofold-verify", "passkey")
		run(t, ctx, "use the app instead", shadow[bool]("twofold-verify", `(root.querySelector("button[data-mode=code]").click(), true)`))
	}
	waitStep(t, ctx, "twofold-verify", "code")
	typeCode(t, ctx, "twofold-verify", code(t, secret, time.Now().Add(60*time.Second)))
	if got := waitAnswer(t, ctx, "twofold-verify", "code"); got != "code" {
		t.Fatalf("the lost phone's code was accepted (%s)", got)
	}
	typeCode(t, ctx, "twofold-verify", code(t, newSecret, time.Now().Add(30*time.Second)))
	demoAccount(t, ctx, factors)
}

// demoAuthenticator gives the tab a platform authenticator (user verification, resident
// keys, presence simulated).
func demoAuthenticator(t *testing.T, ctx context.Context) webauthn.AuthenticatorID {
	t.Helper()
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	r, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
		Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true,
		HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return r.AuthenticatorID
}

func demoCredentials(t *testing.T, ctx context.Context, id webauthn.AuthenticatorID) []*webauthn.Credential {
	t.Helper()
	r, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
	if err != nil {
		t.Fatal(err)
	}
	return r.Credentials
}

// demoErrors picks the error lines out of the processes' logs.
func demoErrors(logs string) string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "ERROR") || strings.Contains(l, "WARN") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
