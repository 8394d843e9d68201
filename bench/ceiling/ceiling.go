// Package ceiling is the yardstick of the benchmarks: the verifier's HTTP stack (Fiber,
// with the settings of server/internal/api) serving a stateless endpoint that does only
// the work a verification cannot avoid: parse the JSON body, check the TOTP code
// (pquerna/otp) and sign an EdDSA JWT with the verifier's claims. No store, no replay
// guard, no ticket lookup, no logging. The verifier's throughput over this one's is the
// ratio the benchmarks report.
//
// It imports Fiber and golang-jwt itself because bench/ may not import server/internal.
package ceiling

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/twofold-dev/twofold/internal/wire"
)

// Secret is the one TOTP secret (base32) the ceiling accepts codes of.
const Secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

// Serve answers POST /v1/totp/verify on ln until it is closed.
func Serve(ln net.Listener, origin string) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	// The settings of api.New, so both sides run the same HTTP stack.
	app := fiber.New(fiber.Config{
		AppName:               "twofold",
		BodyLimit:             64 << 10,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          10 * time.Second,
		IdleTimeout:           60 * time.Second,
		DisableStartupMessage: true,
	})
	issuer := "http://" + ln.Addr().String()
	opts := totp.ValidateOpts{Period: 30, Skew: 1, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	app.Post("/v1/totp/verify", func(c *fiber.Ctx) error {
		auth := c.Get(fiber.HeaderAuthorization)
		if !strings.HasPrefix(auth, "Ticket ") || c.Get(fiber.HeaderOrigin) != origin {
			return c.Status(fiber.StatusUnauthorized).JSON(wire.NewError(wire.CodeInvalidTicket, "no ticket"))
		}
		var req wire.CodeRequest
		if err := json.Unmarshal(c.Body(), &req); err != nil {
			return c.Status(fiber.StatusBadRequest).JSON(wire.NewError(wire.CodeInvalidRequest, "bad body"))
		}
		now := time.Now()
		ok, err := totp.ValidateCustom(req.Code, Secret, now, opts)
		if err != nil || !ok {
			return c.Status(fiber.StatusUnauthorized).JSON(wire.NewError(wire.CodeInvalidCode, "wrong code"))
		}
		jti := make([]byte, 16)
		rand.Read(jti)
		t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
			"iss": issuer, "sub": "user", "aud": "bench", "iat": now.Unix(), "nbf": now.Unix(),
			"exp": now.Add(5 * time.Minute).Unix(), "jti": base64.RawURLEncoding.EncodeToString(jti),
			"auth_time": now.Unix(), "amr": []string{"otp"},
		})
		t.Header["kid"] = "ceiling"
		s, err := t.SignedString(priv)
		if err != nil {
			return err
		}
		return c.JSON(wire.Token{Token: s, TokenType: "Bearer", ExpiresIn: 300})
	})
	return app.Listener(ln)
}
