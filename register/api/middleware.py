"""ASGI middleware: request ids, the body size limit and one JSON log line per request.

Written as plain ASGI (not BaseHTTPMiddleware) so it adds microseconds, not a task per request.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_adapters.operation_outcome import error, outcome_bytes
from register.logs import request_log

log = logging.getLogger("register.request")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_ID_RANDOM = secrets.token_hex(10)  # 80 bits, drawn once per process
_ID_PREFIX = f"{_ID_RANDOM[:8]}-{_ID_RANDOM[8:12]}-{_ID_RANDOM[12:16]}-{_ID_RANDOM[16:]}-"
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """A request id shaped like a UUID: 80 random bits drawn when the process starts, then a
    counter, so ids are unique across processes and restarts without reading the system's random
    source for every request (``uuid4`` did, at about 5 µs a request; this costs under 1)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):012x}"


class BodyTooLarge(Exception):
    """The request body passed the configured limit while being read."""


Handler = Callable[[Request, Exception], Awaitable[Response]]


class RequestMiddleware:
    """Assigns a request id, enforces the body limit, and logs each request as one JSON line.

    ``handler_for`` (optional) finds the response for an exception the app raised before
    answering (the FHIR entry passes the app's handlers, :mod:`register.api.errors`); anything
    else is logged and answered with a plain 500.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        handler_for: Callable[[Exception], Handler | None] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.handler_for = handler_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _incoming_request_id(scope) or new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        id_header = (b"x-request-id", request_id.encode())
        status_holder: dict[str, int] = {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = 1
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        try:
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body_bytes:
                await _too_large(send_with_id, self.max_body_bytes)
                return
            limited = self._limited(receive)
            try:
                await self.app(scope, limited, send_with_id)
            except Exception as exc:
                handler = None if self.handler_for is None else self.handler_for(exc)
                if handler is not None and not status_holder.get("started"):
                    response = await handler(Request(scope, limited), exc)
                    await response(scope, limited, send_with_id)
                    return
                # Anything unhandled: log it (type and frames only) and answer a plain 500.
                log.error("unhandled error", exc_info=exc, extra={"request_id": request_id})
                if status_holder.get("started"):
                    raise
                await _server_error(send_with_id, request_id)
        finally:
            route = scope.get("route")
            request_log.write(
                {
                    "method": scope.get("method"),
                    "path": getattr(route, "template", None)
                    or getattr(route, "path", None)
                    or "(unmatched)",
                    "status": status_holder["status"],
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "request_id": request_id,
                }
            )

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge()
            return message

        return limited_receive


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _REQUEST_ID.match(text) else None
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Any, limit: int) -> None:
    body = outcome_bytes([error("too-long", f"The request body is larger than {limit} bytes.")])
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/fhir+json; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _server_error(send: Any, request_id: str) -> None:
    body = outcome_bytes(
        [
            error(
                "exception",
                f"The register could not complete this request (request id {request_id}).",
            )
        ]
    )
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/fhir+json; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
