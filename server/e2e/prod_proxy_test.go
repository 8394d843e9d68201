package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/serve"
	"github.com/twofold-dev/twofold/server/internal/store"
)

// wrongCodeFrom sends a wrong code with the given forwarding headers.
func wrongCodeFrom(t *testing.T, e enrolled, headers map[string]string) reply {
	t.Helper()
	req, _ := http.NewRequest("POST", e.v.URL+"/v1/totp/verify", jsonBody(wire.CodeRequest{Code: "000000"}))
	req.Header.Set("Authorization", "Ticket "+e.ticket)
	req.Header.Set("Origin", e.origin)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return do(t, req)
}

// auditIPs lists the addresses of user's failed attempts as the audit trail has them.
func auditIPs(t *testing.T, v *verifier, user string) []string {
	t.Helper()
	env, err := serve.Open(context.Background(), v.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	var ips []string
	err = env.Store.AuditRecords(context.Background(), store.AuditFilter{User: user}, func(r store.AuditRecord) error {
		if r.Kind == "failed" {
			ips = append(ips, r.IP)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ips
}

// A forwarding header from a peer that is not a trusted proxy changes nothing: every
// attempt counts against the peer's own budget and is audited under the peer's address.
func TestProxies_SpoofedXFFFromUntrustedPeer_ChangesNothing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []string
	}{
		{"no trusted proxies", nil},
		{"another network trusted", []string{"10.0.0.0/8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := startVerifierWith(t, func(c *serve.Config) { c.IPBudget = 3; c.TrustedProxies = tc.trusted })
			e := v.enroll("mallory")
			for i := range 3 {
				h := map[string]string{"X-Forwarded-For": fmt.Sprintf("203.0.113.%d", i+1), "Forwarded": fmt.Sprintf("for=203.0.113.%d", i+1)}
				if r := wrongCodeFrom(t, e, h); r.Status != 401 {
					t.Fatalf("attempt %d: %d %s", i, r.Status, r.Raw)
				}
			}
			r := wrongCodeFrom(t, e, map[string]string{"X-Forwarded-For": "203.0.113.99"})
			if r.Status != 429 || r.errCode() != wire.CodeRateLimited {
				t.Fatalf("4th attempt with a fresh spoofed address: %d %s, want 429: the peer's budget is spent", r.Status, r.Raw)
			}
			for _, ip := range auditIPs(t, v, "mallory") {
				if ip != "127.0.0.1" {
					t.Errorf("audited address %q, want the peer 127.0.0.1", ip)
				}
			}
		})
	}
}

// behindLoopbackProxy serves with the test itself as the trusted proxy in front, writing
// header ("" for the default), and a per-address budget of three failed attempts.
func behindLoopbackProxy(t *testing.T, header string) *verifier {
	t.Helper()
	return startVerifierWith(t, func(c *serve.Config) {
		c.IPBudget = 3
		c.TrustedProxies = []string{"127.0.0.0/8", "::1"}
		c.ClientIPHeader = header
	})
}

// Behind a trusted proxy, the address the proxy forwards is the one limits count and the
// audit trail records.
func TestProxies_XFFFromTrustedProxy_SetsAddressForLimitsAndAudit(t *testing.T) {
	v := behindLoopbackProxy(t, "")

	// Each client behind the proxy has its own budget.
	e := v.enroll("carol")
	var want []string
	for i := range 4 {
		ip := fmt.Sprintf("198.51.100.%d", i+1)
		want = append(want, ip)
		// The client wrote a fake hop first; the proxy appended the address it saw.
		if r := wrongCodeFrom(t, e, map[string]string{"X-Forwarded-For": "6.6.6.6, " + ip}); r.Status != 401 {
			t.Fatalf("client %s: %d %s, want 401 (its own budget is fresh)", ip, r.Status, r.Raw)
		}
	}
	if got := auditIPs(t, v, "carol"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("audited addresses %v, want %v", got, want)
	}

	// One client behind the proxy spends its own budget, whatever it writes itself: a
	// proxy that writes X-Forwarded-For passes the client's own Forwarded header through,
	// and a fresh address there on every attempt buys nothing.
	spentAs(t, v, "dave", "198.51.100.50", func(i int) map[string]string {
		return map[string]string{"Forwarded": fmt.Sprintf("for=7.7.7.%d", i), "X-Forwarded-For": "198.51.100.50"}
	})
}

// spentAs makes four failed attempts at a fresh user with the headers each gets, under a
// per-address budget of three: all must count against ip, so the fourth is refused, and
// the trail records ip for each.
func spentAs(t *testing.T, v *verifier, user, ip string, headers func(i int) map[string]string) {
	t.Helper()
	e := v.enroll(user)
	for i := range 4 {
		r := wrongCodeFrom(t, e, headers(i))
		if want := map[bool]int{true: 401, false: 429}[i < 3]; r.Status != want {
			t.Fatalf("attempt %d (%v): %d %s, want %d: every attempt counts against %s", i, headers(i), r.Status, r.Raw, want, ip)
		}
	}
	for _, got := range auditIPs(t, v, user) {
		if got != ip {
			t.Errorf("audited %q, want %s", got, ip)
		}
	}
}

// With --client-ip-header forwarded the proxy's Forwarded header names the client, and an
// X-Forwarded-For the client wrote is passed through unread.
func TestProxies_ForwardedHeaderNamed_ClientWrittenXFFIgnored(t *testing.T) {
	v := behindLoopbackProxy(t, "forwarded")
	spentAs(t, v, "erin", "198.51.100.60", func(i int) map[string]string {
		return map[string]string{"X-Forwarded-For": fmt.Sprintf("7.7.7.%d", i), "Forwarded": fmt.Sprintf(`for=6.6.6.%d, for="198.51.100.60:1234"`, i)}
	})
}

// --behind-proxy without --trusted-proxies serves, since the proxy may not forward the
// client's address at all, but says at start what that costs.
func TestProxies_BehindProxyWithoutTrustedProxies_WarnsAtStart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []string
		warns   bool
	}{
		{"no trusted proxies", nil, true},
		{"trusted proxies named", []string{"127.0.0.0/8"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &lockedWriter{w: &strings.Builder{}}
			startVerifierWith(t, func(c *serve.Config) {
				c.BehindProxy = true
				c.TrustedProxies = tc.trusted
				c.Logger = slog.New(slog.NewTextHandler(logs, nil))
			})
			if got := strings.Contains(logs.String(), "--behind-proxy without --trusted-proxies"); got != tc.warns {
				t.Fatalf("warned: %v, want %v; logs:\n%s", got, tc.warns, logs.String())
			}
		})
	}
}

