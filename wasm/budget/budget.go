// Package budget holds the limits the WebAssembly SDK is built to, and (in its tests) the
// checks that keep it there: its size, and that no server-side package links into it.
package budget

// Brotli is the most twofold.wasm may weigh, compressed with brotli -q 11, in bytes: an
// empty Go wasm that only uses syscall/js is about 442 KB here, so the SDK's own code may
// add about 120 KB.
const Brotli = 560_000

// Denied are the packages the wasm must never link: the server's (and the heavy
// dependencies each of them fences in), the test browser driver, and the standard library
// pieces that weigh most and that the SDK does without (fmt, reflection, encoding/json,
// image, log, net/http).
var Denied = []string{
	"github.com/twofold-dev/twofold/server",
	"github.com/gofiber/", "github.com/valyala/", "github.com/jackc/", "github.com/redis/",
	"modernc.org/", "database/sql", "github.com/chromedp/", "github.com/go-webauthn/",
	"github.com/golang-jwt/", "github.com/yeqown/", "github.com/pquerna/",
	"fmt", "reflect", "encoding/json", "image", "log", "net", "net/http",
}
