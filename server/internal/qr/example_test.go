package qr_test

import (
	"fmt"
	"strings"

	"github.com/twofold-dev/twofold/server/internal/qr"
)

func ExampleSVG() {
	svg, err := qr.SVG("otpauth://totp/Example%20Co:alice@example.com?secret=GEZDGNBVGY3TQOJQ&issuer=Example%20Co")
	if err != nil {
		panic(err)
	}
	// A 41-module symbol (version 6) plus the quiet zone, 6 px per module.
	fmt.Println(svg[:strings.Index(svg, "<path")])
	// Output: <svg xmlns="http://www.w3.org/2000/svg" width="294" height="294" viewBox="0 0 49 49" shape-rendering="crispEdges"><rect width="49" height="49" fill="#fff"/>
}
