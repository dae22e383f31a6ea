"""Patients' own reports of duplicated care: ``POST Patient/{id}/$report-duplicate``.

A patient, through their own access (a patient token for their own record), says "I was asked
this again" or "this test was repeated". The report becomes a finding like the register's own
(a DetectedIssue in the patient's record and a row for the improvement review), marked
patient-reported: the DetectedIssue carries ``patientReported = true`` in its finding extension,
a ``meta.tag`` (``finding-source#patient-reported``) and the patient as author; the review
counts it under ``source = patient-reported``.

The body is a Parameters resource:

=============== ======================== =========================================================
``kind``        valueCode, required      ``asked-again`` or ``test-repeated``
``concept``     valueCode or valueCoding what was asked (a question concept such as
                                         ``allergies``, or an item code) or which test (a LOINC /
                                         SNOMED CT code); optional
``date``        valueDate, optional      when it happened (today by default; not in the future)
``organization`` valueString / valueCode  where it happened: an ODS code (or a valueReference
                (ODS code)               with the code as identifier); optional
``note``        valueString, optional    the patient's words (kept in the patient's DetectedIssue,
                                         never shown to reviewers)
=============== ======================== =========================================================

The same report sent twice (same kind, concept, date and organisation) is recorded once: the
second answer is ``200`` with the finding already held.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response

from auth.policy import may_report_duplicate
from auth.principal import ODS_CODE
from fhir_adapters.detected_issue import IssueFacts, detected_issue
from register import interactions, operations, storage
from register.access_request import refusal_error
from register.api.deps import context, in_write, json_body
from register.api.negotiation import response_format
from register.api.responses import fhir_response
from register.context import RequestContext
from register.duplicates import store
from register.duplicates.config import DuplicateConfig
from register.duplicates.detect import config_for, organisation_label
from register.errors import bad_request, not_found

KINDS = {
    # kind: (rule, DetectedIssue code)
    "asked-again": ("repeat-question", "repeat-question"),
    "test-repeated": ("repeat-test", "ALLDONE"),
}
UNSPECIFIED = "unspecified"
MAX_NOTE = 1000


@dataclass(frozen=True)
class PatientReport:
    """What the patient said, parsed from the Parameters body."""

    kind: str
    concept: str | None  # a concept key, or "system|code"
    when: date
    organisation: str | None
    note: str | None


def _value(item: dict[str, Any]) -> tuple[str, Any]:
    for key, value in item.items():
        if key.startswith("value"):
            return key, value
    return "", None


def parse_report(body: Any, today: date) -> PatientReport:
    """The report in a Parameters body, or a 400 naming the parameter at fault."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise bad_request("Send a Parameters resource (kind, and optionally concept, date, "
                          "organization, note).", "Parameters")  # fmt: skip
    found: dict[str, tuple[str, Any]] = {}
    for item in body.get("parameter") or []:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            found.setdefault(item["name"], _value(item))
    kind = found.get("kind", ("", None))[1]
    if kind not in KINDS:
        raise bad_request(
            f"Parameter 'kind' must be one of: {', '.join(KINDS)}.", "Parameters.parameter.kind"
        )
    concept = None
    if "concept" in found:
        key, value = found["concept"]
        if key == "valueCoding" and isinstance(value, dict) and value.get("code"):
            concept = f"{value.get('system', '')}|{value['code']}"
        elif key in ("valueCode", "valueString") and isinstance(value, str) and value.strip():
            concept = value.strip()[:200]
        else:
            raise bad_request(
                "Parameter 'concept' must be a valueCode or valueCoding.",
                "Parameters.parameter.concept",
            )
    when = today
    if "date" in found:
        key, value = found["date"]
        try:
            when = date.fromisoformat(str(value)[:10]) if value else today
        except ValueError:
            raise bad_request(
                "Parameter 'date' must be a date (YYYY-MM-DD).", "Parameters.parameter.date"
            ) from None
        if when > today:
            raise bad_request(
                "Parameter 'date' cannot be in the future.", "Parameters.parameter.date"
            )
    organisation = None
    if "organization" in found:
        key, value = found["organization"]
        if key == "valueReference" and isinstance(value, dict):
            value = (value.get("identifier") or {}).get("value")
        # An ODS code only: whatever a patient types here reaches the review, so it must be a
        # code, never free text.
        if not isinstance(value, str) or not ODS_CODE.match(value.strip().upper()):
            raise bad_request(
                "Parameter 'organization' must be an ODS code (valueString, valueCode, or "
                "valueReference.identifier).",
                "Parameters.parameter.organization",
            )
        organisation = value.strip().upper()
    note = None
    if "note" in found:
        value = found["note"][1]
        if not isinstance(value, str) or len(value) > MAX_NOTE:
            raise bad_request(
                f"Parameter 'note' must be text of up to {MAX_NOTE} characters.",
                "Parameters.parameter.note",
            )
        note = value.strip() or None
    return PatientReport(kind, concept, when, organisation, note)


