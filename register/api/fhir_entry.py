"""ASGI middleware that hands FHIR requests straight to the FHIR dispatcher.

Every request under ``/fhir`` would otherwise pass Starlette's exception middleware, FastAPI's
exit-stack middleware and the router (which tries each route's pattern in turn) before reaching
the dispatcher, none of which a FHIR interaction uses: 18-43 µs a read, measured in process
against the same app routed the old way (benchmarks/README.md, Core). Exceptions get the same
handlers as the rest of the app
(:mod:`register.api.errors`), so a FHIR error leaves as the same OperationOutcome either way.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from register.api.errors import handler_for

SMART_DISCOVERY = "/fhir/.well-known/smart-configuration"
"""Under ``/fhir`` but not a FHIR interaction: a GET of it goes to the app's own route."""


class FhirEntry:
    """Sends FHIR requests (paths under ``prefix``) to ``dispatcher``, the rest to ``app``."""

    def __init__(self, app: ASGIApp, *, dispatcher: ASGIApp, prefix: str = "/fhir") -> None:
        self.app = app
        self.dispatcher = dispatcher
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(self.prefix) or (
            path == SMART_DISCOVERY and scope["method"] in ("GET", "HEAD")
        ):
            await self.app(scope, receive, send)
            return
        started = False

        async def sender(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.dispatcher(scope, receive, sender)
        except Exception as exc:
            handler = handler_for(exc)
            if handler is None or started:
                raise
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, sender)
