package serve

import (
	"io"
	"log/slog"
	"os"
	"runtime"
	"testing"
)

func TestRaiseProcs_UnlessTheEnvironmentSetsThem(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   string // "" leaves GOMAXPROCS unset
		start int
		want  int
	}{
		{"unset, few", "", 2, sqliteMinProcs},
		{"unset, many", "", sqliteMinProcs + 8, sqliteMinProcs + 8},
		{"set by the operator", "2", 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", tc.env) // and restores it afterwards
			if tc.env == "" {
				os.Unsetenv("GOMAXPROCS")
			}
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(tc.start))
			raiseProcs(slog.New(slog.NewTextHandler(io.Discard, nil)))
			if got := runtime.GOMAXPROCS(0); got != tc.want {
				t.Errorf("GOMAXPROCS = %d, want %d", got, tc.want)
			}
		})
	}
}
