"""The application factory: one function builds the whole service from settings."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.routing import Route as StarletteRoute

from register import auth_routes
from register.access_service import AccessService
from register.api import (
    ask_once_route,  # noqa: F401  (registers $summary, $populate)
    consent_route,  # noqa: F401  (registers $access-explain)
    everything_route,  # noqa: F401  (registers $everything)
)
from register.api.errors import handler_for, install_error_handlers
from register.api.fhir_entry import RegisterApp
from register.api.fhir_routes import build_dispatcher
from register.api.middleware import RequestMiddleware
from register.api.ops_routes import router as ops_router
from register.api.review_routes import router as review_router
from register.audit.writer import AuditWriter
from register.db import Database, create_db_engine
from register.duplicates import operations as duplicate_operations  # noqa: F401 (registers)
from register.duplicates import reports as duplicate_reports  # noqa: F401 (registers)
from register.settings import Settings, get_settings
from register.web import install as install_pages

_frozen = False


def _freeze_startup_objects() -> None:
    """Keep what start-up loaded (it lives as long as the process) out of the garbage
    collector's full passes, which otherwise stalled requests for tens of milliseconds (p99 of
    audited reads 86 ms -> 16 ms, benchmarks/README.md). Once per process: apps made again
    later (as tests do) must not freeze their predecessors' leftovers."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """Build the register's ASGI app for ``settings`` (environment settings by default)."""
    settings = settings or get_settings()
    engine = engine or create_db_engine(
        settings.resolved_database_url, pool_size=settings.db_pool_size
    )

    db = Database(engine, concurrency=settings.db_pool_size)
    access = AccessService(settings)
    audit = AuditWriter(db)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        access.start()  # the signing key is generated on first start
        if settings.audit_enabled:
            audit.start()  # the audit writer process
        _freeze_startup_objects()
        yield
        await audit.aclose()  # waits for what was shipped to commit
        access.close()
        db.dispose()

    app = RegisterApp(
        title="Shared Care Register",
        version="0.1.0",
        description="FHIR R4 shared care register for integrated care teams.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.db = db
    app.state.access = access
    app.state.audit = audit
    install_error_handlers(app)
    app.include_router(ops_router)
    app.include_router(auth_routes.router)  # /auth/token, /auth/jwks
    app.include_router(review_router)  # /review/... (improvement review, JSON and CSV)
    install_pages(app)  # the pages for people (register/web)
    # FHIR requests enter ahead of FastAPI's stack (register/api/fhir_entry.py): the request
    # middleware, answering with the same exception handlers, then the FHIR dispatcher. Only SMART
    # discovery, public and under /fhir, is an ordinary route.
    app.router.routes[0:0] = [
        StarletteRoute(
            "/fhir/.well-known/smart-configuration",
            endpoint=auth_routes.smart_configuration,
            methods=["GET"],
        ),
    ]
    app.add_middleware(RequestMiddleware, max_body_bytes=settings.max_body_bytes)
    app.fhir_entry = RequestMiddleware(
        build_dispatcher(), max_body_bytes=settings.max_body_bytes, handler_for=handler_for
    )
    return app
