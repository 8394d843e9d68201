package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// answeredScript marks, in the page, that the verifier's answer to a path containing the
// given part was read and every task it set off has run: the engine's answer to the
// component comes in microtasks after the body is parsed, and this flag only after them.
func answeredScript(part string) string {
	return `(() => {
  const json = Response.prototype.json;
  Response.prototype.json = function () {
    const p = json.call(this);
    if (this.url.includes(` + jsString(part) + `)) p.finally(() => setTimeout(() => setTimeout(() => (window.__answered = true), 100), 0));
    return p;
  };
})();`
}

// heldProxy fronts the verifier and holds every POST whose path ends in suffix until
// release is called.
func heldProxy(t *testing.T, target string, suffix string) (front string, release func()) {
	t.Helper()
	hold := make(chan struct{})
	release = sync.OnceFunc(func() { close(hold) })
	u, _ := url.Parse(target)
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" && strings.HasSuffix(r.URL.Path, suffix) {
			<-hold
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(release) // before srv.Close, which waits for the held request
	return srv.URL, release
}

// setTicket sets the ticket of the page's element, as an app does for the next person, or
// with "" at a sign-out.
func setTicket(t *testing.T, ctx context.Context, what, element, ticket string) {
	t.Helper()
	run(t, ctx, what, chromedp.Evaluate[bool](`(document.querySelector(`+jsString(element)+`).setAttribute("ticket", `+jsString(ticket)+`), true)`))
}

// answerHeld lets heldProxy's request through and waits until the page has read its answer
// (answeredScript).
func answerHeld(t *testing.T, ctx context.Context, release func(), what string) {
	t.Helper()
	release()
	run(t, ctx, what, chromedp.Poll[bool](`window.__answered === true`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(45*time.Second)))
}

// A component handed a new ticket (the next person at a shared screen) while the last
// person's code was still being checked must not show that person's answer: not their
// recovery codes, not their token.
func TestSDK_NewTicketWhileACodeIsChecked_TheOldAnswerIsNotShown(t *testing.T) {
	v, port, key, _ := sdkSite(t)
	origin := "http://localhost:" + port
	browser := newBrowser(t)

	t.Run("Enroll", func(t *testing.T) {
		front, release := heldProxy(t, v.URL, "/confirm")
		ctx := tab(t, browser, answeredScript("/confirm"))
		run(t, ctx, "open the page", chromedp.Navigate(pageURL("localhost", port, "twofold-enroll", front, v.ticketFor(key, "amy"))))
		waitStep(t, ctx, "twofold-enroll", "scan")
		secretOnScreen := `root.querySelector("code.secret").textContent.replace(/\s/g, "")`
		amy := run(t, ctx, "amy's secret", shadow[string]("twofold-enroll", secretOnScreen))
		typeCode(t, ctx, "twofold-enroll", code(t, amy, v.Clock.Now()))
		waitStep(t, ctx, "twofold-enroll", "confirming")

		setTicket(t, ctx, "the next person's ticket", "twofold-enroll", v.ticketFor(key, "ben"))
		waitStep(t, ctx, "twofold-enroll", "scan")
		ben := run(t, ctx, "ben's secret", shadow[string]("twofold-enroll", secretOnScreen))
		if ben == amy {
			t.Fatal("ben is shown amy's secret")
		}
		answerHeld(t, ctx, release, "wait for amy's answer")

		type screen struct {
			Step   string   `json:"step"`
			Secret string   `json:"secret"`
			Codes  []string `json:"codes"`
			Events int      `json:"events"`
		}
		got := run(t, ctx, "what ben sees", shadow[screen]("twofold-enroll", `({
  step: host.dataset.step,
  secret: root.querySelector("code.secret")?.textContent.replace(/\s/g, "") ?? "",
  codes: [...root.querySelectorAll("[part=recovery-codes] li")].map((li) => li.textContent),
  events: window.__events.length,
})`))
		if got.Step != "scan" || got.Secret != ben || len(got.Codes) != 0 || got.Events != 0 {
			t.Fatalf("after amy's answer came in, ben's screen is %+v; want ben's scan step (secret %s), no recovery codes, no event", got, ben)
		}
	})

	t.Run("Verify", func(t *testing.T) {
		cleo := v.enrollTOTP(key, origin, "cleo")
		v.enrollTOTP(key, origin, "dan")
		front, release := heldProxy(t, v.URL, "/v1/totp/verify")
		ctx := tab(t, browser, answeredScript("/v1/totp/verify"))
		run(t, ctx, "open the page", chromedp.Navigate(pageURL("localhost", port, "twofold-verify", front, v.ticketFor(key, "cleo"))))
		waitStep(t, ctx, "twofold-verify", "code")
		typeCode(t, ctx, "twofold-verify", code(t, cleo, v.Clock.Now().Add(30*time.Second)))
		waitStep(t, ctx, "twofold-verify", "verifying")

		setTicket(t, ctx, "the next person's ticket", "twofold-verify", v.ticketFor(key, "dan"))
		waitStep(t, ctx, "twofold-verify", "code")
		answerHeld(t, ctx, release, "wait for cleo's answer")

		type screen struct {
			Step   string      `json:"step"`
			Input  bool        `json:"input"`
			Events []pageEvent `json:"events"`
		}
		got := run(t, ctx, "what dan sees", shadow[screen]("twofold-verify", `({
  step: host.dataset.step,
  input: root.querySelector("input[autocomplete=one-time-code]") !== null,
  events: window.__events,
})`))
		if got.Step != "code" || !got.Input || len(got.Events) != 0 {
			t.Fatalf("after cleo's answer came in, dan's screen is %+v; want dan's code form and no event", got)
		}
	})
}

// An app that takes the ticket away (a sign-out at a shared screen) takes with it what the
// last person had on screen: the secret to type into an authenticator app is gone, and so
// is the step the component was at.
func TestSDK_TicketRemoved_TheLastPersonsSecretLeavesTheScreen(t *testing.T) {
	v, port, key, _ := sdkSite(t)
	browser := newBrowser(t)
	ctx := tab(t, browser, "")
	run(t, ctx, "open the page", chromedp.Navigate(pageURL("localhost", port, "twofold-enroll", v.URL, v.ticketFor(key, "gail"))))
	waitStep(t, ctx, "twofold-enroll", "scan")
	type screen struct {
		Step string `json:"step"`
		Text string `json:"text"`
	}
	look := shadow[screen]("twofold-enroll", `({ step: host.dataset.step ?? "", text: root.querySelector("[part=body]").textContent })`)
	secret := run(t, ctx, "gail's secret", shadow[string]("twofold-enroll", `root.querySelector("code.secret").textContent`))
	if before := run(t, ctx, "the screen", look); !strings.Contains(before.Text, secret) {
		t.Fatalf("the secret %q is not on the screen before: %+v", secret, before)
	}
	setTicket(t, ctx, "the app signs out", "twofold-enroll", "")
	if after := run(t, ctx, "the screen after", look); after.Step != "" || after.Text != "" {
		t.Fatalf("after the ticket was taken away the component shows %+v, want nothing", after)
	}
}
