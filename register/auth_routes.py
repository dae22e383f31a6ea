"""The embedded authorization server: ``/auth/token``, ``/auth/jwks``, SMART discovery.

- ``POST /auth/token``
  - ``grant_type=client_credentials`` (SMART Backend Services): the client authenticates with a
    ``private_key_jwt`` assertion signed by one of its registered keys (``jti`` used once,
    lifetime at most five minutes, ``aud`` this endpoint); the requested scopes are narrowed to
    the client's registered ones; the token acts for the client's organisation (role
    ``system``).
  - ``grant_type=password`` (the embedded login, for the demo users; off with
    ``REGISTER_AUTH_PASSWORD_LOGIN=false``): a person's token carries ``fhirUser``, their
    organisation's ODS code and their role; a clinician may ask for purpose of use
    ``BTG``/``ETREAT`` with a ``break_glass_reason``.
- ``GET /auth/jwks``: the public keys tokens are signed with (current and recently retired).
- ``GET /fhir/.well-known/smart-configuration``: endpoints, grant types, client authentication
  methods and algorithms, scopes and capabilities this register actually supports.

Errors follow RFC 6749 section 5.2 (``invalid_client``, ``invalid_grant``, ``invalid_scope``,
``unsupported_grant_type``, ``invalid_request``), never echoing what was sent.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth.errors import TokenError
from auth.principal import BREAK_GLASS_PURPOSES, PurposeOfUse, Role
from auth.scopes import ScopeSet, narrow, parse_scopes
from auth.tokens import IssuedToken
from fhir_adapters.operation_outcome import error
from register.access_clients import DbClients, authenticate_user
from register.access_service import AccessService, Endpoints
from register.api.deps import base_url, db_of, settings_of
from register.audit.events import token_event
from register.audit.writer import AuditUnavailable
from register.errors import FhirError

router = APIRouter(tags=["auth"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
LOGIN_CLIENT_ID = "careregister-login"
SCOPES_SUPPORTED = [
    "system/*.cruds",
    "system/*.rs",
    "user/*.cruds",
    "user/*.rs",
    "patient/*.rs",
    "patient/*.cruds",
    "system/*.read",
    "user/*.read",
    "patient/*.read",
]


class OAuthError(Exception):
    """An OAuth error response (RFC 6749 section 5.2)."""

    def __init__(self, code: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.status = status


def _oauth_error(exc: OAuthError) -> JSONResponse:
    return JSONResponse(
        {"error": exc.code, "error_description": exc.description},
        status_code=exc.status,
        headers=_NO_STORE,
    )


def _token_response(issued: IssuedToken) -> JSONResponse:
    return JSONResponse(
        {
            "access_token": issued.access_token,
            "token_type": "bearer",
            "expires_in": issued.expires_in,
            "scope": issued.scope,
        },
        headers=_NO_STORE,
    )


def _endpoints(request: Request) -> tuple[AccessService, Endpoints]:
    service: AccessService = request.app.state.access
    return service, service.endpoints(base_url(request))


@router.post("/auth/token", include_in_schema=True)
async def token(request: Request) -> Response:
    """OAuth 2.0 token endpoint (client_credentials with private_key_jwt; the demo login)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return _oauth_error(
            OAuthError("invalid_request", "Send the token request as a form (urlencoded).")
        )
    form = {k: str(v) for k, v in (await request.form()).multi_items()}
    grant_type = form.get("grant_type")
    try:
        if grant_type == "client_credentials":
            issued = await run_in_threadpool(_client_credentials, request, form)
        elif grant_type == "password" and settings_of(request).auth_password_login:
            issued = await run_in_threadpool(_password, request, form)
        else:
            raise OAuthError("unsupported_grant_type", "This grant type is not supported here.")
    except OAuthError as exc:
        await _audit_token(request, form, None, exc.code)
        return _oauth_error(exc)
    await _audit_token(request, form, issued, None)
    return _token_response(issued)


async def _audit_token(
    request: Request, form: dict[str, str], issued: IssuedToken | None, refused: str | None
) -> None:
    """Record the token request (issued or refused) before answering it."""
    if not settings_of(request).audit_enabled:
        return
    principal = None
    if issued is not None:
        _, endpoints = _endpoints(request)
        principal = endpoints.tokens.principal(issued.access_token)
    client = request.scope.get("client")
    event = token_event(
        principal=principal,
        client_id=form.get("client_id") or None,
        claimed=(form.get("username") or None),
        grant_type=str(form.get("grant_type") or "")[:40],
        error=refused,
        request_id=getattr(request.state, "request_id", None),
        address=client[0] if client else None,
    )
    try:
        await request.app.state.audit.record(event)
    except AuditUnavailable:
        if issued is not None:
            raise FhirError(
                503, error("transient", "The token could not be recorded; it was not issued.")
            ) from None


