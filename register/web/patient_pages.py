"""Patients' pages: their summary in plain language.

The patient's own record is read through the FHIR API with their own token (the policy gives a
patient their own record only, and consent's "not to be disclosed to the patient" withholdings
apply there), then grouped the way a person looks for it: conditions, medicines, allergies,
recent results with their trend (HbA1c drawn as a chart with its data table beside it), and
appointments and care team; every item says which organisation recorded it and when.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from register.web import plain
from register.web.fhir_client import Fhir
from register.web.guard import session_for
from register.web.record import Entry, load_record
from register.web.render import page

router = APIRouter(include_in_schema=False)
ROLE = "patient"
LOINC = "http://loinc.org"
HBA1C_CODES = frozenset({"4548-4", "59261-8", "17856-6"})
INACTIVE = frozenset(
    {"inactive", "resolved", "remission", "stopped", "completed", "cancelled", "entered-in-error"}
)


def _code_key(resource: dict[str, Any]) -> str:
    """Which test a result is of: HbA1c by any of its codes, else the LOINC code, else the
    first code (organisations code the same test with different systems first)."""
    if _is_hba1c(resource):
        return "hba1c"
    codings = [c for c in (resource.get("code") or {}).get("coding") or [] if c.get("code")]
    chosen = next((c for c in codings if c.get("system") == LOINC), codings[0] if codings else None)
    if chosen is not None:
        return f"{chosen.get('system')}|{chosen['code']}"
    return plain.concept(resource.get("code"))


def _is_hba1c(resource: dict[str, Any]) -> bool:
    return any(
        c.get("system") == LOINC and c.get("code") in HBA1C_CODES
        for c in (resource.get("code") or {}).get("coding") or []
    )


def _status(resource: dict[str, Any]) -> str:
    status = resource.get("status") or plain.concept(resource.get("clinicalStatus"))
    return str(status or "").lower()


def results_by_test(observations: list[Entry]) -> list[dict[str, Any]]:
    """Results grouped per test, newest first, each group with every value over time."""
    groups: dict[str, list[Entry]] = defaultdict(list)
    for entry in observations:
        if entry.resource.get("valueQuantity"):
            groups[_code_key(entry.resource)].append(entry)
    out = []
    for entries in groups.values():
        entries.sort(key=lambda e: plain.sortable(e.when))
        latest = entries[-1]
        out.append(
            {
                "title": latest.title,
                "latest": latest,
                "history": list(reversed(entries)),
                "hba1c": _is_hba1c(latest.resource),
                "chart": {
                    "label": latest.title,
                    "labels": [plain.day(e.when) for e in entries],
                    "values": [e.resource["valueQuantity"].get("value") for e in entries],
                    "unit": latest.resource["valueQuantity"].get("unit", ""),
                },
            }
        )
    out.sort(key=lambda g: (not g["hba1c"], g["title"]))
    return out


def _care_team(entries: list[Entry], directory: dict[str, str]) -> list[dict[str, str]]:
    people = []
    for entry in entries:
        for participant in entry.resource.get("participant") or []:
            member = participant.get("member") or {}
            people.append(
                {
                    "who": member.get("display")
                    or directory.get(str(member.get("reference")))
                    or plain.concept(participant.get("role"))
                    or "Team member",
                    "role": plain.concept(participant.get("role")),
                    "team": entry.resource.get("name") or "Care team",
                    "org": entry.org_name,
                }
            )
    return people


@router.get("/my")
async def my_summary(request: Request) -> Response:
    """My summary: the patient's own record in plain words, grouped, with who recorded what."""
    session = await session_for(request, ROLE)
    patient_id = (session.identity.fhir_user or "").split("/", 1)[-1]
    record = await load_record(Fhir(request, session), patient_id)
    conditions = [e for e in record.of_type("Condition") if _status(e.resource) not in INACTIVE]
    medicines = [
        e
        for e in record.of_type("MedicationRequest", "MedicationStatement")
        if _status(e.resource) not in INACTIVE
    ]
    return page(
        request,
        "patient/summary.html",
        session,
        title="My summary",
        name=plain.human_name(record.patient or {}),
        conditions=conditions,
        medicines=medicines,
        allergies=record.of_type("AllergyIntolerance"),
        results=results_by_test(record.of_type("Observation")),
        appointments=record.of_type("Appointment", "Encounter")[:10],
        care_team=_care_team(record.of_type("CareTeam"), record.directory),
        notices=record.notices,
        disagreements=record.disagreements(),
        available=record.patient is not None,
    )


@router.get("/my/access")
async def who_looked(request: Request, before: str = "") -> Response:
    """Who looked at my record: the access log in plain words, break-glass highlighted."""
    session = await session_for(request, ROLE)
    patient_id = (session.identity.fhir_user or "").split("/", 1)[-1]
    params = {"_count": "20"}
    if before.isdigit():
        params["_before"] = before
    answer = await Fhir(request, session).get(f"Patient/{patient_id}/$access-log", params=params)
    body = answer.body if answer.ok and isinstance(answer.body, dict) else {}
    next_link = str(body.get("next") or "")
    next_before = next_link.rsplit("_before=", 1)[-1] if "_before=" in next_link else ""
    return page(
        request,
        "patient/access_log.html",
        session,
        title="Who looked at my record",
        entries=body.get("entries") or [],
        available=answer.ok,
        next_before=next_before if next_before.isdigit() else "",
    )
