"""A flat, fast dispatcher for the FHIR interaction table.

FHIR paths are a handful of shapes (``/{type}``, ``/{type}/{id}``, ``/{type}/{id}/_history/{vid}``
...), so matching splits the path into segments and compares it with the table's rows of the
same method and length — no regular expressions, no dependency solving. Measured: FastAPI's
general router cost more per read than the database lookup itself.

Access: the dispatcher knows nothing of tokens or policy, but every route that is not marked
``public`` passes through the ``guard`` it is given (``register.access_gate.guard``) before its
handler runs, so no handler can forget to check who is asking. Likewise every such request
runs inside the ``audit`` hook it is given (``register.audit.requests.audited``), which records
one audit event per interaction, granted or refused, before the response is sent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from fhir_adapters.operation_outcome import error, outcome_bytes

Endpoint = Callable[..., Awaitable[Response]]
Guard = Callable[[Request, "Route", dict[str, str]], Awaitable[None]]
Audit = Callable[
    [Request, "Route", dict[str, str], Callable[[], Awaitable[Response]]], Awaitable[ASGIApp]
]
"""Runs a request and gives what to send: the response, or one that waits for the request's
audit event to be committed first."""


@dataclass(frozen=True)
class Route:
    """One row of the interaction table: FHIR interaction code, level, HTTP method and path."""

    interaction: str
    level: str
    method: str
    path: str
    endpoint: Endpoint
    prefix: str = "/fhir"
    public: bool = False
    segments: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(s for s in self.path.split("/") if s))

    @property
    def template(self) -> str:
        """The path template, as logged (never the concrete path, which can hold identifiers)."""
        return self.prefix + (self.path or "")

    def match(self, parts: Sequence[str]) -> dict[str, str] | None:
        """Path parameters if ``parts`` fits this route's shape, else None."""
        params: dict[str, str] = {}
        for pattern, part in zip(self.segments, parts, strict=True):
            if pattern[0] == "{":
                params[pattern[1:-1]] = part
            elif pattern != part:
                return None
        return params


class FhirDispatcher:
    """An ASGI app serving every FHIR route under one prefix."""

    def __init__(
        self,
        routes: Sequence[Route],
        prefix: str = "/fhir",
        guard: Guard | None = None,
        audit: Audit | None = None,
    ) -> None:
        self.prefix = prefix
        self.guard = guard
        self.audit = audit
        self.table: dict[tuple[str, int], list[Route]] = defaultdict(list)
        self.paths: set[tuple[int, tuple[str, ...]]] = set()
        for route in routes:
            self.table[(route.method, len(route.segments))].append(route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        rest = path[len(self.prefix) :]
        if rest and rest[0] != "/":
            await _outcome(404, "No such endpoint.")(scope, receive, send)
            return
        parts = [p for p in rest.split("/") if p]
        method = scope["method"]
        lookup = "GET" if method == "HEAD" else method
        for route in self.table.get((lookup, len(parts)), ()):
            params = route.match(parts)
            if params is not None:
                scope["route"] = route
                request = Request(scope, receive)
                response: ASGIApp
                if route.public:
                    response = await route.endpoint(request, **params)
                elif self.audit is not None:
                    response = await self.audit(
                        request,
                        route,
                        params,
                        partial(self._run, request, route, params),
                    )
                else:
                    response = await self._run(request, route, params)
                await response(scope, receive, send)
                return
        if any(
            route.match(parts) is not None
            for (other, size), candidates in self.table.items()
            if size == len(parts) and other != lookup
            for route in candidates
        ):
            await _outcome(405, f"{method} is not supported on this path.")(scope, receive, send)
            return
        await _outcome(404, "No such endpoint.")(scope, receive, send)

    async def _run(self, request: Request, route: Route, params: dict[str, str]) -> Response:
        if self.guard is not None:
            await self.guard(request, route, params)
        return await route.endpoint(request, **params)


def _outcome(status: int, message: str) -> Response:
    code = "not-supported" if status == 405 else "not-found"
    return Response(
        outcome_bytes([error(code, message)]),
        status_code=status,
        media_type="application/fhir+json; charset=utf-8",
    )
