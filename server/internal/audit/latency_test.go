package audit

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestRequestDuration_BucketsAreCumulativeAndABoundCountsInItsOwnBucket(t *testing.T) {
	for _, tc := range []struct {
		name string
		obs  []time.Duration
		want []string // lines that must appear
	}{
		{"exactly on a bound is in that bucket (le is inclusive)", []time.Duration{5 * time.Millisecond},
			[]string{`{route="/r",method="GET",le="0.0025"} 0`, `{route="/r",method="GET",le="0.005"} 1`, `{route="/r",method="GET",le="+Inf"} 1`}},
		{"cumulative counts, sum and count", []time.Duration{200 * time.Microsecond, 3 * time.Millisecond, 3 * time.Millisecond, 2 * time.Second},
			[]string{`le="0.0005"} 1`, `le="0.0025"} 1`, `le="0.005"} 3`, `le="1"} 3`, `le="2.5"} 4`, `le="10"} 4`, `le="+Inf"} 4`,
				`twofold_http_request_duration_seconds_sum{route="/r",method="GET"} 2.0062`, `twofold_http_request_duration_seconds_count{route="/r",method="GET"} 4`}},
		{"slower than every bound only in +Inf", []time.Duration{time.Minute},
			[]string{`le="10"} 0`, `le="+Inf"} 1`, `_sum{route="/r",method="GET"} 60`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMetrics()
			for _, d := range tc.obs {
				m.RequestDuration("/r", "GET", d)
			}
			var b bytes.Buffer
			if err := m.WritePrometheus(&b); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), "# TYPE twofold_http_request_duration_seconds histogram\n") {
				t.Errorf("no histogram TYPE line:\n%s", b.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w+"\n") {
					t.Errorf("missing %q in:\n%s", w, b.String())
				}
			}
		})
	}
}
