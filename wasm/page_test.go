//go:build js && wasm

package main

import (
	"slices"
	"syscall/js"
	"testing"

	"github.com/twofold-dev/twofold/wasm/guard"
)

// framed sets up globalThis as a page on shop inside a frame, with ancestorOrigins as
// given (nil: none, as in older Firefox releases).
func framed(t *testing.T, ancestorOrigins []any) {
	t.Helper()
	loc := map[string]any{"origin": "https://shop.example"}
	if ancestorOrigins != nil {
		loc["ancestorOrigins"] = ancestorOrigins
	}
	g := js.Global()
	g.Set("location", loc)
	g.Set("top", map[string]any{})
	g.Set("self", map[string]any{})
	t.Cleanup(func() {
		for _, k := range []string{"location", "top", "self"} {
			g.Delete(k)
		}
	})
}

// The guard sees every frame above the page: from location.ancestorOrigins where the
// browser has it, else from the frames the JS loader walked (null when one of another
// origin could not be read), and refuses a page whose frames it cannot all see.
func TestCurrentPage_AncestorsFromTheBrowserOrTheLoadersWalk(t *testing.T) {
	shop := "https://shop.example"
	for _, tc := range []struct {
		name            string
		ancestorOrigins []any
		frames          any
		want            []string
		refused         bool
	}{
		{"ancestorOrigins: the app's own frames", []any{shop}, nil, []string{shop}, false},
		{"ancestorOrigins: a foreign frame between", []any{"https://ads.example", shop}, nil, []string{"https://ads.example", shop}, true},
		{"walked: the app's own frames", nil, []any{shop, shop}, []string{shop, shop}, false},
		{"walked: a frame could not be read", nil, nil, nil, true},
		{"walked: not strings", nil, []any{shop, 7}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			framed(t, tc.ancestorOrigins)
			p := currentPage(js.ValueOf(tc.frames))
			if !p.Framed || !slices.Equal(p.Ancestors, tc.want) {
				t.Fatalf("page %+v, want framed with ancestors %v", p, tc.want)
			}
			if r := guard.Check(p, []string{shop}); (r != nil) != tc.refused {
				t.Fatalf("guard refusal %+v, want refused: %v", r, tc.refused)
			}
		})
	}
}

// Where the browser blocks storage, reading sessionStorage throws; the enrollment then
// simply is not kept across a reload, and the engine goes on.
func TestStorage_Blocked_NothingKeptEngineGoesOn(t *testing.T) {
	g := js.Global()
	g.Get("Object").Call("defineProperty", g, "sessionStorage", map[string]any{
		"configurable": true,
		"get":          g.Get("Function").New(`throw new Error("SecurityError: access is denied for this document")`),
	})
	t.Cleanup(func() { g.Delete("sessionStorage") })
	if got := storage("setItem", "k", "v"); got != "" {
		t.Fatalf("setItem with storage blocked: %q", got)
	}
	if got := storage("getItem", "k", ""); got != "" {
		t.Fatalf("getItem with storage blocked: %q", got)
	}
}
