"""JSON Web Signatures: the one module in the code base that imports python-jose.

Everything that signs or verifies a JWT goes through here, so the algorithm guard lives in one
place. The guard runs *before* any cryptography:

- the ``alg`` header must be one of :data:`ASYMMETRIC_ALGORITHMS` (RSA PKCS#1 v1.5 or ECDSA) and
  on the caller's allow-list; ``none`` and every ``HS*`` are refused whatever the configuration,
  so a token "signed" with HMAC using a public key as the secret never reaches a verifier;
- the verification key must be a public JWK whose ``kty`` (and curve) fits that algorithm, whose
  ``alg``/``use``/``key_ops`` (when present) agree, and the key is handed to python-jose already
  constructed for that one algorithm;
- keys offered by the token itself (``jwk``, ``jku``, ``x5u``, ``x5c`` headers) are never used,
  and a ``crit`` header is refused because no extension is understood.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Collection, Mapping
from typing import Any

from jose import jwk as jose_jwk
from jose import jws as jose_jws
from jose import jwt as jose_jwt
from jose.exceptions import JOSEError

from auth.errors import TokenError, TokenErrorReason

ASYMMETRIC_ALGORITHMS: frozenset[str] = frozenset(
    {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"}
)
"""Every algorithm this package will ever verify or sign with. Configuration can narrow it only."""

EC_CURVES: dict[str, str] = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
"""The one curve each ECDSA algorithm is defined over (RFC 7518 section 3.4)."""

MIN_RSA_BITS = 2048
MAX_TOKEN_CHARS = 16 * 1024
"""Longer tokens are refused unread: a header this size is an attack, not a credential."""

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_PUBLIC_MEMBERS = {
    "RSA": ("kty", "kid", "alg", "use", "key_ops", "n", "e"),
    "EC": ("kty", "kid", "alg", "use", "key_ops", "crv", "x", "y"),
}


def b64url_decode(segment: str) -> bytes:
    """Decode one unpadded base64url segment, refusing any other alphabet."""
    if not _B64URL.match(segment):
        raise TokenError(TokenErrorReason.MALFORMED)
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise TokenError(TokenErrorReason.MALFORMED) from None


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise TokenError(TokenErrorReason.MALFORMED) from None
    if not isinstance(value, dict):
        raise TokenError(TokenErrorReason.MALFORMED)
    return value


def _segments(token: str) -> list[str]:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise TokenError(TokenErrorReason.MALFORMED)
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        # Five parts would be a JWE; an empty signature is an unsigned token.
        raise TokenError(TokenErrorReason.MALFORMED)
    return parts


def read_header(token: str) -> dict[str, Any]:
    """The token's JOSE header, unverified: used only to choose the algorithm check and key."""
    header = _json_object(b64url_decode(_segments(token)[0]))
    if "crit" in header:
        raise TokenError(TokenErrorReason.MALFORMED)
    return header


def read_claims_unverified(token: str) -> dict[str, Any]:
    """The token's claims WITHOUT verifying anything.

    Only for choosing whose keys to verify with (e.g. the ``iss`` of a client assertion); every
    value must be checked again on the verified claims.
    """
    return _json_object(b64url_decode(_segments(token)[1]))


def check_algorithm(header: Mapping[str, Any], allowed: Collection[str]) -> str:
    """The header's ``alg`` if it is asymmetric and allowed; otherwise ``TokenError``.

    Runs before any key is looked up, so ``none`` and ``HS*`` are refused whatever ``allowed``
    says.
    """
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ASYMMETRIC_ALGORITHMS or alg not in allowed:
        raise TokenError(TokenErrorReason.ALGORITHM_NOT_ALLOWED)
    return alg


def public_jwk_for(key: Mapping[str, Any], alg: str) -> dict[str, Any]:
    """The public members of ``key`` if it may verify ``alg`` signatures; else ``TokenError``.

    Checks ``kty`` and curve against the algorithm, ``alg``/``use``/``key_ops`` when the key
    states them, and the RSA modulus size. Private members (``d``, ``p``, ...) are dropped.
    """
    kty = key.get("kty")
    wanted = "RSA" if alg.startswith("RS") else "EC"
    if kty != wanted:
        raise TokenError(TokenErrorReason.KEY_MISMATCH)
    if "alg" in key and key["alg"] != alg:
        raise TokenError(TokenErrorReason.KEY_MISMATCH)
    if "use" in key and key["use"] != "sig":
        raise TokenError(TokenErrorReason.KEY_MISMATCH)
    key_ops = key.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise TokenError(TokenErrorReason.KEY_MISMATCH)
    if wanted == "EC" and key.get("crv") != EC_CURVES[alg]:
        raise TokenError(TokenErrorReason.KEY_MISMATCH)
    public = {name: key[name] for name in _PUBLIC_MEMBERS[wanted] if name in key}
    needed = ("n", "e") if wanted == "RSA" else ("x", "y")
    if not all(isinstance(public.get(name), str) for name in needed):
        raise TokenError(TokenErrorReason.KEY_MISMATCH)
    if wanted == "RSA" and len(b64url_decode(public["n"]).lstrip(b"\0")) * 8 < MIN_RSA_BITS:
        raise TokenError(TokenErrorReason.KEY_MISMATCH)
    return public


def verify(token: str, key: Mapping[str, Any], alg: str) -> dict[str, Any]:
    """Verify ``token``'s signature with one public JWK for one algorithm; return its claims.

    The caller has already run :func:`check_algorithm` on the header and picked ``key`` by kid.
    Claims are returned unchecked: issuer, audience and times are the caller's business.
    """
    if alg not in ASYMMETRIC_ALGORITHMS:  # defence in depth: never reachable through the API
        raise TokenError(TokenErrorReason.ALGORITHM_NOT_ALLOWED)
    public = public_jwk_for(key, alg)
    try:
        constructed = jose_jwk.construct(public, alg)
    except (JOSEError, ValueError, TypeError):
        raise TokenError(TokenErrorReason.KEY_MISMATCH) from None
    try:
        payload = jose_jws.verify(token, constructed, algorithms=[alg])
    except JOSEError:
        raise TokenError(TokenErrorReason.BAD_SIGNATURE) from None
    return _json_object(payload)


def sign(
    claims: Mapping[str, Any], private_key_pem: bytes, *, alg: str, kid: str, typ: str = "JWT"
) -> str:
    """Sign ``claims`` as a compact JWS with an RSA or EC private key (PEM) and header kid/typ."""
    if alg not in ASYMMETRIC_ALGORITHMS:
        raise ValueError(f"refusing to sign with {alg}: not an asymmetric algorithm")
    return jose_jwt.encode(
        dict(claims),
        private_key_pem.decode("ascii"),
        algorithm=alg,
        headers={"kid": kid, "typ": typ},
    )
