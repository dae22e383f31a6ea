"""What every FHIR route needs: the request context, the database, the body."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from fhir_adapters.json_body import parse_json
from register.api.negotiation import check_body_type
from register.context import RequestContext
from register.db import read_transaction, write_transaction
from register.settings import Settings

T = TypeVar("T")


def settings_of(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings  # type: ignore[no-any-return]


def engine_of(request: Request) -> Engine:
    """The app's database engine."""
    return request.app.state.engine  # type: ignore[no-any-return]


def base_url(request: Request) -> str:
    """The FHIR base URL: the configured one, or the one this request came in on."""
    configured = settings_of(request).base_url
    if configured:
        return configured
    return str(request.base_url).rstrip("/") + "/fhir"


def context(request: Request) -> RequestContext:
    """The context interactions run in for this request."""
    return RequestContext(
        request_id=getattr(request.state, "request_id", ""),
        base_url=base_url(request),
    )


async def json_body(request: Request, *, patch: bool = False) -> Any:
    """The request body parsed as JSON, within the size and nesting limits."""
    check_body_type(request, patch=patch)
    body = await request.body()
    return parse_json(body, max_depth=settings_of(request).max_json_depth)


async def in_read(request: Request, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in a read transaction on a worker thread."""
    engine = engine_of(request)

    def run() -> T:
        with read_transaction(engine) as conn:
            return work(conn)

    return await run_in_threadpool(run)


async def in_write(request: Request, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in a write transaction on a worker thread (all or nothing)."""
    engine = engine_of(request)

    def run() -> T:
        with write_transaction(engine) as conn:
            return work(conn)

    return await run_in_threadpool(run)
