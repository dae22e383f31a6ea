"""The application factory: one function builds the whole service from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine

from register.api.errors import install_error_handlers
from register.api.fhir_routes import build_router
from register.api.middleware import RequestMiddleware
from register.api.ops_routes import router as ops_router
from register.db import create_db_engine
from register.settings import Settings, get_settings


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """Build the register's ASGI app for ``settings`` (environment settings by default)."""
    settings = settings or get_settings()
    engine = engine or create_db_engine(
        settings.resolved_database_url, pool_size=settings.db_pool_size
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="Shared Care Register",
        version="0.1.0",
        description="FHIR R4 shared care register for integrated care teams.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    install_error_handlers(app)
    app.include_router(ops_router)
    app.include_router(build_router())
    app.add_middleware(RequestMiddleware, max_body_bytes=settings.max_body_bytes)
    return app
