"""Where FHIR requests enter the app: ahead of FastAPI's middleware stack, not through it.

A FHIR interaction needs none of what sits between the server and the routes of the rest of the
app: FastAPI's telemetry and body-limit wrappers, Starlette's error and exception middleware,
FastAPI's exit stack and the router, which tries each route's pattern in turn. Together they
cost a read tens of microseconds (benchmarks/README.md, Core). So :class:`RegisterApp` sends a
FHIR request to its own short chain (the request middleware, then the FHIR dispatcher), and
every other request to FastAPI as usual. On that chain the request middleware answers
exceptions with the app's own handlers (:mod:`register.api.errors`), and anything unhandled with
its 500, so a FHIR error leaves as the same OperationOutcome either way.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

PREFIX = "/fhir"
SMART_DISCOVERY = "/fhir/.well-known/smart-configuration"
"""Under ``/fhir`` but not a FHIR interaction: a GET of it goes to the app's own route."""


def is_fhir_request(scope: Scope) -> bool:
    """Whether an HTTP request is a FHIR interaction (a path under ``/fhir``, bar discovery)."""
    path: str = scope.get("path", "")
    return path.startswith(PREFIX) and not (
        path == SMART_DISCOVERY and scope["method"] in ("GET", "HEAD")
    )


class RegisterApp(FastAPI):
    """The register's FastAPI app, with FHIR requests taken ahead of its middleware stack."""

    fhir_entry: ASGIApp | None = None
    """The chain FHIR requests go through (set by the app factory; None sends them through
    FastAPI like any other request)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        entry = self.fhir_entry
        if entry is not None and scope["type"] == "http" and is_fhir_request(scope):
            scope["app"] = self  # as Starlette sets it: handlers reach the app's state
            await entry(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
