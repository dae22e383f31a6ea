"""Clinicians' pages: find a patient, record the attendance that opens the record, break-glass,
and the shared record as a timeline across organisations.

Everything is read and written through the FHIR API as the clinician (``fhir_client``): the
search shows only the patients the policy lets them see; recording an Encounter at their own
organisation is what opens a record (``register/relationships.py`` derives the care
relationship from it); break-glass is the API's own (``X-Break-Glass-Reason``), remembered in
the session so that every later page about that patient says so.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from register.api.deps import db_of
from register.relationships import NHS_NUMBER_SYSTEM, ODS_SYSTEM, patients_with_nhs_number
from register.web import nhs_number, plain, sessions
from register.web.fhir_client import Fhir
from register.web.guard import form_of, session_for
from register.web.record import load_record
from register.web.render import page

router = APIRouter(include_in_schema=False)
ROLE = "clinician"
ATTENDANCE_CLASSES = {
    "EMER": "Emergency department",
    "AMB": "Outpatient or clinic",
    "IMP": "Inpatient admission",
}
TYPE_LABELS = {
    "Observation": "Results and measurements",
    "Condition": "Conditions",
    "MedicationRequest": "Medicines",
    "AllergyIntolerance": "Allergies",
    "Encounter": "Attendances",
    "Procedure": "Procedures",
    "ServiceRequest": "Tests and referrals ordered",
    "DiagnosticReport": "Reports",
    "QuestionnaireResponse": "Questionnaires",
    "CareTeam": "Care teams",
    "EpisodeOfCare": "Episodes of care",
    "Immunization": "Immunisations",
    "DetectedIssue": "Duplicate findings",
    "Consent": "Sharing choices",
    "Appointment": "Appointments",
}


def _patient_row(resource: dict[str, Any]) -> dict[str, str]:
    identifiers = resource.get("identifier") or []
    number = next((i.get("value") for i in identifiers if i.get("system") == NHS_NUMBER_SYSTEM), "")
    return {
        "id": str(resource.get("id")),
        "name": plain.human_name(resource),
        "birth": plain.day(resource.get("birthDate")),
        "nhs": nhs_number.formatted(number or ""),
    }


@router.get("/clinician")
async def find_patient(
    request: Request, nhs: str = "", family: str = "", birthdate: str = ""
) -> Response:
    """Find a patient by NHS number (check digit validated) or by name and birth date."""
    session = await session_for(request, ROLE)
    errors: dict[str, str] = {}
    results: list[dict[str, str]] | None = None
    searched_nhs = ""
    if nhs:
        if not nhs_number.is_valid(nhs):
            errors["nhs"] = "Enter a valid 10-digit NHS number (the last digit is a check digit)"
        else:
            searched_nhs = nhs_number.normalise(nhs)
            answer = await Fhir(request, session).get(
                "Patient", params={"identifier": f"{NHS_NUMBER_SYSTEM}|{searched_nhs}"}
            )
            results = [_patient_row(r) for r in answer.entries("Patient")]
    elif family or birthdate:
        if not family.strip():
            errors["family"] = "Enter the patient's last name"
        if not _is_date(birthdate):
            errors["birthdate"] = "Enter the date of birth as YYYY-MM-DD, for example 1954-03-12"
        if not errors:
            answer = await Fhir(request, session).get(
                "Patient", params={"family": family.strip(), "birthdate": birthdate}
            )
            results = [_patient_row(r) for r in answer.entries("Patient")]
    return page(
        request,
        "clinician/find.html",
        session,
        status=400 if errors else 200,
        title="Find a patient",
        errors=errors,
        results=results,
        nhs=nhs,
        family=family,
        birthdate=birthdate,
        searched_nhs=searched_nhs,
        classes=ATTENDANCE_CLASSES,
    )


def _is_date(text: str) -> bool:
    try:
        datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return True


@router.post("/clinician/attendance")
async def record_attendance(request: Request) -> Response:
    """Record an Encounter at the clinician's organisation for the patient with this NHS
    number: the care relationship it creates opens the record."""
    session = await session_for(request, ROLE)
    form = await form_of(request, session)
    number = nhs_number.normalise(form.get("nhs", ""))
    kind = form.get("class", "")
    if not nhs_number.is_valid(number) or kind not in ATTENDANCE_CLASSES:
        return _message(
            request,
            session,
            "The attendance was not recorded",
            "Enter a valid NHS number and choose the kind of attendance.",
            400,
        )
    identity = session.identity
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": "in-progress",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": kind,
            "display": ATTENDANCE_CLASSES[kind],
        },
        "subject": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": number}},
        "serviceProvider": {"identifier": {"system": ODS_SYSTEM, "value": identity.organisation}},
        "participant": [{"individual": {"reference": identity.fhir_user}}],
        "period": {"start": datetime.now(UTC).isoformat(timespec="seconds")},
    }
    answer = await Fhir(request, session).post("Encounter", encounter)
    if not answer.ok:
        return _message(
            request,
            session,
            "The attendance was not recorded",
            " ".join(answer.issues()) or "The register did not accept it.",
            400,
        )
    subject = str((answer.body.get("subject") or {}).get("reference", ""))
    patient_id = subject.split("/", 1)[1] if subject.startswith("Patient/") else ""
    return RedirectResponse(f"/clinician/patients/{patient_id}?recorded=1", status_code=303)


@router.post("/clinician/break-glass")
async def break_glass(request: Request) -> Response:
    """Declare emergency access to one patient's record with a typed reason."""
    session = await session_for(request, ROLE)
    form = await form_of(request, session)
    number = nhs_number.normalise(form.get("nhs", ""))
    reason = " ".join(form.get("reason", "").split())
    if not nhs_number.is_valid(number) or len(reason) < 10:
        return _message(
            request,
            session,
            "Emergency access was not started",
            "Enter a valid NHS number and type the reason (at least 10 characters).",
            400,
        )

    def patient_ids() -> list[str]:
        with db_of(request).read() as conn:
            return patients_with_nhs_number(conn, number)

    found = await run_in_threadpool(patient_ids)
    if len(found) != 1:
        return _message(
            request,
            session,
            "Emergency access was not started",
            "No single patient on the register has that NHS number.",
            404,
        )
    answer = await Fhir(request, session).get(f"Patient/{found[0]}", break_glass_reason=reason)
    if not answer.ok:
        return _message(
            request,
            session,
            "Emergency access was not started",
            " ".join(answer.issues()) or "The register refused it.",
            answer.status,
        )
    await run_in_threadpool(sessions.record_break_glass, request, session, found[0], reason)
    return RedirectResponse(f"/clinician/patients/{found[0]}", status_code=303)


