package e2e

import (
	bin "encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
)

// ntpResponder answers SNTP on loopback UDP with a clock ahead of the real one by skew.
func ntpResponder(t *testing.T, skew time.Duration) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	epoch := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	ts := func() uint64 {
		d := time.Now().Add(skew).Sub(epoch)
		return uint64(d/time.Second)<<32 | uint64(d%time.Second)<<32/uint64(time.Second)
	}
	go func() {
		buf := make([]byte, 512)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 48 {
				continue
			}
			res := make([]byte, 48)
			res[0], res[1] = 4<<3|4, 2
			copy(res[24:32], buf[40:48])
			bin.BigEndian.PutUint64(res[32:], ts())
			bin.BigEndian.PutUint64(res[40:], ts())
			pc.WriteTo(res, addr)
		}
	}()
	return pc.LocalAddr().String()
}

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
			v := startVerifierWith(t, func(c *verifierConfig) {
				if tc.ntpSkew != 0 {
					c.NTP = ntpResponder(t, tc.ntpSkew)
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
