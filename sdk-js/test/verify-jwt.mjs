// Verifies a twofold token the way a Node backend would, with jose against the live JWKS.
// Usage: node verify-jwt.mjs JWKS_URL ISSUER AUDIENCE TOKEN; prints the payload as JSON.
import { createRemoteJWKSet, jwtVerify } from "jose";

const [jwksURL, issuer, audience, token] = process.argv.slice(2);
try {
  const jwks = createRemoteJWKSet(new URL(jwksURL), { cacheMaxAge: 60_000 });
  // A small leeway, as backends use; the tests move the verifier's clock a few seconds.
  const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer, audience, clockTolerance: 30 });
  console.log(JSON.stringify({ header: protectedHeader, payload }));
} catch (e) {
  console.error(`${e.code ?? "error"}: ${e.message}`);
  process.exit(1);
}
