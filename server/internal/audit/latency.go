package audit

import (
	"bufio"
	"slices"
	"strconv"
	"strings"
	"time"
)

// LatencyBuckets are the upper bounds, in seconds, of the request-duration histogram:
// fixed, so every instance's series can be summed. A verification that commits to the
// store lands in the millisecond buckets; the top ones catch a stalled backend.
var LatencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type latencyKey struct{ route, method string }

// histogram counts observations per bucket (not cumulative; written cumulatively).
type histogram struct {
	counts []uint64 // len(LatencyBuckets)+1, the last one above every bound
	sum    float64
	n      uint64
}

// RequestDuration records how long one answer took, by route pattern and method.
func (m *Metrics) RequestDuration(route, method string, d time.Duration) {
	if m == nil {
		return
	}
	s := d.Seconds()
	i, _ := slices.BinarySearch(LatencyBuckets, s) // le is inclusive: s == bound counts in it
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.latency == nil {
		m.latency = map[latencyKey]*histogram{}
	}
	h := m.latency[latencyKey{route, method}]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(LatencyBuckets)+1)}
		m.latency[latencyKey{route, method}] = h
	}
	h.counts[i]++
	h.sum += s
	h.n++
}

// writeLatency writes twofold_http_request_duration_seconds; the caller holds m.mu.
func (m *Metrics) writeLatency(bw *bufio.Writer) {
	const name = "twofold_http_request_duration_seconds"
	bw.WriteString("# HELP " + name + " Time from a request's arrival to its answer, by route pattern and method.\n# TYPE " + name + " histogram\n")
	keys := make([]latencyKey, 0, len(m.latency))
	for k := range m.latency {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b latencyKey) int {
		if c := strings.Compare(a.route, b.route); c != 0 {
			return c
		}
		return strings.Compare(a.method, b.method)
	})
	for _, k := range keys {
		h := m.latency[k]
		var cum uint64
		for i, le := range LatencyBuckets {
			cum += h.counts[i]
			bw.WriteString(name + "_bucket" + labels("route", k.route, "method", k.method, "le", strconv.FormatFloat(le, 'g', -1, 64)) + " " + strconv.FormatUint(cum, 10) + "\n")
		}
		bw.WriteString(name + "_bucket" + labels("route", k.route, "method", k.method, "le", "+Inf") + " " + strconv.FormatUint(h.n, 10) + "\n")
		l := labels("route", k.route, "method", k.method)
		bw.WriteString(name + "_sum" + l + " " + strconv.FormatFloat(h.sum, 'g', -1, 64) + "\n")
		bw.WriteString(name + "_count" + l + " " + strconv.FormatUint(h.n, 10) + "\n")
	}
}
