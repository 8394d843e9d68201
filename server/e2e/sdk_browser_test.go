package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/mfa"
	"github.com/twofold-dev/twofold/server/internal/serve"
)

// The browser SDK end to end: the real verifier on loopback, the SDK built from this tree
// (twofold.wasm, the Go runtime glue, the TypeScript package) served with a test page by a
// small HTTP server, and headless Chromium driving it.

// buildSDK builds what `make wasm` builds into a temporary directory, so the tests always
// exercise the current source.
func buildSDK(t testing.TB) string {
	t.Helper()
	var sdkErr error
	sdkDir := t.TempDir()
	func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir := sdkDir
		run := func(name string, env []string, args ...string) error {
			cmd := exec.Command(name, args...)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
			}
			return nil
		}
		tsc := filepath.Join(root, "sdk-js", "node_modules", ".bin", "tsc")
		if _, err := os.Stat(tsc); err != nil {
			sdkErr = fmt.Errorf("the SDK's npm packages are missing (run `make test`, which runs npm ci): %v", err)
			return
		}
		goroot, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			sdkErr = err
			return
		}
		glue, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "wasm_exec.js"))
		if err != nil {
			sdkErr = err
			return
		}
		if sdkErr = os.WriteFile(filepath.Join(dir, "wasm_exec.js"), glue, 0o644); sdkErr != nil {
			return
		}
		if sdkErr = run("go", []string{"GOOS=js", "GOARCH=wasm"}, "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "twofold.wasm"), "./wasm"); sdkErr != nil {
			return
		}
		sdkErr = run(tsc, nil, "-p", "sdk-js/tsconfig.json", "--outDir", dir)
	}()
	if sdkErr != nil {
		t.Fatal(sdkErr)
	}
	return sdkDir
}

// testPage is the test page: it loads the SDK, puts one component on the page, and records
// the events it dispatches (and passes them to a framing page, to see a refusal in a frame).
const testPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>twofold SDK test page</title>
<script type="module">
import "/sdk/index.js";
window.__events = [];
const q = new URLSearchParams(location.search);
const el = document.createElement(q.get("el") || "twofold-enroll");
for (const name of ["twofold:token", "twofold:error", "twofold:passkey"]) {
  document.addEventListener(name, (e) => {
    const rec = { type: name, ...e.detail, qr: !!el.shadowRoot.querySelector("img.qr") };
    window.__events.push(rec);
    if (window.parent !== window) window.parent.postMessage(rec, "*");
  });
}
// For the load benchmark: when the component first renders its form.
new MutationObserver((_, obs) => {
  if (["scan", "code", "refused"].includes(el.dataset.step)) { window.__rendered = performance.now(); obs.disconnect(); }
}).observe(el, { attributes: true });
// For a browser driven without DevTools (Firefox): the first settled step, posted to /report.
if (q.get("report")) new MutationObserver((_, obs) => {
  if (!["scan", "code", "refused", "failed"].includes(el.dataset.step)) return;
  obs.disconnect();
  setTimeout(() => fetch("/report", { method: "POST", body: JSON.stringify({
    id: q.get("report"), step: el.dataset.step, events: window.__events,
    alert: el.shadowRoot.querySelector("[role=alert]")?.textContent ?? "" }) }), 100);
}).observe(el, { attributes: true });
el.setAttribute("verifier", q.get("v"));
el.setAttribute("ticket", q.get("t"));
document.body.append(el);
</script></head><body></body></html>`

// framePage frames another page and records what it posts.
const framePage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>framing page</title>
<script>window.__msgs = []; addEventListener("message", (e) => window.__msgs.push({ from: e.origin, ...e.data }));</script>
</head><body><iframe id="f" width="700" height="900"></iframe>
<script>document.getElementById("f").src = new URLSearchParams(location.search).get("src");</script>
</body></html>`

// pageServer serves the built SDK under /sdk/ and the test pages, on any host name.
func pageServer(t testing.TB, dist string) (port string) {
	t.Helper()
	port, _ = reportingPageServer(t, dist)
	return port
}

