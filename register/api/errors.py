"""Exception handlers: every error leaves as an OperationOutcome, never as a stack trace."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from fhir_adapters.json_body import MalformedBody
from fhir_adapters.operation_outcome import error, outcome_bytes
from register.api.middleware import BodyTooLarge
from register.errors import FhirError

CONTENT_TYPE = "application/fhir+json; charset=utf-8"

_HTTP_CODES = {404: "not-found", 405: "not-supported", 401: "login", 403: "forbidden"}


def _outcome(status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=CONTENT_TYPE, headers=headers)


async def _fhir_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FhirError)
    return _outcome(exc.status, outcome_bytes(exc.issues), exc.headers)


async def _malformed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MalformedBody)
    return _outcome(400, outcome_bytes([exc.issue]))


async def _too_large(request: Request, exc: Exception) -> Response:
    limit = request.app.state.settings.max_body_bytes
    body = outcome_bytes([error("too-long", f"The request body is larger than {limit} bytes.")])
    return _outcome(413, body, {"Connection": "close"})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "processing")
    message = "No such endpoint." if exc.status_code == 404 else str(exc.detail)[:200]
    return _outcome(exc.status_code, outcome_bytes([error(code, message)]), exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    issues = [
        error("invalid", f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"[:300])
        for e in exc.errors()[:10]
    ]
    return _outcome(400, outcome_bytes(issues))


Handler = Callable[[Request, Exception], Awaitable[Response]]

HANDLERS: dict[type[Exception], Handler] = {
    FhirError: _fhir_error,
    MalformedBody: _malformed,
    BodyTooLarge: _too_large,
    StarletteHTTPException: _http_error,
    RequestValidationError: _validation_error,
}
"""Which exceptions become which OperationOutcome responses."""


def handler_for(exc: Exception) -> Handler | None:
    """The handler for ``exc`` (the nearest class in its hierarchy that has one), as Starlette's
    exception middleware would choose it."""
    for cls in type(exc).__mro__:
        handler = HANDLERS.get(cls)
        if handler is not None:
            return handler
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into OperationOutcome responses."""
    for exception, handler in HANDLERS.items():
        app.add_exception_handler(exception, handler)