def group_of(report: PatientReport, config: DuplicateConfig) -> str:
    """The rule's group the report is about: a question concept or a retest group."""
    if report.concept is None:
        return UNSPECIFIED
    if report.kind == "asked-again":
        if any(c.key == report.concept for c in config.concepts):
            return report.concept
        return config.item_code_to_concept.get(report.concept, UNSPECIFIED)
    code = report.concept
    if "|" not in code:  # a bare code: try the systems the retest table uses
        for system in ("http://loinc.org", "http://snomed.info/sct"):
            if f"{system}|{code}" in config.code_to_group:
                return config.code_to_group[f"{system}|{code}"]
        return UNSPECIFIED
    return config.code_to_group.get(code, UNSPECIFIED)


def _what(report: PatientReport, group: str, config: DuplicateConfig) -> str:
    if report.kind == "asked-again":
        name = next((c.name for c in config.concepts if c.key == group), None)
        return f"asked again about {name}" if name else "asked again for something already known"
    name = next((g.name for g in config.groups if g.key == group), None)
    return f"had {name} repeated" if name else "had a test repeated"


def record_report(
    conn: Connection, ctx: RequestContext, patient_id: str, report: PatientReport
) -> tuple[storage.Version, bool]:
    """Record the report as a patient-reported finding; (DetectedIssue, created)."""
    if storage.read(conn, ctx.visibility, "Patient", patient_id) is None:
        raise not_found(f"Patient/{patient_id} is not known.")
    config = config_for(ctx)
    rule, code = KINDS[report.kind]
    group = group_of(report, config)
    event_key = f"reported:{report.when.isoformat()}:{report.organisation or '-'}"[:250]
    existing = store.reported_issue(conn, patient_id, rule, group, event_key)
    if existing is not None:
        held = storage.read(conn, ctx.visibility, "DetectedIssue", existing)
        if held is not None:
            return held, False
    org_code = report.organisation
    where = f" at {organisation_label(conn, org_code)}" if org_code else ""
    detail = (
        f"Reported by the patient: {_what(report, group, config)}{where} on "
        f"{report.when.isoformat()}."
    )
    if report.note:
        detail += f' In their words: "{report.note}"'
    now = datetime.now(UTC)
    occurred = datetime(report.when.year, report.when.month, report.when.day, 12, tzinfo=UTC)
    facts = IssueFacts(
        rule=rule,
        code=code,
        severity="low",
        patient=f"Patient/{patient_id}",
        identified=now.isoformat().replace("+00:00", "Z"),
        implicated=(),
        detail=detail,
        group=group,
        repeat_org=org_code,
        original_org=None,
        service=UNSPECIFIED,
        gap_days=None,
        patient_reported=True,
    )
    version = interactions.record_internal(conn, detected_issue(facts))
    store.save_finding(
        conn,
        {
            "issue_id": version.resource_id,
            "rule": rule,
            "code": code,
            "group_key": group[:200],
            "patient_id": patient_id,
            "repeat_ref": None,
            "original_ref": None,
            "repeat_org": org_code[:200] if org_code else None,
            "original_org": None,
            "service": UNSPECIFIED,
            "occurred_at": occurred,
            "detected_at": now,
            "gap_days": None,
            "severity": "low",
            "mitigation": None,
            "patient_reported": True,
            "event_key": event_key,
        },
    )
    return version, True


async def report_duplicate(
    request: Request, resource_type: str | None, resource_id: str | None
) -> Response:
    """POST Patient/{id}/$report-duplicate: a patient reports a duplication in their care."""
    assert resource_id is not None
    fmt = response_format(request)
    ctx = context(request)
    refusal = may_report_duplicate(ctx.principal, resource_id)
    if refusal is not None:
        raise refusal_error(refusal)
    report = parse_report(await json_body(request), datetime.now(UTC).date())
    version, created = await in_write(
        request, lambda conn: record_report(conn, ctx, resource_id, report)
    )
    headers = {"Location": ctx.url(f"DetectedIssue/{version.resource_id}")}
    return fhir_response(version.content, fmt=fmt, status=201 if created else 200, headers=headers)


operations.register(
    operations.Operation(
        name="report-duplicate",
        levels=("instance",),
        resource_types=("Patient",),
        handler=report_duplicate,
        methods=("POST",),
        definition="https://fhir.shared-care-register.nhs.uk/OperationDefinition/report-duplicate",
        documentation=(
            "A patient reports care repeated (asked again, test repeated); recorded as a "
            "patient-reported DetectedIssue and counted by the improvement review."
        ),
    )
)