// pageReport is what a test page opened with ?report=ID posts once its component settles.
type pageReport struct {
	ID     string      `json:"id"`
	Step   string      `json:"step"`
	Events []pageEvent `json:"events"`
	Alert  string      `json:"alert"`
}

// reportingPageServer is pageServer, with the reports its pages post.
func reportingPageServer(t testing.TB, dist string) (port string, reports <-chan pageReport) {
	t.Helper()
	posted := make(chan pageReport, 64)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		var rep pageReport
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&rep); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case posted <- rep:
		default: // nobody is waiting for this many
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("/sdk/", http.StripPrefix("/sdk/", http.FileServer(http.Dir(dist))))
	html := func(s string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte(s))
		}
	}
	mux.HandleFunc("/page.html", html(testPage))
	mux.HandleFunc("/frame.html", html(framePage))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, posted
}

// sdkSite is what every browser test starts from: the SDK built from this tree and served
// with the test pages on its port, a verifier, and the key of an app registered there for
// the pages' origin (http://localhost:PORT); reports are what pages opened with ?report post.
func sdkSite(t *testing.T) (v *verifier, port, key string, reports <-chan pageReport) {
	t.Helper()
	dist := buildSDK(t)
	v = startVerifier(t)
	port, reports = reportingPageServer(t, dist)
	return v, port, v.sdkApp("http://localhost:" + port), reports
}

// sdkApp registers an app whose origin is the test page's, next to the harness's app.
func (v *verifier) sdkApp(origin string) (apiKey string) {
	v.t.Helper()
	ctx := context.Background()
	env, err := serve.Open(ctx, v.cfg)
	if err != nil {
		v.t.Fatal(err)
	}
	defer env.Close()
	key, err := env.MFA.CreateApp(ctx, mfa.NewApp{ID: "sdkpage", Name: "SDK Page", Origins: []string{origin}})
	if err != nil {
		v.t.Fatal(err)
	}
	return key
}

func (v *verifier) ticketFor(apiKey, user string) string {
	v.t.Helper()
	r := v.call("POST", "/v1/tickets", "Bearer "+apiKey, "", wire.TicketRequest{User: user})
	if r.Status != 201 || r.str("ticket") == "" {
		v.t.Fatalf("ticket: %d %s", r.Status, r.Raw)
	}
	return r.str("ticket")
}

// newBrowser starts headless Chromium for the test, closed before the servers (cleanups
// run last registered first, and the browser is registered after them).
func newBrowser(t testing.TB) context.Context {
	t.Helper()
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Fatal("chromium is needed (apt-get install chromium; .ci/run does)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(mustLook("chromium")),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("headless", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// A look-alike host name that resolves to this machine.
		chromedp.Flag("host-resolver-rules", "MAP phish.test 127.0.0.1"),
		chromedp.WindowSize(1000, 1400),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	// Start the browser now, on a context without a deadline.
	if _, err := chromedp.Run(bctx, chromedp.Navigate("about:blank")); err != nil {
		cancelBrowser()
		cancelAlloc()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	return bctx
}

func mustLook(name string) string {
	p, _ := exec.LookPath(name)
	return p
}

// tab opens a new tab; script, when set, runs in every document before the page's own.
func tab(t testing.TB, browser context.Context, script string) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	// Open the tab on a context without a deadline: the target lives as long as the
	// context of the call that created it.
	if _, err := chromedp.Run(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	if script != "" {
		if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: script}); err != nil {
			t.Fatal(err)
		}
	}
	return ctx
}

// run runs an action with a bound, a guard against a hang, never a timing assertion.
func run[T any](t testing.TB, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, a)
	// Chromium swaps a page's JavaScript context when it commits a navigation; an
	// evaluation that lands in between finds the old one gone. That is the browser's
	// timing, not an answer: ask again in the new context.
	for i := 0; err != nil && strings.Contains(err.Error(), "Cannot find context with specified id") && i < 3; i++ {
		v, err = chromedp.Run(c, a)
	}
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func pageURL(host, port, el, verifierURL, ticket string) string {
	q := url.Values{"el": {el}, "v": {verifierURL}, "t": {ticket}}
	return "http://" + host + ":" + port + "/page.html?" + q.Encode()
}

