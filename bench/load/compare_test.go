package load

import (
	"bytes"
	"strings"
	"testing"
)

func TestSummarize_GroupsByRunInFirstSeenOrder(t *testing.T) {
	runs := []Run{
		{Name: "sqlite", VerifyOKPerS: 100, Ratio: 0.1, CPUMSPerOK: 0.3, RateP99MS: 20},
		{Name: "postgres", VerifyOKPerS: 10, Ratio: 0.01},
		{Name: "sqlite", VerifyOKPerS: 300, Ratio: 0.3, CPUMSPerOK: 0.1, RateP99MS: 10},
	}
	got := Summarize(runs)
	if len(got) != 2 || got[0].Name != "sqlite" || got[1].Name != "postgres" {
		t.Fatalf("summaries %+v, want sqlite then postgres", got)
	}
	s := got[0]
	for _, c := range []struct {
		name            string
		got             Spread
		mean, min, max_ float64
	}{
		{"ok/s", s.OKPerS, 200, 100, 300},
		{"ratio", s.Ratio, 0.2, 0.1, 0.3},
		{"cpu", s.CPUMS, 0.2, 0.1, 0.3},
		{"p99", s.RateP99MS, 15, 10, 20},
	} {
		if !near(c.got.Mean, c.mean) || c.got.Min != c.min || c.got.Max != c.max_ {
			t.Errorf("%s: %+v, want mean %g, %g–%g", c.name, c.got, c.mean, c.min, c.max_)
		}
	}
	if s.N != 2 || got[1].N != 1 {
		t.Errorf("counts %d and %d, want 2 and 1", s.N, got[1].N)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestChange_SaysWhenRangesOverlap(t *testing.T) {
	for _, c := range []struct {
		a, b Spread
		want string
	}{
		{Spread{100, 90, 110}, Spread{120, 115, 125}, "+20 %"},
		{Spread{100, 90, 110}, Spread{105, 100, 112}, "+5 % (ranges overlap)"},
		{Spread{100, 90, 110}, Spread{80, 70, 89}, "-20 %"},
		{Spread{}, Spread{1, 1, 1}, ""},
	} {
		if got := change(c.a, c.b); got != c.want {
			t.Errorf("change(%v, %v) = %q, want %q", c.a, c.b, got, c.want)
		}
	}
}

func TestCompareTable_ARowPerBuildAndTheChange(t *testing.T) {
	a := Summarize([]Run{{Name: "sqlite", VerifyOKPerS: 4000, Ratio: 0.2}})
	b := Summarize([]Run{{Name: "sqlite", VerifyOKPerS: 6000, Ratio: 0.3}})
	var buf bytes.Buffer
	CompareTable(&buf, [2]string{"old", "new"}, [2][]Summary{a, b})
	out := buf.String()
	for _, want := range []string{"| sqlite | old | 1 | 4000 (4000–4000) | 0.2 (0.2–0.2) |", "| sqlite | new | 1 | 6000 (6000–6000) | 0.3 (0.3–0.3) |", "| sqlite | second against first | | +50 % |"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
