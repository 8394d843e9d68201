package e2e

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
)

// TestSDK_Firefox runs the SDK's origin guard in real Firefox, a second engine beside
// Chromium: the page on its own origin, framed by itself, framed by another site, with
// another site's frame between it and its own top page, and on another site's origin.
// Firefox is driven without DevTools: it opens every case in a tab of its own and each
// page posts where its component settled. Firefox 153 has location.ancestorOrigins; with
// it switched off (as in older releases) the guard relies on the JS loader's walk up the
// frames, so both ways are run.
func TestSDK_Firefox(t *testing.T) {
	ff, err := exec.LookPath("firefox-esr")
	if err != nil {
		t.Fatal("firefox-esr is needed (apt-get install firefox-esr; .ci/run does)")
	}
	v, port, key, reports := sdkSite(t)
	own, foreign := "http://localhost:"+port, "http://evil.localhost:"+port
	framed := func(top, src string) string { return top + "/frame.html?" + url.Values{"src": {src}}.Encode() }

	for _, ancestorOrigins := range []bool{true, false} {
		t.Run(fmt.Sprintf("ancestorOrigins=%v", ancestorOrigins), func(t *testing.T) {
			page := func(host, id string) string {
				return pageURL(host, port, "twofold-enroll", v.URL, v.ticketFor(key, fmt.Sprintf("ff-%v-%s", ancestorOrigins, id))) + "&report=" + id
			}
			// Where a refusal names the framing site, Firefox let the page learn it; the
			// loader's walk cannot read another origin's frame, so the page learns only
			// that it is framed by one it cannot check.
			framedBy := "(http://evil.localhost:" + port + ")"
			if !ancestorOrigins {
				framedBy = "cannot be checked"
			}
			cases := []struct {
				id, url  string
				step     string // where the component settles
				mentions string // in the refusal's message
			}{
				{"own", page("localhost", "own"), "scan", ""},
				{"framed-by-itself", framed(own, page("localhost", "framed-by-itself")), "scan", ""},
				{"framed-by-another-site", framed(foreign, page("localhost", "framed-by-another-site")), "refused", framedBy},
				{"another-site-between", framed(own, framed(foreign, page("localhost", "another-site-between"))), "refused", framedBy},
				{"on-another-site", page("evil.localhost", "on-another-site"), "refused", "open the app from its real address"},
			}
			var urls []string
			for _, c := range cases {
				urls = append(urls, c.url)
			}
			firefox(t, ff, ancestorOrigins, urls)

			got := map[string]pageReport{}
			deadline := time.After(90 * time.Second)
			for len(got) < len(cases) {
				select {
				case r := <-reports:
					got[r.ID] = r
				case <-deadline:
					t.Fatalf("after 90 s, %d of %d pages reported: %+v", len(got), len(cases), got)
				}
			}
			for _, c := range cases {
				r := got[c.id]
				if r.Step != c.step {
					t.Errorf("%s: the component settled at %q (%q), want %q", c.id, r.Step, r.Alert, c.step)
					continue
				}
				if c.step != "refused" {
					continue
				}
				if len(r.Events) != 1 || r.Events[0].Code != wire.CodeOriginNotAllowed || r.Events[0].QR {
					t.Errorf("%s: events %+v, want one %s with no QR code shown", c.id, r.Events, wire.CodeOriginNotAllowed)
				} else if !strings.Contains(r.Events[0].Message, c.mentions) {
					t.Errorf("%s: refused with %q, want it to say %q", c.id, r.Events[0].Message, c.mentions)
				}
			}
		})
	}
}

// firefox starts headless Firefox on a fresh profile with a tab for each of urls, and
// stops it when the test ends. evil.localhost resolves to this machine, and nothing is
// fetched but what the pages ask for.
func firefox(t *testing.T, bin string, ancestorOrigins bool, urls []string) {
	t.Helper()
	profile, home := t.TempDir(), t.TempDir()
	prefs := map[string]any{
		"dom.location.ancestorOrigins.enabled":              ancestorOrigins,
		"network.dns.localDomains":                          "evil.localhost",
		"browser.shell.checkDefaultBrowser":                 false,
		"browser.startup.homepage_override.mstone":          "ignore",
		"datareporting.policy.dataSubmissionEnabled":        false,
		"datareporting.healthreport.uploadEnabled":          false,
		"toolkit.telemetry.reportingpolicy.firstRun":        false,
		"network.captive-portal-service.enabled":            false,
		"network.connectivity-service.enabled":              false,
		"browser.safebrowsing.malware.enabled":              false,
		"browser.safebrowsing.phishing.enabled":             false,
		"browser.safebrowsing.downloads.enabled":            false,
		"extensions.update.enabled":                         false,
		"app.normandy.enabled":                              false,
		"browser.region.network.url":                        "",
		"browser.search.update":                             false,
		"media.gmp-manager.url":                             "",
		"services.settings.server":                          "http://127.0.0.1:9/",
		"dom.min_background_timeout_value":                  4,
		"dom.timeout.enable_budget_timer_throttling":        false,
		"browser.tabs.loadDivertedInBackground":             false,
		"browser.sessionstore.resume_from_crash":            false,
		"toolkit.startup.max_resumed_crashes":               -1,
		"browser.aboutwelcome.enabled":                      false,
		"trailhead.firstrun.didSeeAboutWelcome":             true,
		"browser.newtabpage.activity-stream.feeds.topsites": false,
	}
	var js strings.Builder
	for k, v := range prefs {
		val := fmt.Sprint(v)
		if s, ok := v.(string); ok {
			val = fmt.Sprintf("%q", s)
		}
		fmt.Fprintf(&js, "user_pref(%q, %s);\n", k, val)
	}
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(js.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"--headless", "--no-remote", "--profile", profile}, urls...)...)
	cmd.Env = append(os.Environ(), "HOME="+home, "MOZ_HEADLESS=1", "XDG_CACHE_HOME="+filepath.Join(home, ".cache"))
	log, err := os.Create(filepath.Join(home, "firefox.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	// Firefox runs content processes of its own: stop them all with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("firefox's output:\n%s", b)
		}
	})
}
