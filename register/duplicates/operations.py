"""Operations that let systems look before they act.

- ``{ServiceRequest|MedicationRequest|Observation|DiagnosticReport|QuestionnaireResponse|Patient}
  /$check-duplicates``: the findings a proposed resource *would* produce, without storing
  anything, so an ordering system can ask before it orders.
- ``Patient/$match``: registered patients scored against a proposed Patient
  (https://hl7.org/fhir/R4/patient-operation-match.html), visible ones only.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response

from fhir_adapters.bundles import bundle_bytes, entry_bytes
from fhir_adapters.operation_outcome import Issue, error, information, outcome_bytes
from fhir_adapters.validation import validate_resource
from register import operations, storage
from register.api.deps import context, in_read, json_body
from register.api.negotiation import response_format
from register.api.responses import fhir_response
from register.context import RequestContext
from register.duplicates import store
from register.duplicates.actions import actions_of
from register.duplicates.detect import config_for, organisation_label
from register.duplicates.matching import Identity, grade, score
from register.duplicates.rules import evaluate
from register.errors import FhirError, bad_request
from register.facts import primary_patient

CHECKED_TYPES = (
    "ServiceRequest",
    "MedicationRequest",
    "Observation",
    "DiagnosticReport",
    "QuestionnaireResponse",
)
MATCH_GRADE_URL = "http://hl7.org/fhir/StructureDefinition/match-grade"


def _parameter(body: Any, name: str) -> Any:
    """A named parameter of a Parameters resource (``resource`` or a value[x])."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        return None
    for item in body.get("parameter", []) or []:
        if isinstance(item, dict) and item.get("name") == name:
            if "resource" in item:
                return item["resource"]
            for key, value in item.items():
                if key.startswith("value"):
                    return value
    return None


def _proposed(body: Any, resource_type: str) -> dict[str, Any]:
    resource = (
        body
        if isinstance(body, dict) and body.get("resourceType") == resource_type
        else (_parameter(body, "resource"))
    )
    if not isinstance(resource, dict):
        raise bad_request(
            f"Send the proposed {resource_type}, alone or as the 'resource' parameter of a "
            "Parameters resource."
        )
    try:
        validate_resource(resource, expected_type=resource_type)
    except Exception as exc:  # ResourceInvalid carries issues naming the element
        issues = getattr(exc, "issues", None) or [error("invalid", "The resource is not valid.")]
        raise FhirError(422, issues) from None
    return {**resource, "id": resource.get("id") or "proposed"}


async def check_duplicates(
    request: Request, resource_type: str | None, resource_id: str | None
) -> Response:
    """POST {type}/$check-duplicates: would this action repeat one already done?"""
    assert resource_type is not None
    fmt = response_format(request)
    ctx = context(request)
    proposed = _proposed(await json_body(request), resource_type)
    issues = await in_read(request, lambda conn: _check(conn, ctx, proposed))
    return fhir_response(outcome_bytes(issues or [information("No duplicates found.")]), fmt=fmt)


def _check(conn: Connection, ctx: RequestContext, resource: dict[str, Any]) -> list[Issue]:
    from datetime import UTC, datetime

    config = config_for(ctx)
    patient_id = primary_patient(resource)
    if not patient_id:
        raise bad_request("The proposed resource names no patient (subject or patient).")
    if storage.read(conn, ctx.visibility, "Patient", patient_id) is None:
        raise FhirError(404, error("not-found", f"Patient/{patient_id} is not known."))
    actions = actions_of(resource, config, author_org=ctx.author_org, recorded_at=datetime.now(UTC))
    groups = {a.group for a in actions if a.kind not in ("fact", "registration")}
    earlier = store.earlier_actions(conn, patient_id, groups, exclude_pk=-1) if groups else []
    issues = []
    for finding in evaluate(actions, earlier, config):
        original = finding.original
        visible = storage.read(conn, ctx.visibility, original.resource_type, original.resource_id)
        if visible is None or visible.deleted:
            text = (
                "This may repeat an action already recorded for this patient elsewhere; the "
                "details are outside your access."
            )
        else:
            text = (
                f"Would repeat {original.reference} recorded by "
                f"{organisation_label(conn, original.org)} {round(finding.gap_days)} days "
                f"apart ({finding.rule}, {finding.code})."
            )
        issues.append(
            Issue(
                "warning",
                "business-rule",
                text,
                (),
                (
                    "https://fhir.shared-care-register.nhs.uk/CodeSystem/duplicate-rule",
                    finding.rule,
                    finding.rule,
                ),
            )
        )
    return issues


