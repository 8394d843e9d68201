package e2e

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// The string table is the page's to fill, often from translators; a javascript: link in it
// must not become a link that runs script in the page when the person clicks it.
func TestSDK_StringTableJavascriptLink_NotAScriptLink(t *testing.T) {
	v, port, key, _ := sdkSite(t)
	browser := newBrowser(t)

	ctx := tab(t, browser, "")
	run(t, ctx, "open the page", chromedp.Navigate(sdkPage(port, v.URL, v.ticketFor(key, "lena"))))
	run(t, ctx, "a translated table with a javascript: link", chromedp.Evaluate[bool](`(async () => {
  const { setStrings, strings } = await import("/sdk/index.js");
  setStrings({ apps: [{ name: "Evil App", href: "javascript:window.__ran = true" }, { name: "Padded", href: " JavaScript:window.__ran = true" }, ...strings.apps] });
  const q = new URLSearchParams(location.search);
  const el = document.createElement("twofold-enroll");
  el.setAttribute("verifier", q.get("v"));
  el.setAttribute("ticket", q.get("t"));
  document.body.append(el);
  return true;
})()`, chromedp.EvalAwaitPromise))
	waitStep(t, ctx, "twofold-enroll", "scan")
	type link struct {
		Name string `json:"name"`
		Href string `json:"href"`
	}
	links := run(t, ctx, "the app links", shadow[[]link]("twofold-enroll", `[...root.querySelectorAll(".apps a")].map((a) => ({ name: a.textContent, href: a.getAttribute("href") ?? "" }))`))
	if len(links) < 3 || links[0].Name != "Evil App" || links[1].Name != "Padded" || links[2].Href == "" {
		t.Fatalf("app links %+v", links)
	}
	run(t, ctx, "click them", shadow[bool]("twofold-enroll", `([...root.querySelectorAll(".apps a")].slice(0, 2).forEach((a) => a.click()), true)`))
	if ran := run(t, ctx, "did the link run", chromedp.Evaluate[bool](`window.__ran === true`)); ran || links[0].Href != "" || links[1].Href != "" {
		t.Fatalf("a javascript: link from the string table is live (ran: %v, links %+v)", ran, links)
	}
	if otp := run(t, ctx, "otpauth link", shadow[string]("twofold-enroll", `root.querySelector("a[href^='otpauth:']")?.getAttribute("href") ?? ""`)); otp == "" {
		t.Error("the verifier's otpauth: link is gone")
	}
}