def _message(request: Request, session: Any, title: str, message: str, status: int) -> Response:
    return page(
        request,
        "message.html",
        session,
        status=status,
        title=title,
        message=message,
        link="/clinician",
        link_text="Back to find a patient",
    )


@router.get("/clinician/patients/{patient_id}")
async def timeline(
    request: Request, patient_id: str, type: str = "", recorded: str = "", submitted: str = ""
) -> Response:
    """The shared record as one timeline across organisations, filterable by type."""
    session = await session_for(request, ROLE)
    record = await load_record(Fhir(request, session), patient_id)
    if record.patient is None:
        return _message(
            request,
            session,
            "Record not available",
            "You cannot see this record. If the patient is attending, record the "
            "attendance, or use emergency access with a reason.",
            404,
        )
    types = sorted({e.type for e in record.entries})
    shown = [e for e in record.entries if not type or e.type == type]
    shown.sort(key=lambda e: plain.sortable(e.when), reverse=True)
    return page(
        request,
        "clinician/timeline.html",
        session,
        title=f"Shared record: {plain.human_name(record.patient)}",
        patient=_patient_row(record.patient),
        entries=shown,
        types=[(t, TYPE_LABELS.get(t, t)) for t in types],
        chosen_type=type,
        notices=record.notices,
        disagreements=record.disagreements(),
        break_glass_reason=session.break_glass.get(patient_id),
        recorded=bool(recorded),
        submitted=bool(submitted),
        organisations=sorted({e.org_name for e in record.entries if e.org_name}),
    )
