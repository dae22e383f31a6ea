"""Tell us what went wrong: a patient reports that a test was repeated or a question asked again.

The form posts, as the signed-in patient, to the register's own FHIR operation
``POST Patient/{own id}/$report-duplicate`` (``register/duplicates/reports.py``), so the one
policy decision point (``auth.policy.may_report_duplicate``) decides, and the report becomes a
patient-reported finding counted by the improvement review (``source = patient-reported``).
What the patient can pick comes from the duplicate rules' data files (question concepts, retest
groups) and the organisations in their record; only codes reach the review, never their words.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from register import feedback
from register.api.deps import settings_of
from register.duplicates.config import DuplicateConfig, config_from
from register.duplicates.reports import MAX_NOTE
from register.web.fhir_client import Fhir
from register.web.guard import form_of, session_for
from register.web.record import load_record
from register.web.render import page

router = APIRouter(include_in_schema=False)
ROLE = "patient"
KINDS = {
    "asked-again": "I was asked something again that the people caring for me already knew",
    "test-repeated": "I had a test again that I had already had",
}


def _config(request: Request) -> DuplicateConfig:
    return config_from(getattr(settings_of(request), "duplicates_dir", None))


def choices(config: DuplicateConfig) -> dict[str, list[tuple[str, str]]]:
    """What a patient can say was repeated: question concepts (by key) and tests (by one code
    of each retest group, which the operation maps back to the group)."""
    return {
        "question": [(c.key, c.name) for c in config.concepts],
        "test": [(sorted(g.codes)[0], g.name) for g in config.groups if g.codes],
    }


def parameters(form: dict[str, str], known: dict[str, Any]) -> tuple[dict[str, Any], dict]:
    """The operation's Parameters for a posted form, and the errors (field id -> message)."""
    errors: dict[str, str] = {}
    kind = form.get("kind", "")
    params: list[dict[str, Any]] = []
    if kind not in KINDS:
        errors["kind-asked-again"] = "Choose what went wrong"
    else:
        params.append({"name": "kind", "valueCode": kind})
        field = "question" if kind == "asked-again" else "test"
        concept = form.get(field, "")
        if concept:
            if concept not in {value for value, _ in known[field]}:
                errors[field] = "Choose from the list"
            else:
                params.append({"name": "concept", "valueCode": concept})
    when = form.get("date", "").strip()
    if when:
        try:
            day = date.fromisoformat(when)
        except ValueError:
            errors["date"] = "Enter the date as year-month-day, for example 2026-03-14"
        else:
            if day > datetime.now(UTC).date():
                errors["date"] = "The date must be today or in the past"
            else:
                params.append({"name": "date", "valueDate": day.isoformat()})
    organisation = form.get("organisation", "")
    if organisation:
        if organisation not in known["organisations"]:
            errors["organisation"] = "Choose an organisation from the list"
        else:
            params.append({"name": "organization", "valueString": organisation})
    note = form.get("note", "").strip()
    if len(note) > MAX_NOTE:
        errors["note"] = f"Your description must be {MAX_NOTE} characters or fewer"
    elif note:
        params.append({"name": "note", "valueString": note})
    return {"resourceType": "Parameters", "parameter": params}, errors


async def _context(request: Request, session: Any) -> dict[str, Any]:
    patient_id = (session.identity.fhir_user or "").split("/", 1)[-1]
    record = await load_record(Fhir(request, session), patient_id)
    return {
        "patient_id": patient_id,
        "organisations": dict(sorted(record.organisations.items(), key=lambda item: item[1])),
        **choices(_config(request)),
        "kinds": KINDS,
        "max_note": MAX_NOTE,
        "themes": feedback.themes(),
        "max_comment": feedback.MAX_COMMENT,
    }


def _form(request: Request, session: Any, context: dict[str, Any], **values: Any) -> Response:
    return page(
        request,
        "patient/report.html",
        session,
        title="Tell us what went wrong",
        **{"errors": {}, "form": {}, "feedback_errors": {}, **context, **values},
    )


@router.get("/my/report")
async def report_form(request: Request) -> Response:
    """The forms: what was repeated, when and where, in the patient's words."""
    session = await session_for(request, ROLE)
    return _form(request, session, await _context(request, session))


@router.post("/my/report")
async def report(request: Request) -> Response:
    """Send the report to ``Patient/{own id}/$report-duplicate`` as the patient."""
    session = await session_for(request, ROLE)
    form = await form_of(request, session)
    context = await _context(request, session)
    body, errors = parameters(form, context)
    if errors:
        return _form(request, session, context, status=400, errors=errors, form=form)
    answer = await Fhir(request, session).post(
        f"Patient/{context['patient_id']}/$report-duplicate", body
    )
    if not answer.ok:
        return page(
            request,
            "message.html",
            session,
            status=400 if answer.status < 500 else 502,
            title="Your report was not sent",
            message=" ".join(answer.issues()) or "The register did not accept it.",
            link="/my/report",
            link_text="Back to the form",
        )
    return RedirectResponse("/my/report/sent", status_code=303)


@router.get("/my/report/sent")
async def sent(request: Request, feedback: str = "") -> Response:
    """Confirmation that the report (or feedback) reached the register."""
    session = await session_for(request, ROLE)
    title = "Thank you for your feedback" if feedback else "Thank you, your report was sent"
    return page(request, "patient/report_sent.html", session, title=title, feedback=bool(feedback))


@router.post("/my/feedback")
async def send_feedback(request: Request) -> Response:
    """Save general feedback as the patient's QuestionnaireResponse to the feedback
    Questionnaire; reviewers see only its theme, counted (``register/feedback.py``)."""
    session = await session_for(request, ROLE)
    form = await form_of(request, session)
    context = await _context(request, session)
    theme = form.get("theme", "")
    comment = form.get("comment", "").strip()
    errors: dict[str, str] = {}
    if theme not in context["themes"]:
        errors["theme-0"] = "Choose what your feedback is about"
    if len(comment) > feedback.MAX_COMMENT:
        errors["comment"] = f"Your feedback must be {feedback.MAX_COMMENT} characters or fewer"
    if errors:
        return _form(request, session, context, status=400, feedback_errors=errors, form=form)
    answer = await Fhir(request, session).post(
        "QuestionnaireResponse", feedback.response_for(context["patient_id"], theme, comment)
    )
    if not answer.ok:
        return page(
            request,
            "message.html",
            session,
            status=400 if answer.status < 500 else 502,
            title="Your feedback was not sent",
            message=" ".join(answer.issues()) or "The register did not accept it.",
            link="/my/report",
            link_text="Back to the form",
        )
    return RedirectResponse("/my/report/sent?feedback=1", status_code=303)
