"""Liveness and readiness for the engineer on call (outside /fhir, no token needed)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from register.migrate import schema_status

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> JSONResponse:
    """Liveness: the process is up and answering."""
    return JSONResponse({"status": "ok"})


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """Readiness: the database answers and its schema is the one this code needs."""
    engine = request.app.state.engine

    def check() -> tuple[bool, str]:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            status = schema_status(engine)
        except Exception as exc:  # any database failure means not ready
            return False, f"database unreachable ({type(exc).__name__})"
        return status.is_current, status.describe()

    ok, detail = await run_in_threadpool(check)
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "database": detail},
        status_code=200 if ok else 503,
    )
