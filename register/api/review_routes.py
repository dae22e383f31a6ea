"""The improvement review over HTTP: ``/review/...``, JSON or CSV, for the reviewer role.

- ``GET  /review/counts?by=rule,repeat_org&since=&until=``: counts, relevant actions, rate per
  1,000;
- ``GET  /review/trend?rule=&repeat_org=&original_org=``: the monthly XmR chart with Making Data
  Count markers, before and after improvement actions;
- ``GET  /review/findings?rule=repeat-test&repeat_org=HOS03``: de-identified drill-down;
- ``GET  /review/actions`` and ``POST /review/actions``: improvement actions ("You said, we did").

CSV with ``Accept: text/csv`` or ``_format=csv``. A bearer token is required; who may use the
review is decided by ``auth.policy.review_access`` (no role checks here). The work is done by
:mod:`register.review.service`, which the web pages call too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter
from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response

from auth.policy import Refusal, ReviewUse, review_access
from auth.principal import Principal
from register import access_gate
from register.access_request import refusal_error
from register.api.deps import in_read, in_write, json_body, settings_of
from register.review import service
from register.review.keys import review_key
from register.review.report import to_csv

router = APIRouter(prefix="/review", tags=["improvement review"])

CSV = "text/csv; charset=utf-8"
JSON = "application/json"
_NOT_FILTERS = {"since", "until", "_format", "by"}


async def _admitted(request: Request, use: ReviewUse) -> Principal:
    """The caller, once the policy has admitted them to ``use`` the review."""
    principal, _ = await access_gate.authenticate(request)
    decided = review_access(principal, use)
    if isinstance(decided, Refusal):
        raise refusal_error(decided)
    return principal


def _wants_csv(request: Request) -> bool:
    requested = request.query_params.get("_format")
    if requested is not None:
        return requested.strip().lower() in ("csv", "text/csv")
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip().lower() == "text/csv" for part in accept.split(","))


def _answer(
    request: Request,
    payload: Any,
    rows: Callable[[Any], list[dict[str, Any]]],
    status: int = 200,
    columns: list[str] | None = None,
) -> Response:
    if _wants_csv(request):
        return Response(to_csv(rows(payload), columns or ()), status_code=status, media_type=CSV)
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON)


def _key(request: Request) -> bytes:
    return review_key(settings_of(request).data_dir)


def _period(request: Request) -> service.Period:
    query = request.query_params
    return service.Period.parse(query.get("since"), query.get("until"))


@router.get("/counts")
async def counts(request: Request) -> Response:
    """Findings counted by ``by`` (rule, code, group, repeat_org, original_org, service, month,
    source) with rates per 1,000 relevant actions; counts under 5 shown as "<5"."""
    await _admitted(request, ReviewUse.READ)
    by = service.dimensions(request.query_params.get("by"))
    period = _period(request)
    key = _key(request)
    rows = await in_read(request, lambda conn: service.counts(conn, key, by, period))
    return _answer(request, {"by": by, "rows": rows}, lambda p: p["rows"], columns=by)


@router.get("/trend")
async def trend(request: Request) -> Response:
    """The monthly XmR chart with special-cause markers, split at improvement actions."""
    await _admitted(request, ReviewUse.READ)
    query = request.query_params
    period = _period(request)
    key = _key(request)

    def work(conn: Connection) -> dict[str, Any]:
        return service.trend(
            conn,
            key,
            rule=query.get("rule"),
            repeat_org=query.get("repeat_org") or None,
            original_org=query.get("original_org") or None,
            period=period,
        )

    chart = await in_read(request, work)
    return _answer(request, chart, service.trend_rows)


@router.get("/findings")
async def findings(request: Request) -> Response:
    """De-identified findings behind one count: ``?dimension=value`` filters."""
    await _admitted(request, ReviewUse.READ)
    filters = {k: v for k, v in request.query_params.items() if k not in _NOT_FILTERS}
    period = _period(request)
    key = _key(request)
    result = await in_read(request, lambda conn: service.findings(conn, key, filters, period))
    return _answer(request, result, lambda p: p["findings"])


@router.get("/actions")
async def actions(request: Request) -> Response:
    """Improvement actions recorded so far."""
    await _admitted(request, ReviewUse.READ)
    recorded = await in_read(request, service.improvement_actions)
    return _answer(request, {"actions": recorded}, lambda p: p["actions"])


@router.post("/actions")
async def record_action(request: Request) -> Response:
    """Record an improvement action: ``{"date", "note", "rule"?, "repeat_org"?,
    "original_org"?}``; 201 with the action recorded."""
    principal = await _admitted(request, ReviewUse.RECORD_ACTION)
    body = await json_body(request)
    recorded = await in_write(
        request, lambda conn: service.record_action(conn, body, author=principal.subject)
    )
    return _answer(request, recorded, lambda p: [p], status=201)
