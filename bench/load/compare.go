package load

import (
	"fmt"
	"io"
	"slices"
)

// Spread is the mean, least and greatest of one figure over repeated runs.
type Spread struct{ Mean, Min, Max float64 }

func (s Spread) String() string { return num(s.Mean) + " (" + num(s.Min) + "–" + num(s.Max) + ")" }

// num writes x with three significant digits, or as a whole number from 100 up.
func num(x float64) string {
	if x >= 100 || x <= -100 {
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.3g", x)
}

func spread(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	s := Spread{Min: slices.Min(xs), Max: slices.Max(xs)}
	for _, x := range xs {
		s.Mean += x
	}
	s.Mean /= float64(len(xs))
	return s
}

// Summary is one run (sqlite, postgres, ...) of one build, repeated.
type Summary struct {
	Name                 string
	N                    int
	OKPerS, Ratio, CPUMS Spread
	RateP99MS            Spread // the open-loop drive's p99; zero without one
}

// Summarize groups runs by name, in the order each name first appears.
func Summarize(runs []Run) []Summary {
	var out []Summary
	for _, r := range runs {
		i := slices.IndexFunc(out, func(s Summary) bool { return s.Name == r.Name })
		if i < 0 {
			out = append(out, Summary{Name: r.Name})
		}
	}
	for i := range out {
		var ok, ratio, cpu, p99 []float64
		for _, r := range runs {
			if r.Name == out[i].Name {
				ok, ratio, cpu, p99 = append(ok, r.VerifyOKPerS), append(ratio, r.Ratio), append(cpu, r.CPUMSPerOK), append(p99, r.RateP99MS)
			}
		}
		out[i].N = len(ok)
		out[i].OKPerS, out[i].Ratio, out[i].CPUMS, out[i].RateP99MS = spread(ok), spread(ratio), spread(cpu), spread(p99)
	}
	return out
}

// CompareTable writes two builds' summaries side by side as a Markdown table: for each
// run, a row per build, and the second build's means against the first's.
func CompareTable(w io.Writer, builds [2]string, sums [2][]Summary) {
	fmt.Fprintln(w, "| run | build | runs | verify ok/s | ratio | CPU ms/verify | p99 ms at fixed rate |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: |")
	for _, a := range sums[0] {
		i := slices.IndexFunc(sums[1], func(s Summary) bool { return s.Name == a.Name })
		if i < 0 {
			continue
		}
		b := sums[1][i]
		for j, s := range []Summary{a, b} {
			fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s |\n", s.Name, builds[j], s.N, s.OKPerS, s.Ratio, s.CPUMS, s.RateP99MS)
		}
		fmt.Fprintf(w, "| %s | second against first | | %s | %s | %s | %s |\n", a.Name,
			change(a.OKPerS, b.OKPerS), change(a.Ratio, b.Ratio), change(a.CPUMS, b.CPUMS), change(a.RateP99MS, b.RateP99MS))
	}
}

// change is b's mean against a's, in percent, flagged when the two ranges overlap: then the
// difference is within what repeating one build gives.
func change(a, b Spread) string {
	if a.Mean == 0 {
		return ""
	}
	s := fmt.Sprintf("%+.0f %%", (b.Mean-a.Mean)/a.Mean*100)
	if b.Min <= a.Max && a.Min <= b.Max {
		s += " (ranges overlap)"
	}
	return s
}
