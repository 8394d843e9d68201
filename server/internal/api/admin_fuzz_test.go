package api

import (
	"testing"

	"github.com/twofold-dev/twofold/internal/wire"
)

func FuzzDecodeReset(f *testing.F) {
	for _, s := range []string{`{"reason":"lost phone","app":"shop"}`, `{"reason":"x"}`, `{"reason":7}`, `{"app":null}`} {
		f.Add([]byte(s))
	}
	// The query's app joins the body's: half the inputs carry one.
	fuzzDecoder(f, func(b []byte) (ResetRequest, error) {
		q := ""
		if len(b)%2 == 1 {
			q = "shop"
		}
		return decodeReset(b, q)
	}, func(r ResetRequest) bool {
		return wire.CheckText("app", r.App, true) == "" && wire.CheckText("reason", r.Reason, true) == ""
	})
}
