"""Helpers for the auth tests: constants, a clock tests can move, and hand-crafting of hostile
tokens (without python-jose, which only ``auth/jws.py`` may import)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ISSUER = "https://register.example.nhs.uk/auth"
AUDIENCE = "https://register.example.nhs.uk/fhir"
TOKEN_ENDPOINT = "https://register.example.nhs.uk/auth/token"
START = 1_750_000_000.0


class FakeClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Header, claims and raw signature segment of a compact JWS (test-side decoding)."""
    head, body, sig = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(head))),
        json.loads(base64.urlsafe_b64decode(pad(body))),
        sig,
    )


def hs_token(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """A JWT "signed" with HMAC-SHA256 using ``secret`` (the algorithm-confusion attack)."""
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def sign_raw(header: dict[str, Any], claims: dict[str, Any], private_key: Any) -> str:
    """Sign arbitrary header and claims with ``cryptography`` directly (ES* or RS* by key type;
    hash from the header's alg), so tests can build tokens our own API would never produce."""
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}".encode("ascii")
    digest = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[
        header.get("alg", "ES384")[-3:]
    ]
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(private_key.sign(signing_input, ec.ECDSA(digest)))
        size = (private_key.curve.key_size + 7) // 8
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    elif isinstance(private_key, rsa.RSAPrivateKey):
        signature = private_key.sign(signing_input, padding.PKCS1v15(), digest)
    else:
        raise TypeError("only EC and RSA keys sign here")
    return f"{signing_input.decode('ascii')}.{b64url(signature)}"


def reencode(
    token: str, *, header: dict[str, Any] | None = None, claims: dict[str, Any] | None = None
) -> str:
    """The same token with header and/or claims replaced but the ORIGINAL signature kept."""
    old_header, old_claims, signature = segments(token)
    return ".".join(
        [
            b64url_json(header if header is not None else old_header),
            b64url_json(claims if claims is not None else old_claims),
            signature,
        ]
    )
