package qr

import (
	"encoding/xml"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// requireTool returns the path of an external program. Without it the test fails on CI
// (where it must run) and is skipped, loudly, elsewhere.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not found (apt-get install -y %s): THE DECODE TEST DID NOT RUN", name, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip("!!! SKIPPED: " + msg)
	return ""
}

var (
	viewBoxRE = regexp.MustCompile(`viewBox="0 0 (\d+) (\d+)"`)
	pathRE    = regexp.MustCompile(`<path fill="#000" d="([^"]*)"`)
	runRE     = regexp.MustCompile(`M(\d+) (\d+)h(\d+)v1h-(\d+)z`)
)

// rasterize draws the SVG as SVG() writes it (a white square, then one path of one-module
// runs) into a grey image, scale pixels per module. It fails on anything it cannot read,
// so it also checks that the path is made only of such runs.
func rasterize(t *testing.T, svg string, scale int) *image.Gray {
	t.Helper()
	vb := viewBoxRE.FindStringSubmatch(svg)
	if vb == nil || vb[1] != vb[2] {
		t.Fatalf("no square viewBox in %.200s", svg)
	}
	n, _ := strconv.Atoi(vb[1])
	d := pathRE.FindStringSubmatch(svg)
	if d == nil {
		t.Fatalf("no dark path in %.200s", svg)
	}
	img := image.NewGray(image.Rect(0, 0, n*scale, n*scale))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	runs := runRE.FindAllStringSubmatchIndex(d[1], -1)
	end := 0
	for _, m := range runs {
		if m[0] != end {
			t.Fatalf("path has something other than runs at %d: %.40q", end, d[1][end:])
		}
		end = m[1]
		num := func(i int) int { v, _ := strconv.Atoi(d[1][m[2*i]:m[2*i+1]]); return v }
		x, y, w, back := num(1), num(2), num(3), num(4)
		if w != back || w < 1 || x+w > n-QuietZone || x < QuietZone || y < QuietZone || y >= n-QuietZone {
			t.Fatalf("run M%d %d h%d h-%d outside the symbol of %d modules", x, y, w, back, n)
		}
		for py := y * scale; py < (y+1)*scale; py++ {
			for px := x * scale; px < (x+w)*scale; px++ {
				img.SetGray(px, py, color.Gray{})
			}
		}
	}
	if end != len(d[1]) || len(runs) == 0 {
		t.Fatalf("path does not end in runs: %.40q", d[1][end:])
	}
	return img
}

func zbarDecode(t *testing.T, bin string, img image.Image) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "code.png")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--raw", "-q", file).Output()
	if err != nil {
		t.Fatalf("zbarimg found no code in %s: %v", file, err)
	}
	return strings.TrimSuffix(string(out), "\n")
}

func TestSVG_ZbarimgDecodesTheExactURI(t *testing.T) {
	bin := requireTool(t, "zbarimg", "zbar-tools")
	for _, uri := range []string{
		"otpauth://totp/Example%20Co:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example%20Co&algorithm=SHA1&digits=6&period=30",
		"otpauth://totp/ACME%3A%20Corp%20%26%20Sons:bob%2Btest%201%2F2%3Fx%3Dy%23z?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME%3A%20Corp%20%26%20Sons&algorithm=SHA512&digits=8&period=60",
		"A",
	} {
		t.Run(uri[:min(len(uri), 30)], func(t *testing.T) {
			svg, err := SVG(uri)
			if err != nil {
				t.Fatal(err)
			}
			if got := zbarDecode(t, bin, rasterize(t, svg, 8)); got != uri {
				t.Fatalf("zbarimg read\n %q\nwant\n %q", got, uri)
			}
		})
	}
}

func TestSVG_IsPlainXMLWithoutActiveContent(t *testing.T) {
	svg, err := SVG("otpauth://totp/x:y?secret=GE&issuer=%3Cscript%3E")
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(strings.NewReader(svg))
	var elems []string
	for {
		tok, err := dec.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("not XML: %v", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		elems = append(elems, se.Name.Local)
		for _, a := range se.Attr {
			if strings.HasPrefix(strings.ToLower(a.Name.Local), "on") || a.Name.Local == "href" {
				t.Errorf("<%s> has attribute %s", se.Name.Local, a.Name.Local)
			}
		}
		if se.Name.Local == "svg" {
			attrs := map[string]string{}
			for _, a := range se.Attr {
				attrs[a.Name.Local] = a.Value
			}
			if se.Name.Space != "http://www.w3.org/2000/svg" || attrs["shape-rendering"] != "crispEdges" {
				t.Errorf("svg element: ns %q attrs %v", se.Name.Space, attrs)
			}
			w, _ := strconv.Atoi(attrs["width"])
			if w < MinSize || attrs["width"] != attrs["height"] {
				t.Errorf("size %sx%s, want square of at least %d", attrs["width"], attrs["height"], MinSize)
			}
		}
	}
	if got := strings.Join(elems, ","); got != "svg,rect,path" {
		t.Fatalf("elements %s, want svg,rect,path", got)
	}
	if strings.Contains(strings.ToLower(svg), "script") {
		t.Fatal("svg mentions script")
	}
}

func TestSVG_QuietZoneOfFourModules(t *testing.T) {
	svg, err := SVG("otpauth://totp/a?secret=GE")
	if err != nil {
		t.Fatal(err)
	}
	img := rasterize(t, svg, 1) // fails on any run inside the quiet zone
	n := img.Bounds().Dx()
	side := n - 2*QuietZone
	if side < 21 || side%4 != 1 {
		t.Fatalf("symbol is %d modules wide: not a QR version", side)
	}
	// Each finder pattern's outer corner is dark and sits right inside the quiet zone.
	first, last := QuietZone, n-QuietZone-1
	for _, c := range [][2]int{{first, first}, {last, first}, {first, last}} {
		if img.GrayAt(c[0], c[1]).Y != 0 {
			t.Errorf("finder corner (%d,%d) is not dark", c[0], c[1])
		}
	}
	if img.GrayAt(first-1, first).Y != 0xff || img.GrayAt(first, first-1).Y != 0xff {
		t.Error("the module next to the finder corner is not light")
	}
}

func TestSVG_TooLong_Errors(t *testing.T) {
	if _, err := SVG(strings.Repeat("x", 5000)); err == nil {
		t.Fatal("5000 bytes encoded: more than a QR code holds")
	}
}