async def match(request: Request, resource_type: str | None, resource_id: str | None) -> Response:
    """POST Patient/$match: scored candidates for a proposed Patient."""
    fmt = response_format(request)
    ctx = context(request)
    body = await json_body(request)
    patient = _proposed(body, "Patient")
    only_certain = _parameter(body, "onlyCertainMatches") is True
    count = _parameter(body, "count")
    limit = int(count) if isinstance(count, int) and count > 0 else 10
    payload = await in_read(
        request, lambda conn: _match(conn, ctx, patient, only_certain=only_certain, limit=limit)
    )
    return fhir_response(payload, fmt=fmt)


def _match(
    conn: Connection,
    ctx: RequestContext,
    patient: dict[str, Any],
    *,
    only_certain: bool,
    limit: int,
) -> bytes:
    query = Identity.of(patient)
    if not (query.nhs_number or query.birth_date):
        raise bad_request("$match needs an NHS number or a birth date to look for candidates.")
    scored = []
    for candidate in store.identity_candidates(conn, query):
        value = score(query, candidate)
        match_grade = grade(query, candidate, value)
        if match_grade == "certainly-not" or (only_certain and match_grade != "certain"):
            continue
        scored.append((value, match_grade, candidate))
    scored.sort(key=lambda item: -item[0])
    entries = []
    for value, match_grade, candidate in scored:
        version = storage.read(conn, ctx.visibility, "Patient", candidate.patient_id)
        if version is None or version.deleted:
            continue  # a patient the requester may not see is not shown
        entries.append(
            entry_bytes(
                full_url=ctx.url(f"Patient/{candidate.patient_id}"),
                resource=version.content,
                search={
                    "mode": "match",
                    "score": value,
                    "extension": [{"url": MATCH_GRADE_URL, "valueCode": match_grade}],
                },
            )
        )
        if len(entries) >= limit:
            break
    return bundle_bytes("searchset", entries, total=len(entries))


def register_operations() -> None:
    """Add the operations to the registry (called once at import)."""
    operations.register(
        operations.Operation(
            name="check-duplicates",
            levels=("type",),
            resource_types=(*CHECKED_TYPES, "Patient"),
            handler=_check_or_registration,
            methods=("POST",),
            definition="https://fhir.shared-care-register.nhs.uk/OperationDefinition/check-duplicates",
            documentation="Findings a proposed resource would produce, without storing it.",
        )
    )
    operations.register(
        operations.Operation(
            name="match",
            levels=("type",),
            resource_types=("Patient",),
            handler=match,
            methods=("POST",),
            definition="http://hl7.org/fhir/OperationDefinition/Patient-match",
            documentation="Registered patients scored against a proposed Patient.",
        )
    )


async def _check_or_registration(
    request: Request, resource_type: str | None, resource_id: str | None
) -> Response:
    if resource_type == "Patient":
        fmt = response_format(request)
        ctx = context(request)
        patient = _proposed(await json_body(request), "Patient")
        payload = await in_read(
            request, lambda conn: _match(conn, ctx, patient, only_certain=False, limit=5)
        )
        found = orjson.loads(payload).get("total", 0)
        issues = (
            [
                Issue(
                    "warning",
                    "business-rule",
                    f"{found} registered patient(s) match this one; use Patient/$match to see "
                    "them before registering again.",
                )
            ]
            if found
            else [information("No registered patient matches.")]
        )
        return fhir_response(outcome_bytes(issues), fmt=fmt)
    return await check_duplicates(request, resource_type, resource_id)


register_operations()
