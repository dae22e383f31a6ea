"""Privacy officers' page: the audit log's review queue, each access marked appropriate or not.

The queue is the audit service's (``register/audit/review_queue.py``): every break-glass start
with its typed reason, and every access by a clinician or organisation system to a patient it
had no care relationship with. The page reads it and records reviews through the FHIR API as the
privacy officer (``GET /fhir/AuditEvent/$review-queue``, ``POST /fhir/AuditEvent/{id}/$review``),
so ``auth.policy.review_refusal`` decides who may, and each review is itself audited.
"""

from __future__ import annotations

import re

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from register.web.fhir_client import Fhir
from register.web.guard import form_of, session_for
from register.web.render import page

router = APIRouter(include_in_schema=False)
ROLE = "privacy_officer"
VERDICTS = {"appropriate": "Appropriate", "inappropriate": "Inappropriate"}
CATEGORIES = {
    "break-glass": "Emergency (break-glass) access",
    "no-relationship": "Access without a care relationship",
}
EVENT_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


@router.get("/privacy")
async def queue(request: Request, show: str = "open") -> Response:
    """Accesses waiting for review (or all of them)."""
    session = await session_for(request, ROLE)
    status = "all" if show == "all" else "open"
    answer = await Fhir(request, session).get(
        "AuditEvent/$review-queue", params={"status": status, "_count": "200"}
    )
    items = (answer.body or {}).get("items", []) if answer.ok else []
    return page(
        request,
        "privacy/queue.html",
        session,
        title="Access review queue",
        items=list(reversed(items)),
        verdicts=VERDICTS,
        categories=CATEGORIES,
        show=status,
        available=answer.ok,
    )


@router.post("/privacy/{event_id}")
async def mark(request: Request, event_id: str) -> Response:
    """Record the review of one access: appropriate or inappropriate, with a note."""
    session = await session_for(request, ROLE)
    form = await form_of(request, session)
    verdict = form.get("verdict", "")
    note = form.get("note", "").strip()[:2000]
    if verdict not in VERDICTS or not EVENT_ID.fullmatch(event_id):
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
    answer = await Fhir(request, session).post(
        f"AuditEvent/{event_id}/$review", {"verdict": verdict, "note": note}
    )
    if not answer.ok:
        return page(
            request,
            "message.html",
            session,
            status=answer.status,
            title="Review not saved",
            message=" ".join(answer.issues()) or "The register did not accept it.",
            link="/privacy",
            link_text="Back to the queue",
        )
    return RedirectResponse("/privacy", status_code=303)
