"""The ceiling: a bare FastAPI app answering every request with fixed bytes.

Started by the benchmark scripts on the same server (uvicorn), with the same worker count, so
``register / bare`` isolates what the register itself costs. ``BARE_BODY_FILE`` names the bytes
to serve; ``BARE_STATUS`` the status for POST.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.responses import Response

BODY = Path(os.environ.get("BARE_BODY_FILE", "/dev/null")).read_bytes()
MEDIA = "application/fhir+json; charset=utf-8"

app = FastAPI()


@app.get("/fhir/{resource_type}/{resource_id}")
async def read(resource_type: str, resource_id: str) -> Response:
    """Same path shape as a FHIR read; same bytes every time."""
    return Response(BODY, media_type=MEDIA)


@app.get("/fhir/{resource_type}")
async def search(resource_type: str) -> Response:
    """Same path shape as a FHIR search; same bytes every time."""
    return Response(BODY, media_type=MEDIA)


@app.post("/fhir/{resource_type}")
async def create(resource_type: str, request: Request) -> Response:
    """Same path shape as a FHIR create; reads the body, answers 201 with fixed bytes."""
    await request.body()
    return Response(BODY, status_code=201, media_type=MEDIA)