def _requested_scopes(form: dict[str, str]) -> ScopeSet:
    requested = parse_scopes(form.get("scope", ""))
    if requested.invalid:
        raise OAuthError("invalid_scope", "Some requested scopes are malformed.")
    if not requested.resource:
        raise OAuthError("invalid_scope", "Ask for at least one clinical scope.")
    return requested


def _client_credentials(request: Request, form: dict[str, str]) -> IssuedToken:
    service, endpoints = _endpoints(request)
    assertion = form.get("client_assertion")
    if not assertion:
        raise OAuthError("invalid_request", "client_assertion is required.")
    requested = _requested_scopes(form)
    db = db_of(request)
    with db.read() as conn:
        validator = service.assertion_validator(conn, db, endpoints)
        try:
            verified = validator.validate(
                assertion,
                assertion_type=form.get("client_assertion_type", ""),
                client_id=form.get("client_id"),
            )
        except TokenError as exc:
            # SMART: any failure to authenticate the client is invalid_client.
            raise OAuthError("invalid_client", str(exc)) from None
        record = DbClients(conn, service.client_jwks).record(verified.client_id)
    if record is None:
        raise OAuthError("invalid_client", "The client is not registered or is disabled.")
    granted = narrow(requested, parse_scopes(record.scope))
    if not granted.resource:
        raise OAuthError("invalid_scope", "None of the requested scopes is registered for you.")
    return endpoints.issuer.issue(
        role=Role.SYSTEM,
        subject=record.client_id,
        client_id=record.client_id,
        scope=str(granted),
        organisation=record.organisation,
    )


def _password(request: Request, form: dict[str, str]) -> IssuedToken:
    _, endpoints = _endpoints(request)
    username, password = form.get("username", ""), form.get("password", "")
    if not username or not password:
        raise OAuthError("invalid_request", "username and password are required.")
    with db_of(request).read() as conn:
        user = authenticate_user(conn, username, password)
    if user is None:
        raise OAuthError("invalid_grant", "Unknown user or wrong password.")
    registered = parse_scopes(user.scope)
    granted = narrow(_requested_scopes(form), registered) if form.get("scope") else registered
    if not granted.resource:
        raise OAuthError("invalid_scope", "None of the requested scopes is allowed for you.")
    purpose: PurposeOfUse | None = None
    if form.get("purpose_of_use"):
        try:
            purpose = PurposeOfUse(form["purpose_of_use"])
        except ValueError:
            raise OAuthError("invalid_request", "Unknown purpose_of_use.") from None
    reason = form.get("break_glass_reason") or None
    if (purpose in BREAK_GLASS_PURPOSES or reason) and user.role is not Role.CLINICIAN:
        raise OAuthError("invalid_request", "Only clinicians may declare break-glass access.")
    client_id = form.get("client_id") or LOGIN_CLIENT_ID
    if not _CLIENT_ID.match(client_id):
        raise OAuthError("invalid_request", "client_id has characters that are not allowed.")
    try:
        return endpoints.issuer.issue(
            role=user.role,
            subject=user.username,
            client_id=client_id,
            scope=str(granted),
            fhir_user=user.fhir_user,
            organisation=user.organisation,
            purpose_of_use=purpose,
            break_glass_reason=reason,
        )
    except ValueError:
        raise OAuthError(
            "invalid_request",
            "The token cannot be issued as asked (break-glass needs purpose_of_use BTG or "
            "ETREAT and a break_glass_reason).",
        ) from None


@router.get("/auth/jwks")
async def jwks(request: Request) -> Response:
    """The public keys of the embedded issuer (JWK Set)."""
    service: AccessService = request.app.state.access
    document = await run_in_threadpool(service.keys.jwks)
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=60"})


async def smart_configuration(request: Request) -> Response:
    """SMART discovery: what this register's authorization server supports."""
    return JSONResponse(smart_configuration_document(request))


def smart_configuration_document(request: Request) -> dict[str, Any]:
    """The ``.well-known/smart-configuration`` document for the base URL of ``request``."""
    settings = settings_of(request)
    _, endpoints = _endpoints(request)
    grants = ["client_credentials"]
    methods = ["private_key_jwt"]
    if settings.auth_password_login:
        grants.append("password")
        methods.append("none")  # the embedded login is a public client
    return {
        "issuer": endpoints.issuer_url,
        "jwks_uri": endpoints.jwks_url,
        "token_endpoint": endpoints.token_url,
        "grant_types_supported": grants,
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": list(settings.auth_allowed_algorithms),
        "scopes_supported": SCOPES_SUPPORTED,
        "capabilities": [
            "client-confidential-asymmetric",
            "permission-v1",
            "permission-v2",
            "permission-user",
            "permission-patient",
        ],
    }
