"""Improvement reviewers' pages: duplicated work counted, rated, charted and drilled into.

Built on the review service (``register/review/report.py``): counts by rule, organisation pair,
service and month with rates per 1,000 relevant actions; XmR charts with the Making Data Count
special-cause markers (``register/review/spc.py``); de-identified drill-down (pseudonyms only,
fewer than 5 never listed); CSV downloads; the improvement actions log ("You said, we did").
Every number the review service returns is already de-identified and small-number suppressed;
these pages show what it returns, no more. Only improvement reviewers' sessions reach them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from auth.policy import Refusal, ReviewUse, review_access
from fhir_adapters.detected_issue import RULE_DISPLAY
from register import feedback
from register.api.deps import base_url, db_of, settings_of
from register.relationships import ODS_SYSTEM
from register.review.keys import review_key
from register.review.report import (
    DIMENSIONS,
    Review,
    load_review,
    record_improvement_action,
    to_csv,
)
from register.web.fhir_client import Fhir, access_token
from register.web.guard import SignInNeeded, form_of, session_for
from register.web.render import SECURITY_HEADERS, page
from register.web.sessions import WebSession

router = APIRouter(include_in_schema=False)
ROLE = "reviewer"


async def _reviewer(request: Request, use: ReviewUse = ReviewUse.READ) -> WebSession:
    """The reviewer's session, admitted by the same policy decision as the review API
    (``auth.policy.review_access`` on the principal of the session's own token)."""
    session = await session_for(request, ROLE)
    token = access_token(request, session)
    tokens = request.app.state.access.endpoints(base_url(request)).tokens
    principal = await run_in_threadpool(tokens.principal, token)
    if isinstance(review_access(principal, use), Refusal):
        raise SignInNeeded
    return session


MARKERS = {
    "beyond-limit": "Point beyond a control limit",
    "shift": "Shift: 7 or more points on one side of the mean",
    "trend": "Trend: 7 or more points rising or falling",
    "two-of-three": "2 of 3 points close to a limit",
}


def _load(request: Request) -> Review:
    settings = settings_of(request)
    with db_of(request).read() as conn:
        return load_review(conn, review_key(settings.data_dir))


def _chart(trend: dict[str, Any], label: str) -> dict[str, Any]:
    """A trend's periods flattened into one chart spec (values, limits, markers)."""
    labels: list[str] = []
    values: list[float] = []
    markers: list[str] = []
    mean: list[float | None] = []
    upper: list[float | None] = []
    lower: list[float | None] = []
    for period in trend["periods"]:
        for point in period["points"]:
            labels.append(point["month"])
            values.append(point["value"])
            flags = point["special_cause"]
            high = point["value"] > period["mean"]
            markers.append(("high" if high else "low") if flags else "")
            mean.append(period["mean"])
            upper.append(period["upper_limit"])
            lower.append(period["lower_limit"])
    return {
        "label": label,
        "labels": labels,
        "values": values,
        "markers": markers,
        "unit": trend["measure"],
        "lines": [
            {"label": "Mean", "values": mean, "colour": "#425563"},
            {"label": "Upper process limit", "values": upper, "colour": "#768692", "dashed": True},
            {"label": "Lower process limit", "values": lower, "colour": "#768692", "dashed": True},
        ],
    }


def _trends(review: Review) -> list[dict[str, Any]]:
    rules = sorted({f.rule for f in review.findings})
    out = []
    for rule in rules:
        trend = review.trend(rule=rule)
        points = [
            {
                **p,
                "period": period["period"],
                "mean": period["mean"],
                "upper": period["upper_limit"],
                "lower": period["lower_limit"],
                "markers": [MARKERS.get(flag, flag) for flag in p["special_cause"]],
            }
            for period in trend["periods"]
            for p in period["points"]
        ]
        label = RULE_DISPLAY.get(rule, rule)
        out.append(
            {
                "rule": rule,
                "label": label,
                "measure": trend["measure"],
                "variation": trend["periods"][-1]["variation"] if trend["periods"] else "",
                "points": points,
                "chart": _chart(trend, label),
                "actions": trend["improvement_actions"],
            }
        )
    return out


async def _labels(request: Request, session: Any) -> dict[str, str]:
    """Words for the codes in the counts: rule names, and organisations' names by ODS code
    (read from the shared directory through the FHIR API, as the reviewer)."""
    answer = await Fhir(request, session).get("Organization", params={"_count": "1000"})
    names = {
        i["value"]: f"{r.get('name') or i['value']} ({i['value']})"
        for r in answer.entries("Organization")
        for i in r.get("identifier") or []
        if i.get("system") == ODS_SYSTEM and i.get("value")
    }
    return {**names, **RULE_DISPLAY}


@router.get("/reviewer")
async def dashboard(request: Request) -> Response:
    """The review dashboard: counts, rates, XmR trends and the improvement actions log."""
    session = await _reviewer(request)
    review = await run_in_threadpool(_load, request)
    return page(
        request,
        "review/dashboard.html",
        session,
        title="Duplicated work",
        by_rule=review.counts(["rule"]),
        by_pair=review.counts(["repeat_org", "original_org"]),
        by_service=review.counts(["service"]),
        by_month=review.counts(["month"]),
        trends=_trends(review),
        actions=review.actions,
        rules=RULE_DISPLAY,
        labels=await _labels(request, session),
        total=len(review.findings),
    )


def _feedback_counts(request: Request) -> list[feedback.ThemeCount]:
    with db_of(request).read() as conn:
        return feedback.theme_counts(conn)


@router.get("/reviewer/feedback")
async def feedback_themes(request: Request) -> Response:
    """Patient feedback themes: counts by theme and month only (fewer than 5 shown as "<5");
    never the patients' words, names or record ids."""
    session = await _reviewer(request)
    counts = await run_in_threadpool(_feedback_counts, request)
    return page(
        request,
        "review/feedback.html",
        session,
        title="Patient feedback themes",
        counts=counts,
        themes=feedback.themes(),
        small=feedback.SMALL,
    )


@router.get("/reviewer/findings")
async def drill_down(request: Request) -> Response:
    """The de-identified findings behind one count (none listed when fewer than 5)."""
    session = await _reviewer(request)
    chosen = {k: v for k, v in request.query_params.items() if k in DIMENSIONS}
    review = await run_in_threadpool(_load, request)
    rows = review.drill_down(chosen)
    return page(
        request,
        "review/findings.html",
        session,
        title="Findings",
        chosen=chosen,
        rows=rows,
        rules=RULE_DISPLAY,
        labels=await _labels(request, session),
        csv_query="&".join(f"{k}={v}" for k, v in chosen.items()),
    )


@router.get("/reviewer/counts.csv")
async def counts_csv(request: Request, by: str = "rule") -> Response:
    """Counts by the given dimensions (comma-separated) as CSV."""
    await _reviewer(request)
    dims = [d for d in by.split(",") if d in DIMENSIONS] or ["rule"]
    review = await run_in_threadpool(_load, request)
    return _csv(to_csv(review.counts(dims)), "duplicated-work-counts.csv")


@router.get("/reviewer/findings.csv")
async def findings_csv(request: Request) -> Response:
    """The drill-down of one count as CSV (de-identified; empty under 5)."""
    await _reviewer(request)
    chosen = {k: v for k, v in request.query_params.items() if k in DIMENSIONS}
    review = await run_in_threadpool(_load, request)
    return _csv(to_csv(review.drill_down(chosen)), "duplicated-work-findings.csv")


def _csv(text: str, name: str) -> Response:
    headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(text, media_type="text/csv; charset=utf-8", headers=headers)


@router.post("/reviewer/actions")
async def add_action(request: Request) -> Response:
    """Log an improvement action against a rule or organisation pair ("You said, we did")."""
    session = await _reviewer(request, ReviewUse.RECORD_ACTION)
    form = await form_of(request, session)
    note = form.get("note", "").strip()
    rule = form.get("rule") or None
    try:
        when = datetime.strptime(form.get("date", ""), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        when = None
    if not note or when is None or (rule is not None and rule not in RULE_DISPLAY):
        return page(
            request,
            "message.html",
            session,
            status=400,
            title="Action not saved",
            message="Enter a date (YYYY-MM-DD) and a note; choose a rule from the list.",
            link="/reviewer#actions",
            link_text="Back to the review",
        )

    def save() -> None:
        with db_of(request).write() as conn:
            record_improvement_action(
                conn,
                note=note,
                action_date=when,
                author=session.identity.username,
                rule=rule,
                repeat_org=form.get("repeat_org") or None,
                original_org=form.get("original_org") or None,
            )

    await run_in_threadpool(save)
    return RedirectResponse("/reviewer#actions", status_code=303)
