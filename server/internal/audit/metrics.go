package audit

import (
	"bufio"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Metrics counts events, requests and webhook deliveries of this process, and writes
// them in the Prometheus text exposition format (version 0.0.4). A nil *Metrics counts
// nothing, so code that records can always call it.
type Metrics struct {
	mu           sync.Mutex
	events       map[[2]string]uint64 // kind, outcome
	requests     map[requestKey]uint64
	deliveries   map[string]uint64 // result
	appendErrors uint64
	latency      map[latencyKey]*histogram // latency.go
}

type requestKey struct {
	route  string
	status int
}

// NewMetrics returns counters that start at zero, with every event kind present so that
// rates exist before the first event.
func NewMetrics() *Metrics {
	m := &Metrics{events: map[[2]string]uint64{}, requests: map[requestKey]uint64{}, deliveries: map[string]uint64{}}
	for _, k := range kinds {
		for _, o := range []string{"ok", "refused"} {
			m.events[[2]string{string(k), o}] = 0
		}
	}
	for _, r := range []string{"delivered", "failed", "gave_up"} {
		m.deliveries[r] = 0
	}
	return m
}

var kinds = []Kind{EnrollmentStarted, FactorAdded, Verified, Failed, ReplayBlocked, RateLimited,
	Locked, RecoveryUsed, CodesRegenerated, FactorRemoved, AdminReset, OriginRefused, CredentialStuffing, FailureBurst}

// Event counts one security event.
func (m *Metrics) Event(k Kind, outcome string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.events[[2]string{string(k), outcome}]++
	m.mu.Unlock()
}

// Request counts one HTTP answer; route is the matched route pattern (never the raw path,
// which would carry ids and grow without bound).
func (m *Metrics) Request(route string, status int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.requests[requestKey{route, status}]++
	m.mu.Unlock()
}

// Delivery counts one webhook attempt's result: delivered, failed or gave_up.
func (m *Metrics) Delivery(result string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.deliveries[result]++
	m.mu.Unlock()
}

// AppendFailed counts an event that could not be stored.
func (m *Metrics) AppendFailed() {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.appendErrors++
	m.mu.Unlock()
}

// ContentType is the media type of WritePrometheus's output.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// WritePrometheus writes every counter, sorted, so the output is stable.
func (m *Metrics) WritePrometheus(w io.Writer) error {
	bw := bufio.NewWriter(w)
	m.mu.Lock()
	type line struct {
		labels string
		v      uint64
	}
	family := func(name, help string, lines []line) {
		slices.SortFunc(lines, func(a, b line) int { return strings.Compare(a.labels, b.labels) })
		bw.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " counter\n")
		for _, l := range lines {
			bw.WriteString(name + l.labels + " " + strconv.FormatUint(l.v, 10) + "\n")
		}
	}
	var ev, rq, dl []line
	for k, v := range m.events {
		ev = append(ev, line{labels(("kind"), k[0], "outcome", k[1]), v})
	}
	for k, v := range m.requests {
		rq = append(rq, line{labels("route", k.route, "status", strconv.Itoa(k.status)), v})
	}
	for k, v := range m.deliveries {
		dl = append(dl, line{labels("result", k), v})
	}
	appendErrors := m.appendErrors

	family("twofold_events_total", "Security events, by kind and outcome.", ev)
	family("twofold_http_requests_total", "HTTP answers, by route pattern and status.", rq)
	m.writeLatency(bw)
	m.mu.Unlock()
	family("twofold_webhook_deliveries_total", "Webhook delivery attempts, by result.", dl)
	family("twofold_audit_append_errors_total", "Security events that could not be stored in the audit trail.", []line{{"", appendErrors}})
	return bw.Flush()
}

// labels renders name="value" pairs with the format's escaping of \, " and newline.
func labels(kv ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i] + `="`)
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(kv[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}
