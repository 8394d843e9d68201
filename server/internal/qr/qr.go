// Package qr draws QR codes (the otpauth:// URI of an enrollment) as small SVG documents.
// It is the only importer of go-qrcode, and uses none of that library's writers, which
// would pull image encoders in.
package qr

import (
	"fmt"
	"strconv"
	"strings"

	qrcode "github.com/yeqown/go-qrcode/v2"
)

// QuietZone is the light margin around the symbol, in modules, that the QR standard asks for.
const QuietZone = 4

// MinSize is the smallest width and height, in pixels, of the SVG: the pixels per module
// are a whole number, so the symbol stays crisp at 1:1.
const MinSize = 264

// SVG returns content encoded as a QR code (error correction level M, enough for a screen)
// in a compact SVG document: one background rect and one path of dark modules, with no
// script or external reference, fit to be shown through an <img>.
func SVG(content string) (string, error) {
	code, err := qrcode.NewWith(content, qrcode.WithErrorCorrectionLevel(qrcode.ErrorCorrectionMedium))
	if err != nil {
		return "", fmt.Errorf("qr: encode: %w", err)
	}
	var w svgWriter
	if err := code.Save(&w); err != nil {
		return "", fmt.Errorf("qr: draw: %w", err)
	}
	return w.b.String(), nil
}

// svgWriter is a qrcode.Writer that keeps the SVG document in memory.
type svgWriter struct {
	b strings.Builder
}

var _ qrcode.Writer = (*svgWriter)(nil)

// Write draws mat: the coordinates of the viewBox are modules, and each horizontal run of
// dark modules is one closed rectangle of the single path.
func (w *svgWriter) Write(mat qrcode.Matrix) error {
	bits := mat.Bitmap() // [y][x], true for dark
	n := len(bits) + 2*QuietZone
	px := n * ((MinSize + n - 1) / n)
	size, view := strconv.Itoa(px), strconv.Itoa(n)

	b := &w.b
	b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" width="` + size + `" height="` + size +
		`" viewBox="0 0 ` + view + ` ` + view + `" shape-rendering="crispEdges">`)
	b.WriteString(`<rect width="` + view + `" height="` + view + `" fill="#fff"/>`)
	b.WriteString(`<path fill="#000" d="`)
	for y, row := range bits {
		for x := 0; x < len(row); {
			if !row[x] {
				x++
				continue
			}
			run := 1
			for x+run < len(row) && row[x+run] {
				run++
			}
			fmt.Fprintf(b, "M%d %dh%dv1h-%dz", x+QuietZone, y+QuietZone, run, run)
			x += run
		}
	}
	b.WriteString(`"/></svg>`)
	return nil
}

// Close is a no-op: the document lives in memory.
func (w *svgWriter) Close() error { return nil }
