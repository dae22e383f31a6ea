"""Write steps for Consent: check a sharing Consent can be enforced, and keep its rules in step.

- :func:`before_write` (called from :mod:`register.write_hooks`): a Consent with scope
  ``patient-privacy`` must be enforceable as written (``fhir_adapters.consent.rules_of``; a
  ``422`` OperationOutcome names each element at fault), and must say who gave it and how:
  a patient writing their own gets ``performer`` set to themselves when it is missing; a
  clinician or organisation recording one on the patient's behalf must name the ``performer``
  (the patient, or a RelatedPerson speaking for them) and how it was given: a ``verification``
  (who confirmed it, when) or a ``sourceAttachment``/``sourceReference`` (the signed form). The
  recorder themselves is in the version's Provenance.
- :func:`after_write`: the ``consent_provision`` rows of each patient touched are rebuilt from
  their Consent in force — the most recently written active sharing Consent — in the same
  transaction, so the very next request sees the change.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, delete, insert, select

from auth.principal import Role
from fhir_adapters.consent import (
    ODS_SYSTEM,
    ConsentInvalid,
    ProvisionRule,
    in_force,
    is_sharing_consent,
    patient_reference,
    rules_of,
)
from fhir_adapters.operation_outcome import error
from register.access_schema import identifier_table
from register.consent_schema import provision_table
from register.context import RequestContext
from register.errors import FhirError
from register.schema import resource_table
from register.search_types import micros
from register.storage import Current, Version

P = provision_table
R = resource_table
IDS = identifier_table

_ODS_OF = (
    select(IDS.c.value)
    .where(
        IDS.c.resource_type == "Organization",
        IDS.c.resource_id == bindparam("rid"),
        IDS.c.system == ODS_SYSTEM,
    )
    .order_by(IDS.c.value)
    .limit(1)
)
_CONSENTS_OF = (
    select(R.c.resource_id, R.c.content)
    .where(
        R.c.resource_type == "Consent",
        R.c.patient_id == bindparam("patient"),
        R.c.deleted.is_(False),
    )
    .order_by(R.c.last_updated.desc(), R.c.pk.desc())
)
_PATIENTS_OF_CONSENT = select(P.c.patient_id).where(P.c.consent_id == bindparam("cid")).distinct()
_DELETE_RULES = delete(P).where(P.c.patient_id == bindparam("patient"))
_INSERT_RULE = insert(P)
_RECORDERS = (Role.CLINICIAN, Role.SYSTEM)


def resolver(conn: Connection) -> Any:
    """``Organization/id`` -> its ODS code as the register knows it (or None)."""

    def resolve(reference: str) -> str | None:
        rid = reference.rpartition("/")[2]
        return conn.execute(_ODS_OF, {"rid": rid}).scalar()

    return resolve


def before_write(conn: Connection, ctx: RequestContext, resource: dict[str, Any]) -> dict[str, Any]:
    """The Consent to store (performer filled in for a patient's own), or a 422 FhirError."""
    if resource.get("resourceType") != "Consent" or not is_sharing_consent(resource):
        return resource
    issues = []
    try:
        rules_of(resource, resolver(conn))
    except ConsentInvalid as exc:
        issues = list(exc.issues)
    principal = ctx.principal
    role = principal.role if principal is not None else None
    if role is Role.PATIENT and not resource.get("performer") and principal is not None:
        resource = {**resource, "performer": [{"reference": f"Patient/{principal.patient_id}"}]}
    elif role in _RECORDERS:
        if not resource.get("performer"):
            issues.append(
                error(
                    "required",
                    "A Consent recorded for a patient must name who gave it (the patient, or a "
                    "RelatedPerson speaking for them).",
                    "Consent.performer",
                )
            )
        if not (
            resource.get("verification")
            or resource.get("sourceAttachment")
            or resource.get("sourceReference")
        ):
            issues.append(
                error(
                    "required",
                    "A Consent recorded for a patient must say how it was given: a verification "
                    "(who confirmed it, when) or the source document.",
                    "Consent.verification",
                )
            )
    if issues:
        raise FhirError(422, issues)
    return resource


def after_write(
    conn: Connection,
    ctx: RequestContext,
    version: Version,
    resource: dict[str, Any] | None,
    *,
    previous: Current | None,
) -> None:
    """Rebuild the provision rows of every patient this Consent write may have changed."""
    if version.resource_type != "Consent":
        return
    patients = set(conn.execute(_PATIENTS_OF_CONSENT, {"cid": version.resource_id}).scalars())
    if resource is not None:
        patient = patient_reference(resource)
        if patient is not None:
            patients.add(patient)
    for patient in sorted(patients):
        rebuild(conn, patient)


def rebuild(conn: Connection, patient_id: str) -> None:
    """Replace ``patient_id``'s provision rows with those of their Consent in force."""
    conn.execute(_DELETE_RULES, {"patient": patient_id})
    for consent_id, content in conn.execute(_CONSENTS_OF, {"patient": patient_id}):
        resource = orjson.loads(content)
        if not (is_sharing_consent(resource) and in_force(resource)):
            continue
        if patient_reference(resource) != patient_id:
            continue
        try:
            rules = rules_of(resource, resolver(conn))
        except ConsentInvalid:
            # Stored before something it names changed (an organisation's ODS code): fail
            # closed, share nothing until the Consent is corrected.
            rules = [ProvisionRule("Consent", 0, "deny")]
        if rules:
            conn.execute(_INSERT_RULE, [_row(patient_id, consent_id, rule) for rule in rules])
        return


def _row(patient_id: str, consent_id: str, rule: ProvisionRule) -> dict[str, Any]:
    code_system, code = rule.code if rule.code else (None, None)
    label_system, label_code = rule.label if rule.label else (None, None)
    return {
        "patient_id": patient_id,
        "consent_id": consent_id,
        "path": rule.path[:255],
        "depth": rule.depth,
        "effect": rule.effect,
        "actor": rule.actor,
        "purpose": rule.purpose,
        "resource_type": rule.resource_type,
        "code_system": code_system,
        "code": code,
        "label_system": label_system,
        "label_code": label_code,
        "data_start_us": micros(rule.data_start) if rule.data_start else None,
        "data_end_us": micros(rule.data_end) if rule.data_end else None,
        "data_start": rule.data_start,
        "data_end": rule.data_end,
        "valid_from": rule.valid_from,
        "valid_to": rule.valid_to,
    }
