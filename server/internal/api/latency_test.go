package api

import (
	"bufio"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/twofold-dev/twofold/server/internal/audit"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics reads the text exposition format: comments skipped, name{k="v",...} value.
func parseMetrics(t *testing.T, text string) []sample {
	t.Helper()
	var out []sample
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		series, val, ok := strings.Cut(line, " ")
		v, err := strconv.ParseFloat(val, 64)
		if !ok || err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		s := sample{name: series, labels: map[string]string{}, value: v}
		if name, ls, ok := strings.Cut(series, "{"); ok {
			s.name = name
			for _, kv := range strings.Split(strings.TrimSuffix(ls, "}"), ",") {
				k, v, _ := strings.Cut(kv, "=")
				s.labels[k], _ = strconv.Unquote(v)
			}
		}
		out = append(out, s)
	}
	return out
}

// After a known mix of requests, /metrics has one histogram per route and method whose
// buckets only grow, whose +Inf bucket and _count equal the requests made, and whose
// counts agree with twofold_http_requests_total.
func TestMetrics_LatencyHistogram_CountsEveryRequestByRouteAndMethod(t *testing.T) {
	app := New(Deps{Metrics: audit.NewMetrics(), Tokens: noTokens{}})
	type rm struct{ route, method string }
	requests := []struct {
		method, path string
		key          rm
		n            int
	}{
		{"GET", "/healthz", rm{"/healthz", "GET"}, 3},
		{"GET", "/openapi.json", rm{"/openapi.json", "GET"}, 2},
		{"HEAD", "/healthz", rm{"/healthz", "HEAD"}, 1},
		{"POST", "/v1/tickets", rm{"/v1/tickets", "POST"}, 2}, // refused: no API key
		{"GET", "/no/such/path", rm{"/", "GET"}, 1},           // a 404 counts under the fallback's pattern, not its path
	}
	want := map[rm]int{}
	for _, r := range requests {
		for range r.n {
			res, err := app.Test(httptest.NewRequest(r.method, r.path, nil))
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
		}
		want[r.key] += r.n
	}
	res, err := app.Test(httptest.NewRequest("GET", "/metrics", nil))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(raw), "# TYPE twofold_http_request_duration_seconds histogram\n") {
		t.Fatalf("no latency histogram in /metrics:\n%s", raw)
	}
	const h = "twofold_http_request_duration_seconds"
	buckets := map[rm][]sample{}
	count, totals := map[rm]float64{}, map[string]float64{}
	sums := map[rm]float64{}
	for _, s := range parseMetrics(t, string(raw)) {
		k := rm{s.labels["route"], s.labels["method"]}
		switch s.name {
		case h + "_bucket":
			buckets[k] = append(buckets[k], s)
		case h + "_count":
			count[k] = s.value
		case h + "_sum":
			sums[k] = s.value
		case "twofold_http_requests_total":
			totals[s.labels["route"]] += s.value
		}
	}
	if len(count) != len(want) {
		t.Errorf("histograms for %v, want exactly %v", count, want)
	}
	perRoute := map[string]float64{}
	for k, n := range want {
		perRoute[k.route] += float64(n)
		bs := buckets[k]
		if len(bs) != len(audit.LatencyBuckets)+1 {
			t.Fatalf("%v: %d buckets, want %d", k, len(bs), len(audit.LatencyBuckets)+1)
		}
		prevLE, prev := -1.0, 0.0
		for i, b := range bs {
			le, err := strconv.ParseFloat(b.labels["le"], 64)
			if err != nil || le <= prevLE || b.value < prev || (i == len(bs)-1) != (b.labels["le"] == "+Inf") {
				t.Errorf("%v: bucket %d le=%s value %v after le=%v value %v: not ascending and cumulative", k, i, b.labels["le"], b.value, prevLE, prev)
			}
			prevLE, prev = le, b.value
		}
		if inf := bs[len(bs)-1].value; inf != float64(n) || count[k] != float64(n) {
			t.Errorf("%v: +Inf bucket %v, _count %v, want %d requests", k, inf, count[k], n)
		}
		if sums[k] <= 0 {
			t.Errorf("%v: _sum %v, want the time the requests took", k, sums[k])
		}
	}
	for route, n := range perRoute {
		if totals[route] != n {
			t.Errorf("route %s: twofold_http_requests_total %v, histogram counts %v", route, totals[route], n)
		}
	}
}
