"""Privacy officers' page: the review queue of break-glass accesses, marked appropriate or not.

Built on the break-glass service (``register/access_breakglass.py``: ``list_grants``,
``review_grant``), the same queue ``careregister break-glass list/review`` works through. Only
privacy officers' sessions reach it. Accesses outside a care relationship join the queue when
the audit log's review queue lands (issue 6).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from register.access_breakglass import GrantRow, list_grants, review_grant
from register.api.deps import db_of
from register.web.guard import form_of, session_for
from register.web.render import page

router = APIRouter(include_in_schema=False)
ROLE = "privacy_officer"
OUTCOMES = {"justified": "Appropriate", "not-justified": "Inappropriate", "referred": "Referred on"}


@router.get("/privacy")
async def queue(request: Request, show: str = "waiting") -> Response:
    """Break-glass accesses waiting for review (or all of them)."""
    session = await session_for(request, ROLE)

    def load() -> list[GrantRow]:
        with db_of(request).read() as conn:
            return list_grants(conn, unreviewed_only=show != "all")

    grants = await run_in_threadpool(load)
    return page(
        request,
        "privacy/queue.html",
        session,
        title="Access review queue",
        grants=list(reversed(grants)),
        outcomes=OUTCOMES,
        show=show,
    )


@router.post("/privacy/{grant_pk}")
async def mark(request: Request, grant_pk: int) -> Response:
    """Record the review of one access: appropriate, inappropriate or referred, with a note."""
    session = await session_for(request, ROLE)
    form = await form_of(request, session)
    outcome = form.get("outcome", "")
    note = form.get("note", "").strip()[:2000]
    if outcome not in OUTCOMES:
        return page(
            request,
            "message.html",
            session,
            status=400,
            title="Review not saved",
            message="Choose whether the access was appropriate.",
            link="/privacy",
            link_text="Back to the queue",
        )

    def save() -> bool:
        with db_of(request).write() as conn:
            return review_grant(
                conn, grant_pk, outcome=outcome, reviewer=session.identity.username, note=note
            )

    if not await run_in_threadpool(save):
        return page(
            request,
            "message.html",
            session,
            status=404,
            title="Not found",
            message="There is no such access to review.",
            link="/privacy",
            link_text="Back to the queue",
        )
    return RedirectResponse("/privacy", status_code=303)