// shadow evaluates expr with `root` bound to the component's shadow root and `host` to it.
func shadow[T any](sel, expr string) chromedp.Action[T] {
	return chromedp.Evaluate[T](`(() => { const host = document.querySelector(` + jsString(sel) + `); const root = host.shadowRoot; return (` + expr + `); })()`)
}

func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// waitStep waits until the component's data-step is one of steps and returns it.
func waitStep(t *testing.T, ctx context.Context, sel string, steps ...string) string {
	t.Helper()
	list := "['" + strings.Join(steps, "','") + "']"
	return run(t, ctx, "wait for "+sel+" to reach "+list, chromedp.Poll[string](
		`(() => { const el = document.querySelector(`+jsString(sel)+`); const s = el && el.dataset.step; return `+list+`.includes(s) ? s : false; })()`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(45*time.Second)))
}

// waitAnswer waits, after a code was typed, for the component to settle: a step other than
// the one waiting for input and the one sending, or that one again with an error shown.
func waitAnswer(t *testing.T, ctx context.Context, sel, input string) string {
	t.Helper()
	return run(t, ctx, "wait for "+sel+" to answer", chromedp.Poll[string](
		`(() => { const el = document.querySelector(`+jsString(sel)+`); const s = el.dataset.step; return s !== "confirming" && s !== "verifying" && (s !== `+jsString(input)+` || el.dataset.error) ? s : false; })()`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(45*time.Second)))
}

