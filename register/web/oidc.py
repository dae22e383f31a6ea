"""Patients signing in with an external OpenID Connect provider (e.g. NHS login).

Configured by the ``REGISTER_WEB_OIDC_*`` settings (all of issuer, client id, authorization
endpoint, token endpoint and JWKS URL; a client secret is optional). The flow is the
authorization code flow with PKCE (S256), ``state`` and ``nonce``:

1. ``GET /sign-in/oidc`` keeps random ``state``, ``nonce`` and PKCE verifier in a short-lived
   HttpOnly cookie and redirects to the provider;
2. ``GET /sign-in/oidc/callback?code=&state=`` checks ``state``, exchanges the code at the token
   endpoint, and verifies the ``id_token``: signature against the provider's JWKS (fetched and
   cached by ``auth.jwks.RemoteJwks``; python-jose does the verification, inside
   ``auth/jws.py``), issuer, audience (our client id), expiry, and ``nonce``;
3. the NHS number claim (``REGISTER_WEB_OIDC_NHS_NUMBER_CLAIM``) names the patient's record on
   the register; the session is that patient's (role ``patient``, their own record only).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.requests import Request

from auth import jws
from auth.claims import audience_matches, required_date, required_string
from auth.errors import TokenError, TokenErrorReason
from auth.jwks import RemoteJwks
from register.api.deps import db_of, settings_of
from register.relationships import patients_with_nhs_number
from register.settings import Settings
from register.web.sessions import Identity

COOKIE = "careregister_oidc"
PATIENT_SCOPE = (
    "patient/*.rs patient/Consent.cu patient/QuestionnaireResponse.c patient/Observation.c "
    "patient/Communication.c patient/DetectedIssue.c"
)
_JWKS: dict[str, RemoteJwks] = {}


class OidcError(Exception):
    """The external sign-in did not complete (the message is safe to show)."""


def callback_url(request: Request) -> str:
    """Where the provider sends the browser back (this server's callback page)."""
    configured = settings_of(request).base_url
    root = configured.removesuffix("/fhir") if configured else str(request.base_url).rstrip("/")
    return f"{root}/sign-in/oidc/callback"


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def start(request: Request) -> tuple[str, str]:
    """The provider URL to redirect to, and the cookie value that remembers this attempt."""
    settings = settings_of(request)
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    query = urlencode(
        {
            "response_type": "code",
            "client_id": settings.web_oidc_client_id,
            "redirect_uri": callback_url(request),
            "scope": settings.web_oidc_scope,
            "state": state,
            "nonce": nonce,
            "code_challenge": _challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    return f"{settings.web_oidc_authorization_endpoint}?{query}", f"{state}.{nonce}.{verifier}"


def _keys(settings: Settings) -> RemoteJwks:
    url = str(settings.web_oidc_jwks_url)
    keys = _JWKS.get(url)
    if keys is None:
        keys = _JWKS[url] = RemoteJwks(url, max_age=float(settings.auth_jwks_cache_seconds))
    return keys


def verify_id_token(settings: Settings, id_token: str, nonce: str) -> dict[str, Any]:
    """The claims of an id_token (OpenID Connect Core 3.1.3.7), or ``TokenError``.

    Signature by a key of the provider's JWKS with an allowed asymmetric algorithm (python-jose,
    inside ``auth/jws.py``), then ``iss``, ``aud`` (our client id; ``azp`` when several),
    ``exp``/``iat`` with the configured clock skew, and ``nonce``.
    """
    header = jws.read_header(id_token)
    alg = jws.check_algorithm(header, settings.auth_allowed_algorithms)
    kid = header.get("kid")
    key = _keys(settings).key_for(kid) if isinstance(kid, str) and kid else None
    if key is None:
        raise TokenError(TokenErrorReason.UNKNOWN_KID)
    claims = jws.verify(id_token, key, alg)
    client_id = str(settings.web_oidc_client_id)
    if claims.get("iss") != settings.web_oidc_issuer:
        raise TokenError(TokenErrorReason.WRONG_ISSUER)
    if not audience_matches(claims.get("aud"), {client_id}):
        raise TokenError(TokenErrorReason.WRONG_AUDIENCE)
    several = isinstance(claims.get("aud"), list) and len(claims["aud"]) > 1
    if several and claims.get("azp") != client_id:
        raise TokenError(TokenErrorReason.WRONG_AUDIENCE)
    skew = settings.auth_clock_skew_seconds
    now = time.time()
    if now >= required_date(claims, "exp") + skew:
        raise TokenError(TokenErrorReason.EXPIRED)
    if now + skew < required_date(claims, "iat"):
        raise TokenError(TokenErrorReason.ISSUED_IN_FUTURE)
    required_string(claims, "sub")
    if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
        raise TokenError(TokenErrorReason.INVALID_CLAIM)
    return claims


def http_client() -> httpx.Client:
    """The HTTP client for the provider's token endpoint (tests replace this)."""
    return httpx.Client(timeout=10.0, follow_redirects=False)


def finish(request: Request, code: str, state: str, remembered: str) -> Identity:
    """Complete the flow: the patient identity the provider vouches for, or ``OidcError``."""
    settings = settings_of(request)
    parts = remembered.split(".")
    if len(parts) != 3 or not secrets.compare_digest(parts[0], state or ""):
        raise OidcError("The sign-in could not be matched to this browser. Please try again.")
    _, nonce, verifier = parts
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": callback_url(request),
        "client_id": str(settings.web_oidc_client_id),
        "code_verifier": verifier,
    }
    if settings.web_oidc_client_secret:
        form["client_secret"] = settings.web_oidc_client_secret
    try:
        with http_client() as client:
            answer = client.post(str(settings.web_oidc_token_endpoint), data=form)
    except httpx.HTTPError:
        raise OidcError("The sign-in service could not be reached. Please try again.") from None
    id_token = answer.json().get("id_token") if answer.status_code == 200 else None
    if not isinstance(id_token, str):
        raise OidcError("The sign-in service did not confirm who you are.")
    try:
        claims = verify_id_token(settings, id_token, nonce)
    except TokenError:
        raise OidcError("The sign-in service's answer could not be verified.") from None
    nhs_number = claims.get(settings.web_oidc_nhs_number_claim)
    if not isinstance(nhs_number, str) or not nhs_number.isdigit():
        raise OidcError("Your sign-in did not include your NHS number.")
    with db_of(request).read() as conn:
        found = patients_with_nhs_number(conn, nhs_number)
    if len(found) != 1:
        raise OidcError("We could not find your record on the shared care register.")
    return Identity(
        username=f"oidc:{claims['sub']}",
        role="patient",
        scope=PATIENT_SCOPE,
        fhir_user=f"Patient/{found[0]}",
        display=str(claims.get("name") or "Patient"),
    )
