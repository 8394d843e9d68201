package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twofold-dev/twofold/server/internal/audit"
	"github.com/twofold-dev/twofold/server/internal/store"
	"github.com/twofold-dev/twofold/server/internal/store/sqlite"
	"github.com/twofold-dev/twofold/server/internal/store/sqlstore"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func openStore(t *testing.T) *sqlstore.DB {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "twofold.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func records(t *testing.T, s store.AuditStore) []store.AuditRecord {
	t.Helper()
	var out []store.AuditRecord
	if err := s.AuditRecords(t.Context(), store.AuditFilter{}, func(r store.AuditRecord) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRecord_StoresEventWithDefaultsAndCountsIt(t *testing.T) {
	s := openStore(t)
	m := audit.NewMetrics()
	log := audit.NewLog(m, func() time.Time { return t0 })
	ctx := t.Context()
	for _, e := range []audit.Event{
		{Kind: audit.Verified, AppID: "shop", User: "alice", Factor: "totp_1", IP: "192.0.2.7", UserAgent: "Firefox"},
		{Kind: audit.Failed, AppID: "shop", User: "alice", Outcome: "refused", Detail: "wrong code", At: t0.Add(time.Minute)},
	} {
		if err := log.Record(ctx, s, e); err != nil {
			t.Fatal(err)
		}
	}
	got := records(t, s)
	if len(got) != 2 {
		t.Fatalf("%d records, want 2", len(got))
	}
	if r := got[0]; r.Kind != "verified" || r.Outcome != "ok" || !r.At.Equal(t0) || r.Factor != "totp_1" || r.IP != "192.0.2.7" || r.UserAgent != "Firefox" {
		t.Errorf("first record %+v: want the event, outcome defaulted to ok and At to the clock", r)
	}
	if r := got[1]; r.Outcome != "refused" || r.Detail != "wrong code" || !r.At.Equal(t0.Add(time.Minute)) {
		t.Errorf("second record %+v", r)
	}
	var buf bytes.Buffer
	m.WritePrometheus(&buf)
	for _, want := range []string{
		`twofold_events_total{kind="verified",outcome="ok"} 1`,
		`twofold_events_total{kind="failed",outcome="refused"} 1`,
		`twofold_events_total{kind="locked",outcome="ok"} 0`,
	} {
		if !strings.Contains(buf.String(), want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, buf.String())
		}
	}
}

// A client that hangs up after a failed guess must not erase the failure.
func TestRecord_CancelledRequestContext_StillStored(t *testing.T) {
	s := openStore(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := audit.NewLog(nil, nil).Record(ctx, s, audit.Event{Kind: audit.Failed, AppID: "shop", User: "alice", Outcome: "refused"}); err != nil {
		t.Fatal(err)
	}
	if n := len(records(t, s)); n != 1 {
		t.Fatalf("%d records after a cancelled request, want 1", n)
	}
}

func TestRecord_HostileFields_StoredCleanAndBounded(t *testing.T) {
	s := openStore(t)
	log := audit.NewLog(nil, nil)
	long := strings.Repeat("é", 1000)
	err := log.Record(t.Context(), s, audit.Event{Kind: audit.Failed, User: "a\x00b", UserAgent: "bad \xff\xfe utf8 " + long, Detail: long, Outcome: "refused"})
	if err != nil {
		t.Fatal(err)
	}
	r := records(t, s)[0]
	for name, v := range map[string]string{"user": r.User, "user_agent": r.UserAgent, "detail": r.Detail} {
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) || len(v) > 512 {
			t.Errorf("%s stored as %d bytes, valid UTF-8 %v, NUL %v", name, len(v), utf8.ValidString(v), strings.ContainsRune(v, 0))
		}
	}
	if r.User != "ab" {
		t.Errorf("user = %q, want the NUL dropped", r.User)
	}
}

func TestNotifies_ExactlyTheEventsAPersonShouldHearOf(t *testing.T) {
	for k, want := range map[audit.Kind]bool{
		audit.FactorAdded: true, audit.FactorRemoved: true, audit.Locked: true,
		audit.RecoveryUsed: true, audit.AdminReset: true, audit.CodesRegenerated: true,
		audit.Verified: false, audit.Failed: false, audit.ReplayBlocked: false, audit.RateLimited: false,
		audit.EnrollmentStarted: false, audit.OriginRefused: false,
	} {
		if got := audit.Notifies(k); got != want {
			t.Errorf("Notifies(%s) = %v, want %v", k, got, want)
		}
	}
}

// Every line of the exposition is a comment (HELP or TYPE, before its samples) or a sample
// `name{label="value",...} integer`, and label values are escaped.
func TestWritePrometheus_ParsesAsTextFormat(t *testing.T) {
	m := audit.NewMetrics()
	m.Event(audit.Failed, "refused")
	m.Request("/v1/totp/verify", 401)
	m.Request("/weird\"route\\with\nnewline", 200)
	m.Delivery("delivered")
	m.AppendFailed()
	m.RequestDuration("/v1/totp/verify", "POST", 3*time.Millisecond)
	var buf bytes.Buffer
	if err := m.WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*\})? [0-9]+(\.[0-9]+)?(e-[0-9]+)?$`)
	comment := regexp.MustCompile(`^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$`)
	typed := map[string]bool{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		line := sc.Text()
		if c := comment.FindStringSubmatch(line); c != nil {
			if c[1] == "TYPE" {
				if c[3] != "counter" && c[3] != "histogram" {
					t.Errorf("TYPE %s %s, want counter or histogram", c[2], c[3])
				}
				typed[c[2]] = true
			}
			continue
		}
		s := sample.FindStringSubmatch(line)
		if s == nil {
			t.Errorf("not a valid exposition line: %q", line)
			continue
		}
		if !typed[s[1]] && !typed[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s[1], "_bucket"), "_sum"), "_count")] {
			t.Errorf("sample of %s before its TYPE line", s[1])
		}
		if seen[line] {
			t.Errorf("duplicate sample %q", line)
		}
		seen[line] = true
	}
	for _, want := range []string{
		`twofold_events_total{kind="failed",outcome="refused"} 1`,
		`twofold_http_requests_total{route="/v1/totp/verify",status="401"} 1`,
		`twofold_http_requests_total{route="/weird\"route\\with\nnewline",status="200"} 1`,
		`twofold_webhook_deliveries_total{result="delivered"} 1`,
		`twofold_audit_append_errors_total 1`,
	} {
		if !seen[want] {
			t.Errorf("missing sample %s", want)
		}
	}
}

func TestMetrics_Nil_CountsNothingAndDoesNotPanic(t *testing.T) {
	var m *audit.Metrics
	m.Event(audit.Failed, "refused")
	m.Request("/", 200)
	m.Delivery("failed")
	m.AppendFailed()
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
