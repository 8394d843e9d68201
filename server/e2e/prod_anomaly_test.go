package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/twofold-dev/twofold/internal/wire"
)

// Wrong codes for many users from one address, and a run of wrong codes at one user, each
// raise an audit event, a metric and a signed webhook to the app.
func TestAnomaly_StuffingAndBurst_AuditedCountedAndWebhooked(t *testing.T) {
	f := newAdminFixture(t)
	v := f.v
	for i := range 10 {
		e := v.enroll(fmt.Sprintf("victim%d", i))
		if r := e.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: "000000"}); r.Status != 401 {
			t.Fatalf("wrong code: %d %s", r.Status, r.Raw)
		}
	}
	if p := f.hook.waitFor("credential_stuffing"); p.IP != "127.0.0.1" || p.AppID != "shop" {
		t.Errorf("stuffing webhook %+v", p)
	}
	for range 10 {
		f.alice.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: "000000"})
	}
	if p := f.hook.waitFor("failure_burst"); p.User != "alice" {
		t.Errorf("burst webhook %+v", p)
	}
	m := string(v.call("GET", "/metrics", "", "", nil).Raw)
	for _, want := range []string{
		`twofold_events_total{kind="credential_stuffing",outcome="refused"} 1`,
		`twofold_events_total{kind="failure_burst",outcome="refused"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