// decodeQR screenshots the QR image on the page and decodes it with zbarimg.
func decodeQR(t *testing.T, ctx context.Context) string {
	t.Helper()
	type rect struct{ X, Y, W, H float64 }
	r := run(t, ctx, "QR image box", shadow[rect]("twofold-enroll", `(() => { const img = root.querySelector("img.qr"); img.scrollIntoView(); const b = img.getBoundingClientRect(); return { X: b.x, Y: b.y, W: b.width, H: b.height }; })()`))
	if r.W < 100 || r.H < 100 {
		t.Fatalf("the QR image is %vx%v px", r.W, r.H)
	}
	shot, err := chromedp.Call(ctx, page.CaptureScreenshot, page.CaptureScreenshotParams{
		Clip: &page.Viewport{X: r.X - 8, Y: r.Y - 8, Width: r.W + 16, Height: r.H + 16, Scale: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "qr.png")
	if err := os.WriteFile(file, shot.Data, 0o644); err != nil {
		t.Fatal(err)
	}
	zbar, err := exec.LookPath("zbarimg")
	if err != nil {
		t.Fatal("zbarimg is needed (apt-get install zbar-tools; .ci/run does)")
	}
	out, err := exec.Command(zbar, "--raw", "-q", "-Sdisable", "-Sqrcode.enable", file).Output()
	if err != nil {
		t.Fatalf("zbarimg found no QR code in the screenshot (%s): %v", file, err)
	}
	return strings.TrimSpace(string(out))
}

// typeCode focuses the component's code field and types code and Enter, as a person
// using only the keyboard would.
func typeCode(t *testing.T, ctx context.Context, sel, code string) {
	t.Helper()
	run(t, ctx, "focus the code field", shadow[bool](sel, `(root.querySelector("input[autocomplete=one-time-code]").focus(), true)`))
	run(t, ctx, "type the code", chromedp.KeyEvent(code+"\r"))
}

type pageEvent struct {
	Type    string `json:"type"`
	Token   string `json:"token"`
	Code    string `json:"code"`
	Message string `json:"message"`
	QR      bool   `json:"qr"`
	From    string `json:"from"`
}

func TestSDK_Browser(t *testing.T) {
	v, port, key, _ := sdkSite(t)
	origin := "http://localhost:" + port
	browser := newBrowser(t)

	t.Run("AllowedOrigin_EnrollsFromTheQRThenVerifies", func(t *testing.T) {
		ctx := tab(t, browser, "")
		run(t, ctx, "open the page", chromedp.Navigate(pageURL("localhost", port, "twofold-enroll", v.URL, v.ticketFor(key, "alice"))))
		if got := waitStep(t, ctx, "twofold-enroll", "scan", "failed", "refused"); got != "scan" {
			t.Fatalf("the enrollment is at %q: %s", got, run(t, ctx, "error", shadow[string]("twofold-enroll", `root.querySelector("[role=alert]").textContent`)))
		}
		if c := run(t, ctx, "clock", shadow[string]("twofold-enroll", `host.dataset.clock`)); c != "ok" {
			t.Errorf("a true clock shows the clock warning (%s)", c)
		}
		// What the page offers for manual entry and for "open in app".
		link := run(t, ctx, "otpauth link", shadow[string]("twofold-enroll", `root.querySelector("a[href^='otpauth:']").getAttribute("href")`))
		secret := run(t, ctx, "secret", shadow[string]("twofold-enroll", `root.querySelector("code.secret").textContent.replace(/\s/g, "")`))
		src := run(t, ctx, "QR source", shadow[string]("twofold-enroll", `root.querySelector("img.qr").getAttribute("src")`))
		if !strings.HasPrefix(src, "data:image/svg+xml") {
			t.Errorf("the QR is not an <img> with an SVG data URL: %.60s", src)
		}
		if n := run(t, ctx, "inline svg", shadow[int]("twofold-enroll", `root.querySelectorAll("svg").length`)); n != 0 {
			t.Errorf("the QR is drawn as inline markup (%d <svg>)", n)
		}

		// A reload in the middle (with a fresh ticket, as the app would hand out) resumes the
		// same enrollment instead of starting one the person's app does not know.
		run(t, ctx, "reload", chromedp.Navigate(pageURL("localhost", port, "twofold-enroll", v.URL, v.ticketFor(key, "alice"))))
		waitStep(t, ctx, "twofold-enroll", "scan")
		if again := run(t, ctx, "secret after reload", shadow[string]("twofold-enroll", `root.querySelector("code.secret").textContent.replace(/\s/g, "")`)); again != secret {
			t.Fatalf("a reload started a new enrollment (secret %s, was %s)", again, secret)
		}

		uri := decodeQR(t, ctx)
		if uri != link {
			t.Fatalf("the QR carries %q, the page offers %q", uri, link)
		}
		u, err := url.Parse(uri)
		if err != nil || u.Scheme != "otpauth" || u.Query().Get("secret") != secret {
			t.Fatalf("QR URI %q does not carry the secret %q shown for manual entry", uri, secret)
		}

		// Accessibility basics of the code field.
		attrs := run(t, ctx, "code field", shadow[map[string]string]("twofold-enroll", `(() => { const i = root.querySelector("input#code"); const l = root.querySelector("label[for=code]"); return { ac: i.autocomplete, im: i.inputMode, label: l ? l.textContent : "", live: root.querySelector("[aria-live]") ? "yes" : "" }; })()`))
		if attrs["ac"] != "one-time-code" || attrs["im"] != "numeric" || attrs["label"] == "" || attrs["live"] != "yes" {
			t.Errorf("code field attributes %v", attrs)
		}

		typeCode(t, ctx, "twofold-enroll", code(t, u.Query().Get("secret"), v.Clock.Now()))
		if got := waitAnswer(t, ctx, "twofold-enroll", "scan"); got != "recovery" {
			t.Fatalf("after the code the enrollment is at %q: %s", got, run(t, ctx, "error", shadow[string]("twofold-enroll", `root.querySelector("[role=alert]").textContent`)))
		}
		codes := run(t, ctx, "recovery codes", shadow[[]string]("twofold-enroll", `[...root.querySelectorAll("[part=recovery-codes] li")].map((li) => li.textContent)`))
		if len(codes) != 10 {
			t.Fatalf("%d recovery codes shown: %v", len(codes), codes)
		}
		if run(t, ctx, "continue disabled", shadow[bool]("twofold-enroll", `root.querySelector("button[disabled]") !== null`)) != true {
			t.Error("Continue is enabled before \"I saved them\" is checked")
		}
		run(t, ctx, "I saved them", shadow[bool]("twofold-enroll", `(root.querySelector("#saved").click(), [...root.querySelectorAll("button")].find((b) => !b.disabled && b.textContent === "Continue").click(), true)`))
		waitStep(t, ctx, "twofold-enroll", "done")
		evs := run(t, ctx, "events", chromedp.Evaluate[[]pageEvent](`window.__events`))
		if len(evs) != 1 || evs[0].Type != "twofold:token" || strings.Count(evs[0].Token, ".") != 2 {
			t.Fatalf("events after enrolling: %+v", evs)
		}

		// Verify with the authenticator: the next step's code, as the confirming one is spent.
		ctx = tab(t, browser, "")
		run(t, ctx, "open the verify page", chromedp.Navigate(pageURL("localhost", port, "twofold-verify", v.URL, v.ticketFor(key, "alice"))))
		if got := waitStep(t, ctx, "twofold-verify", "code", "refused"); got != "code" {
			t.Fatalf("verify page at %q", got)
		}
		typeCode(t, ctx, "twofold-verify", code(t, u.Query().Get("secret"), v.Clock.Now().Add(30*time.Second)))
		if got := waitAnswer(t, ctx, "twofold-verify", "code"); got != "done" {
			t.Fatalf("verify: %s", run(t, ctx, "error", shadow[string]("twofold-verify", `root.querySelector("[role=alert]").textContent`)))
		}
		run(t, ctx, "not now to the passkey offer", shadow[bool]("twofold-verify", `(root.querySelector("[part=upgrade] button.secondary").click(), true)`))
		evs = run(t, ctx, "events", chromedp.Evaluate[[]pageEvent](`window.__events`))
		if len(evs) != 1 || evs[0].Type != "twofold:token" || strings.Count(evs[0].Token, ".") != 2 {
			t.Fatalf("events after verifying: %+v", evs)
		}

		// The same ticket, now past a second factor, manages the user's factors through the
		// SDK against the real verifier.
		type managed struct {
			N       int    `json:"n"`
			Type    string `json:"type"`
			Codes   int    `json:"codes"`
			Refused string `json:"refused"`
		}
		got := run(t, ctx, "factor calls", chromedp.Evaluate[managed](`(async () => {
  const { Twofold } = await import("/sdk/index.js");
  const q = new URLSearchParams(location.search);
  const tf = await Twofold.load({ verifier: q.get("v"), ticket: q.get("t") });
  const list = await tf.listFactors();
  const codes = await tf.recovery.regenerate();
  let refused = "";
  try { await tf.removeFactor(list[0].id); } catch (e) { refused = e.code; }
  return { n: list.length, type: list[0].type, codes: codes.length, refused };
})()`, chromedp.EvalAwaitPromise))
		if got != (managed{N: 1, Type: "totp", Codes: 10, Refused: wire.CodeLastFactor}) {
			t.Errorf("listFactors, recovery.regenerate and removeFactor of the only factor gave %+v", got)
		}
	})

	// refused waits for the component to give up and checks it said origin_not_allowed and
	// drew no QR code.
	refused := func(t *testing.T, ctx context.Context) {
		t.Helper()
		if got := waitStep(t, ctx, "twofold-enroll", "refused", "scan"); got != "refused" {
			t.Fatalf("a page on a foreign origin reached %q", got)
		}
		evs := run(t, ctx, "events", chromedp.Evaluate[[]pageEvent](`window.__events`))
		if len(evs) != 1 || evs[0].Code != wire.CodeOriginNotAllowed || evs[0].QR {
			t.Fatalf("events: %+v", evs)
		}
		if n := run(t, ctx, "images", shadow[int]("twofold-enroll", `root.querySelectorAll("img").length`)); n != 0 {
			t.Fatal("a QR code was drawn on a refused page")
		}
	}

	// A reload while the recovery codes are on screen brings a new ticket: the codes show
	// again, and the person finishes with a code from the new authenticator, so the token
	// the page gets is the new ticket's (its nonce), not the old one's.
	t.Run("ReloadAtRecoveryCodes_FinishesWithACodeForTheNewTicket", func(t *testing.T) {
		ctx := tab(t, browser, "")
		run(t, ctx, "open the page", chromedp.Navigate(pageURL("localhost", port, "twofold-enroll", v.URL, v.ticketFor(key, "ruth"))))
		waitStep(t, ctx, "twofold-enroll", "scan")
		secret := run(t, ctx, "secret", shadow[string]("twofold-enroll", `root.querySelector("code.secret").textContent.replace(/\s/g, "")`))
		typeCode(t, ctx, "twofold-enroll", code(t, secret, v.Clock.Now()))
		if got := waitAnswer(t, ctx, "twofold-enroll", "scan"); got != "recovery" {
			t.Fatalf("after the code the enrollment is at %q", got)
		}
		codesOnScreen := `[...root.querySelectorAll("[part=recovery-codes] li")].map((li) => li.textContent)`
		shown := run(t, ctx, "recovery codes", shadow[[]string]("twofold-enroll", codesOnScreen))

		r := v.call("POST", "/v1/tickets", "Bearer "+key, "", wire.TicketRequest{User: "ruth", Nonce: "after-reload"})
		run(t, ctx, "reload", chromedp.Navigate(pageURL("localhost", port, "twofold-enroll", v.URL, r.str("ticket"))))
		waitStep(t, ctx, "twofold-enroll", "recovery")
		if again := run(t, ctx, "codes after reload", shadow[[]string]("twofold-enroll", codesOnScreen)); !slices.Equal(again, shown) {
			t.Fatalf("after the reload the page shows %v, before %v", again, shown)
		}
		if kept := run(t, ctx, "session storage", chromedp.Evaluate[string](`JSON.stringify(Object.values(sessionStorage))`)); strings.Contains(kept, "eyJ") {
			t.Errorf("sessionStorage holds a token: %.80s", kept)
		}
		run(t, ctx, "I saved them", shadow[bool]("twofold-enroll", `(root.querySelector("#saved").click(), [...root.querySelectorAll("button")].find((b) => !b.disabled && b.textContent === "Continue").click(), true)`))
		waitStep(t, ctx, "twofold-enroll", "finish")
		if evs := run(t, ctx, "events", chromedp.Evaluate[[]pageEvent](`window.__events`)); len(evs) != 0 {
			t.Fatalf("a token was handed out before the new ticket passed a code: %+v", evs)
		}
		typeCode(t, ctx, "twofold-enroll", code(t, secret, v.Clock.Now().Add(30*time.Second)))
		if got := waitAnswer(t, ctx, "twofold-enroll", "finish"); got != "done" {
			t.Fatalf("finishing: at %q: %s", got, run(t, ctx, "error", shadow[string]("twofold-enroll", `root.querySelector("[role=alert]").textContent`)))
		}
		evs := run(t, ctx, "events", chromedp.Evaluate[[]pageEvent](`window.__events`))
		if len(evs) != 1 || evs[0].Type != "twofold:token" {
			t.Fatalf("events after finishing: %+v", evs)
		}
		if claims := joseVerify(t, v, "sdkpage", evs[0].Token); claims["nonce"] != "after-reload" || claims["sub"] != "ruth" {
			t.Fatalf("the token's claims %v: want the new ticket's nonce", claims)
		}
	})

	// With the verifier failing behind its proxy the page cannot tell that from a foreign
	// origin, so it says both and offers to try again, which works once the verifier is back.
	t.Run("VerifierFailingBehindProxy_TryAgainLoadsOnceItIsBack", func(t *testing.T) {
		var down atomic.Bool
		down.Store(true)
		target, _ := url.Parse(v.URL)
		proxy := httputil.NewSingleHostReverseProxy(target)
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if down.Load() {
				http.Error(w, "bad gateway", http.StatusBadGateway)
				return
			}
			proxy.ServeHTTP(w, r)
		}))
		t.Cleanup(front.Close)
		ctx := tab(t, browser, "")
		run(t, ctx, "open the page", chromedp.Navigate(pageURL("localhost", port, "twofold-enroll", front.URL, v.ticketFor(key, "vera"))))
		waitStep(t, ctx, "twofold-enroll", "refused")
		if msg := run(t, ctx, "error", shadow[string]("twofold-enroll", `root.querySelector("[role=alert]").textContent`)); !strings.Contains(msg, "try again") {
			t.Errorf("the message for a failing verifier does not say to try again: %q", msg)
		}
		down.Store(false)
		run(t, ctx, "try again", shadow[bool]("twofold-enroll", `([...root.querySelectorAll("button")].find((b) => b.textContent === "Try again").click(), true)`))
		if got := waitStep(t, ctx, "twofold-enroll", "scan", "refused"); got != "scan" {
			t.Fatalf("after the verifier came back, Try again leads to %q", got)
		}
	})

	// While a code is being checked nothing else can be pressed, the links to the other
	// ways in included; a wrong answer gives them back.
	t.Run("CodeInFlight_EveryButtonWaits", func(t *testing.T) {
		secret := v.enrollTOTP(key, origin, "walt")
		hold := make(chan struct{})
		release := sync.OnceFunc(func() { close(hold) })
		target, _ := url.Parse(v.URL)
		proxy := httputil.NewSingleHostReverseProxy(target)
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "POST" && r.URL.Path == "/v1/totp/verify" {
				<-hold
			}
			proxy.ServeHTTP(w, r)
		}))
		t.Cleanup(front.Close)
		t.Cleanup(release) // before front.Close, which waits for the held request
		ctx := tab(t, browser, "")
		run(t, ctx, "open the verify page", chromedp.Navigate(pageURL("localhost", port, "twofold-verify", front.URL, v.ticketFor(key, "walt"))))
		waitStep(t, ctx, "twofold-verify", "code")
		typeCode(t, ctx, "twofold-verify", wrongCode(t, secret, v.Clock.Now()))
		waitStep(t, ctx, "twofold-verify", "verifying")
		buttons := `[...root.querySelectorAll("button")].map((b) => b.textContent + (b.disabled ? ":off" : ":on"))`
		during := run(t, ctx, "buttons while checking", shadow[[]string]("twofold-verify", buttons))
		release()
		if got := waitAnswer(t, ctx, "twofold-verify", "code"); got != "code" {
			t.Fatalf("a wrong code ends at %q", got)
		}
		after := run(t, ctx, "buttons after", shadow[[]string]("twofold-verify", buttons))
		if want := []string{"Checking…:off", "Use a recovery code instead:off"}; !slices.Equal(during, want) {
			t.Errorf("while a code is checked the buttons are %v, want %v", during, want)
		}
		if want := []string{"Verify:on", "Use a recovery code instead:on"}; !slices.Equal(after, want) {
			t.Errorf("after a wrong code the buttons are %v, want %v", after, want)
		}
	})

	// One <twofold-enroll> given a new ticket (another person at a shared screen) runs the
	// new enrollment to its own token.
	t.Run("NewTicketOnTheSameElement_EnrollsAndEmitsAgain", func(t *testing.T) {
		ctx := tab(t, browser, "")
		run(t, ctx, "open the page", chromedp.Navigate(pageURL("localhost", port, "twofold-enroll", v.URL, v.ticketFor(key, "xena"))))
		enrollHere := func(who string) {
			t.Helper()
			waitStep(t, ctx, "twofold-enroll", "scan")
			secret := run(t, ctx, "secret", shadow[string]("twofold-enroll", `root.querySelector("code.secret").textContent.replace(/\s/g, "")`))
			typeCode(t, ctx, "twofold-enroll", code(t, secret, v.Clock.Now()))
			if got := waitAnswer(t, ctx, "twofold-enroll", "scan"); got != "recovery" {
				t.Fatalf("%s: after the code at %q", who, got)
			}
			run(t, ctx, "I saved them", shadow[bool]("twofold-enroll", `(root.querySelector("#saved").click(), [...root.querySelectorAll("button")].find((b) => !b.disabled && b.textContent === "Continue").click(), true)`))
			waitStep(t, ctx, "twofold-enroll", "done")
		}
		enrollHere("xena")
		run(t, ctx, "a new ticket", chromedp.Evaluate[bool](`(document.querySelector("twofold-enroll").setAttribute("ticket", `+jsString(v.ticketFor(key, "yuri"))+`), true)`))
		waitStep(t, ctx, "twofold-enroll", "loading", "scan")
		enrollHere("yuri")
		evs := run(t, ctx, "events", chromedp.Evaluate[[]pageEvent](`window.__events`))
		if len(evs) != 2 || evs[0].Type != "twofold:token" || evs[1].Type != "twofold:token" {
			t.Fatalf("events after two enrollments: %+v, want a token for each", evs)
		}
		if a, b := joseVerify(t, v, "sdkpage", evs[0].Token)["sub"], joseVerify(t, v, "sdkpage", evs[1].Token)["sub"]; a != "xena" || b != "yuri" {
			t.Fatalf("tokens for %v and %v", a, b)
		}
	})

	t.Run("ForeignOrigin_LookAlikeHost_Refused", func(t *testing.T) {
		ctx := tab(t, browser, "")
		run(t, ctx, "open the page", chromedp.Navigate(pageURL("phish.test", port, "twofold-enroll", v.URL, v.ticketFor(key, "bob"))))
		refused(t, ctx)
	})

	t.Run("ForeignOrigin_OtherLocalhostName_Refused", func(t *testing.T) {
		ctx := tab(t, browser, "")
		run(t, ctx, "open the page", chromedp.Navigate(pageURL("evil.localhost", port, "twofold-enroll", v.URL, v.ticketFor(key, "bob"))))
		refused(t, ctx)
	})

	t.Run("FramedByForeignOrigin_Refused", func(t *testing.T) {
		ctx := tab(t, browser, "")
		inner := pageURL("localhost", port, "twofold-enroll", v.URL, v.ticketFor(key, "bob"))
		run(t, ctx, "open the framing page", chromedp.Navigate("http://evil.localhost:"+port+"/frame.html?"+url.Values{"src": {inner}}.Encode()))
		msgs := run(t, ctx, "wait for the framed page's verdict", chromedp.Poll[[]pageEvent](`window.__msgs.length > 0 && window.__msgs`,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(45*time.Second)))
		if len(msgs) != 1 || msgs[0].Type != "twofold:error" || msgs[0].Code != wire.CodeOriginNotAllowed || msgs[0].QR || msgs[0].From != origin {
			t.Fatalf("the framed page said %+v", msgs)
		}
		if !strings.Contains(msgs[0].Message, "evil.localhost") {
			t.Errorf("the refusal does not name the framing origin: %q", msgs[0].Message)
		}
	})

	t.Run("DeviceClockTwoMinutesAhead_Warns", func(t *testing.T) {
		// Every Date in the page, and so the Go engine's wall clock, runs 2 minutes ahead.
		ctx := tab(t, browser, `(() => {
  const Real = Date, off = 120000;
  class Shifted extends Real {
    constructor(...a) { if (a.length === 0) super(Real.now() + off); else super(...a); }
    static now() { return Real.now() + off; }
  }
  globalThis.Date = Shifted;
})();`)
		run(t, ctx, "open the page", chromedp.Navigate(pageURL("localhost", port, "twofold-enroll", v.URL, v.ticketFor(key, "carol"))))
		waitStep(t, ctx, "twofold-enroll", "scan", "failed", "refused")
		got := run(t, ctx, "clock warning", shadow[map[string]string]("twofold-enroll", `({ clock: host.dataset.clock, text: root.querySelector("[part=clock-warning]").textContent })`))
		if got["clock"] != "ahead" || !strings.Contains(got["text"], "2 minutes ahead") {
			t.Fatalf("clock warning: %v", got)
		}
	})
}