// A trusted proxy whose requests carry Forwarded but never X-Forwarded-For, the header
// named, probably writes Forwarded: the client's own X-Forwarded-For would then be believed.
// The log says so once, naming the peer and neither header's value.
func TestProxies_TrustedProxySendsTheOtherHeader_WarnsOnce(t *testing.T) {
	logs := &lockedWriter{w: &strings.Builder{}}
	v := startVerifierWith(t, func(c *serve.Config) {
		c.TrustedProxies = []string{"127.0.0.0/8", "::1"}
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	e := v.enroll("frank")
	for i := range 3 {
		if r := wrongCodeFrom(t, e, map[string]string{"Forwarded": fmt.Sprintf("for=198.51.100.%d", 70+i)}); r.Status != 401 {
			t.Fatalf("attempt %d: %d %s", i, r.Status, r.Raw)
		}
	}
	out := logs.String()
	if n := strings.Count(out, "--client-ip-header forwarded"); n != 1 || !strings.Contains(out, "127.0.0.1") {
		t.Fatalf("%d warnings naming --client-ip-header forwarded and the peer, want 1; logs:\n%s", n, out)
	}
	if strings.Contains(out, "198.51.100.") {
		t.Fatalf("the log repeats a forwarded address:\n%s", out)
	}
}

// An IPv6 client can send from any address of the /64 it was handed: a fresh address per
// attempt still spends the one budget of that /64, and audits each address as it came.
func TestProxies_IPv6FreshAddressPerAttempt_OneBudgetPerSlash64(t *testing.T) {
	v := behindLoopbackProxy(t, "")
	e := v.enroll("frank")
	var want []string
	for i := range 3 {
		ip := fmt.Sprintf("2001:db8:1:2::%x", i+1)
		want = append(want, ip)
		if r := wrongCodeFrom(t, e, map[string]string{"X-Forwarded-For": ip}); r.Status != 401 {
			t.Fatalf("attempt from %s: %d %s", ip, r.Status, r.Raw)
		}
	}
	r := wrongCodeFrom(t, e, map[string]string{"X-Forwarded-For": "2001:db8:1:2:ffff::99"})
	if r.Status != 429 || r.errCode() != wire.CodeRateLimited {
		t.Fatalf("4th attempt from a fresh address of the same /64: %d %s, want 429", r.Status, r.Raw)
	}
	// Another /64 is another client. (The user's own back-off allows five failures.)
	if r := wrongCodeFrom(t, e, map[string]string{"X-Forwarded-For": "2001:db8:1:3::1"}); r.Status != 401 {
		t.Fatalf("attempt from another /64: %d %s, want 401", r.Status, r.Raw)
	}
	if got := auditIPs(t, v, "frank"); fmt.Sprint(got) != fmt.Sprint(append(want, "2001:db8:1:3::1")) {
		t.Fatalf("audited addresses %v", got)
	}
}
