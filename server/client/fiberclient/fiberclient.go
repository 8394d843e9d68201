// Package fiberclient is client.Verifier as Fiber middleware. It lives apart from client
// so that net/http backends do not pull in Fiber.
package fiberclient

import (
	"github.com/gofiber/fiber/v2"

	"github.com/twofold-dev/twofold/server/client"
)

const localsKey = "twofold.claims"

// New verifies the twofold token in each request's Authorization: Bearer header against
// reqs and stores its claims for Claims. Refusals are answered as client.Middleware does.
func New(v *client.Verifier, reqs ...client.Requirement) fiber.Handler {
	return func(c *fiber.Ctx) error {
		token, ok := client.BearerToken(c.Get(fiber.HeaderAuthorization))
		var claims *client.Claims
		err := error(client.ErrMalformed)
		if ok {
			claims, err = v.Verify(c.UserContext(), token, reqs...)
		}
		if err != nil {
			ref := client.RefusalOf(err)
			c.Set(fiber.HeaderWWWAuthenticate, ref.WWWAuthenticate())
			c.Set(fiber.HeaderCacheControl, "no-store")
			return c.Status(ref.Status).JSON(fiber.Map{"error": ref.Code, "message": ref.Message})
		}
		c.Locals(localsKey, claims)
		c.SetUserContext(client.WithClaims(c.UserContext(), claims))
		return c.Next()
	}
}

// Claims returns the claims New verified for this request, or nil.
func Claims(c *fiber.Ctx) *client.Claims {
	claims, _ := c.Locals(localsKey).(*client.Claims)
	return claims
}
