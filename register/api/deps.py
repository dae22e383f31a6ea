"""What every FHIR route needs: the request context, the database, the body."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from starlette.requests import Request

from auth.policy import NOTHING
from fhir_adapters.json_body import parse_json
from register.api.negotiation import check_body_type
from register.audit import requests as audit_requests
from register.audit import trail as audit_trail
from register.context import RequestContext
from register.db import Database
from register.settings import Settings
from register.visibility import SightVisibility

T = TypeVar("T")


def settings_of(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings  # type: ignore[no-any-return]


def engine_of(request: Request) -> Engine:
    """The app's database engine."""
    return request.app.state.engine  # type: ignore[no-any-return]


def db_of(request: Request) -> Database:
    """The app's database handle."""
    return request.app.state.db  # type: ignore[no-any-return]


_BASE_URLS: dict[tuple[str, str, str], str] = {}


def base_url(request: Request) -> str:
    """The FHIR base URL: the configured one, or the one this request came in on."""
    configured = settings_of(request).base_url
    if configured:
        return configured
    scope = request.scope
    key = (scope.get("scheme", "http"), request.headers.get("host", ""), scope.get("root_path", ""))
    cached = _BASE_URLS.get(key)
    if cached is None:
        cached = str(request.base_url).rstrip("/") + "/fhir"
        if len(_BASE_URLS) < 256:  # a handful of host names in practice; never unbounded
            _BASE_URLS[key] = cached
    return cached


_SEES_NOTHING = SightVisibility(NOTHING)


def context(request: Request) -> RequestContext:
    """The context interactions run in for this request: what the access gate admitted it to
    (a public route, which the gate does not see, may see nothing)."""
    state = request.state
    access = getattr(state, "access", None)
    if access is None:
        return RequestContext(
            request_id=getattr(state, "request_id", ""),
            base_url=base_url(request),
            visibility=_SEES_NOTHING,
        )
    return RequestContext(
        request_id=getattr(state, "request_id", ""),
        base_url=base_url(request),
        settings=settings_of(request),
        visibility=access.visibility,
        author_org=access.author_org,
        principal=access.principal,
        access=access,
    )


async def json_body(request: Request, *, patch: bool = False) -> Any:
    """The request body parsed as JSON, within the size and nesting limits."""
    check_body_type(request, patch=patch)
    body = await request.body()
    return parse_json(body, max_depth=settings_of(request).max_json_depth)


async def in_read(request: Request, work: Callable[[Connection], T], *, quick: bool = False) -> T:
    """Run ``work`` in a read transaction.

    ``quick`` reads (one indexed primary-key lookup) run right on the event loop: on SQLite they
    take microseconds and on PostgreSQL one loopback round trip, less than handing them to a
    worker thread costs (measured in benchmarks/bench_core.py). Everything else runs on a worker
    thread so a long query never stalls other requests.
    """
    db = db_of(request)
    if quick:
        with db.read(snapshot=False) as conn:
            return work(conn)

    def run() -> T:
        with db.read() as conn:
            return work(conn)

    return await db.in_thread(run)


async def in_write(request: Request, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in a write transaction on a worker thread (all or nothing); the request's
    audit event is appended in the same transaction, last, so both commit or neither does."""
    db = db_of(request)

    def run() -> T:
        trail = audit_trail.current()
        if trail is not None:
            trail.deferring = True
        try:
            with audit_trail.undone_on_failure(), db.write() as conn:
                result = work(conn)
                audit_requests.append_in_write(conn)
        finally:
            if trail is not None:
                trail.deferring = False
        audit_requests.committed()
        return result

    return await db.in_thread(run)
