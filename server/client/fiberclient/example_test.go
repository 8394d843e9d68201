package fiberclient_test

import (
	"log"

	"github.com/gofiber/fiber/v2"

	"github.com/twofold-dev/twofold/server/client"
	"github.com/twofold-dev/twofold/server/client/fiberclient"
)

// A Fiber route that needs a twofold token (client's tests run the same middleware against
// a real verifier).
func ExampleNew() {
	v, err := client.NewVerifier(client.Config{Issuer: "https://mfa.example.com", Audience: "shop"})
	if err != nil {
		log.Fatal(err)
	}
	app := fiber.New()
	app.Get("/api/me", fiberclient.New(v, client.RequireAMR("otp", "hwk", "swk")), func(c *fiber.Ctx) error {
		return c.SendString("hello " + fiberclient.Claims(c).Subject)
	})
	_ = app // app.Listen("127.0.0.1:4000")
}
