package load

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"
)

func TestWindows_GroupByScheduledStart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		startMS []uint32
		latUS   []uint32
		want    []Window
	}{
		{"none", nil, nil, []Window{}},
		{"one window", []uint32{0, 50, 99}, []uint32{1000, 3000, 2000}, []Window{{0, 3, 2, 3}}},
		{"a stall after a gap", []uint32{10, 250, 260, 270}, []uint32{1000, 40000, 30000, 50000},
			[]Window{{0, 1, 1, 1}, {100, 0, 0, 0}, {200, 3, 40, 50}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := windows(tc.startMS, tc.latUS); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("windows = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// A closed-loop request in flight when the window opens counts, but its latency, which
// began in the warm-up, is not timed; the slowest first request is reported as Cold. Here
// each connection's first request is held until the window opens, as a cold verifier
// holds the first ones of a run.
func TestDrive_ClosedLoop_TimesOnlyRequestsBegunInTheWindow(t *testing.T) {
	opened := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-opened
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()

	const conns = 4
	res, err := Drive(t.Context(), Config{
		Targets: []string{srv.URL}, Users: []*User{{ID: "u", Secret: []byte("12345678901234567890"), Ticket: "t"}},
		Conns: conns, Warmup: 300 * time.Millisecond, Measure: 300 * time.Millisecond,
		Mix: Mix{Valid: 1}, Stateless: true,
		OnWindow: func(open bool) {
			if open {
				close(opened)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK <= conns {
		t.Fatalf("OK = %d: too few requests to tell", res.OK)
	}
	if got := res.OK - int64(len(res.LatOK)); got != conns {
		t.Errorf("counted %d successes, timed %d: want the %d held from the warm-up counted but not timed", res.OK, len(res.LatOK), conns)
	}
	if res.Cold < 200*time.Millisecond {
		t.Errorf("Cold = %v: the first requests were held through the 300 ms warm-up", res.Cold)
	}
	if len(res.Lat) != len(res.LatOK) {
		t.Errorf("timed %d requests, %d successes: all were successes", len(res.Lat), len(res.LatOK))
	}
}
