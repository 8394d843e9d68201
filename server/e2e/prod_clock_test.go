package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/clockcheck/sntptest"
	"github.com/twofold-dev/twofold/server/internal/serve"
)

// A verifier whose clock is a step behind learns it from the codes people type: most of
// them belong to the step after its own. /readyz stays 200 but warns, and /metrics says
// by how much; the NTP server the operator named says so too.
func TestClock_VerifierBehind_InferredFromAcceptedCodes_ReadyzWarnsAndMetric(t *testing.T) {
	for _, tc := range []struct {
		name     string
		behind   time.Duration // how far the verifier's clock is behind the phones'
		ntpSkew  time.Duration // 0: no --ntp
		warn     []string
		noWarn   bool
		estimate string
	}{
		{"on time", 0, 0, nil, true, "twofold_clock_offset_estimate_seconds 0\n"},
		{"a step behind", 30 * time.Second, 0, []string{"behind", "accepted codes"}, false, "twofold_clock_offset_estimate_seconds -30\n"},
		{"on time by codes, NTP disagrees", 0, 20 * time.Second, []string{"NTP server"}, false, "twofold_clock_ntp_offset_seconds -"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := startVerifierWith(t, func(c *serve.Config) {
				if tc.ntpSkew != 0 {
					c.NTP = sntptest.Server(t, tc.ntpSkew, 2)
				}
			})
			v.Clock.Advance(-tc.behind)
			for i := range 21 {
				e := v.enroll(fmt.Sprintf("u%d", i))
				// The phone shows the real time's code; the verifier's step is the one its
				// confirmation used, so the phone's next step is always fresh.
				phone := time.Now()
				if tc.behind == 0 {
					phone = v.Clock.Now().Add(30 * time.Second) // a fresh step, one ahead...
					v.Clock.Advance(30 * time.Second)           // ...which is now the verifier's too
				}
				if r := e.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, e.Secret, phone)}); r.Status != 200 {
					t.Fatalf("verify %d: %d %s", i, r.Status, r.Raw)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			var r reply
			for {
				r = v.call("GET", "/readyz", "", "", nil)
				if r.Status != 200 {
					t.Fatalf("readyz %d %s: a clock warning must not make the verifier unready", r.Status, r.Raw)
				}
				if tc.noWarn || r.str("status") == "warning" || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond) // the NTP check runs in the background
			}
			warnings, _ := r.Body["warnings"].(map[string]any)
			clockWarning, _ := warnings["clock"].(string)
			if tc.noWarn {
				if r.str("status") != "ok" || clockWarning != "" {
					t.Fatalf("readyz %s, want ok", r.Raw)
				}
			} else {
				if r.str("status") != "warning" {
					t.Fatalf("readyz %s, want status warning", r.Raw)
				}
				for _, w := range tc.warn {
					if !strings.Contains(clockWarning, w) {
						t.Errorf("clock warning %q lacks %q", clockWarning, w)
					}
				}
			}
			if m := v.call("GET", "/metrics", "", "", nil); !strings.Contains(string(m.Raw), tc.estimate) {
				t.Errorf("metrics lack %q:\n%s", tc.estimate, m.Raw)
			}
		})
	}
}
