package load

import (
	"reflect"
	"testing"
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
