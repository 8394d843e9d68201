# The README's Python check, run by TestInterop_PyJWT against a live verifier:
#   python3 verify_pyjwt.py ISSUER AUDIENCE TOKEN   → prints the claims as JSON, or fails.
import json
import sys

import jwt  # pip install "PyJWT[crypto]" (Debian: python3-jwt)

ISSUER, AUDIENCE = sys.argv[1], sys.argv[2]

# One client per process: it caches the key set (lifespan, seconds) and refetches it when a
# token names a kid it does not have.
jwks = jwt.PyJWKClient(ISSUER + "/.well-known/jwks.json", lifespan=60)


def verify(token: str) -> dict:
    key = jwks.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token, key.key, algorithms=["EdDSA"],  # pin it: never take the alg from the token
        audience=AUDIENCE, issuer=ISSUER, leeway=30,
        options={"require": ["exp", "nbf", "iat", "iss", "aud", "sub", "jti"]},
    )
    if not {"otp", "hwk", "swk", "rec"} & set(claims.get("amr", [])):
        raise jwt.InvalidTokenError("no second factor")
    return claims


print(json.dumps(verify(sys.argv[3])))
