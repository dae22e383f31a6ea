"""The write check: every write asks ``auth.policy.may_write`` with facts loaded here.

Called from :mod:`register.write_hooks` for every write path (REST, transaction and batch
entries, the loader), inside the write's transaction:

- :func:`before_write` (create, update, patch): the target must be visible to the writer when it
  already exists (``404`` otherwise, as for a read); an Encounter whose subject names the patient
  by NHS number only is linked to that Patient when it is recorded at the writer's own
  organisation (recording the attendance is what opens the record); then the policy decides on
  whose record the content belongs to, whether the writer has a care relationship (or a
  break-glass grant, recorded here when the request declares one), and who recorded the current
  version.
- :func:`check_delete` (delete): the same decision for a deletion. The deletion version is
  written by then; refusing raises, which rolls the transaction back.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, select

from auth.policy import FhirInteraction, WriteFacts, may_write, needs_token_values, sight
from auth.principal import Principal
from fhir_adapters.operation_outcome import error
from fhir_adapters.search_extraction import TokenEntry, extract
from register import storage
from register.access_breakglass import ensure_grant
from register.access_request import RequestAccess, refusal_error
from register.audit import trail as audit_trail
from register.context import RequestContext
from register.errors import FhirError, not_found
from register.facts import primary_patient
from register.relationships import (
    NHS_NUMBER_SYSTEM,
    organisation_party,
    patients_with_nhs_number,
)
from register.schema import resource_table as R
from register.storage import Current, Version
from register.visibility import patient_reachable


def before_write(
    conn: Connection,
    ctx: RequestContext,
    resource: dict[str, Any],
    *,
    current: Current | None,
    method: str,
) -> dict[str, Any]:
    """The resource to store (an Encounter's subject may be linked); FhirError to refuse."""
    access = ctx.access
    if access is None or access.principal.is_operator:
        return resource
    resource_type = resource["resourceType"]
    exists = current is not None and not current.deleted
    if exists:
        resource_id = resource.get("id")
        if not isinstance(resource_id, str) or (
            storage.read(conn, ctx.visibility, resource_type, resource_id) is None
        ):
            raise not_found(f"{resource_type}/{resource_id} is not known.")
        interaction = FhirInteraction.PATCH if method == "PATCH" else FhirInteraction.UPDATE
    else:
        interaction = FhirInteraction.CREATE
    service_org = None
    if resource_type == "Encounter":
        party = organisation_party(conn, resource.get("serviceProvider"), ctx.base_url)
        service_org = party.org_ods if party is not None else None
        if service_org is not None and service_org == access.principal.organisation:
            resource = _link_subject_by_nhs_number(conn, resource)
    previous = orjson.loads(current.content) if exists and current and current.content else None
    facts = WriteFacts(
        interaction=interaction,
        resource_type=resource_type,
        patient_id=primary_patient(resource),
        previous_patient_id=primary_patient(previous) if previous else None,
        previous_author_org=current.author_org if exists and current else None,
        service_organisation=service_org,
        token_values=_token_values(access, interaction, resource),
    )
    _decide(conn, ctx, access, facts)
    return resource


def check_delete(
    conn: Connection, ctx: RequestContext, version: Version, *, previous: Current | None
) -> None:
    """Refuse (roll back) a deletion the policy does not allow."""
    access = ctx.access
    if access is None or access.principal.is_operator or previous is None:
        return
    content = orjson.loads(previous.content) if previous.content else None
    patient_id = primary_patient(content) if content else None
    facts = WriteFacts(
        interaction=FhirInteraction.DELETE,
        resource_type=version.resource_type,
        patient_id=patient_id,
        previous_patient_id=patient_id,
        previous_author_org=previous.author_org,
    )
    _decide(conn, ctx, access, facts)


_REGISTERED_BY = select(R.c.author_org).where(
    R.c.resource_type == "Patient", R.c.resource_id == bindparam("pid"), R.c.deleted.is_(False)
)

DEFERRED_CHECKS = "deferred_write_checks"
"""``RequestContext.extras`` key of the list a transaction collects relationship checks in."""


def _decide(
    conn: Connection, ctx: RequestContext, access: RequestAccess, facts: WriteFacts
) -> None:
    principal = access.principal
    patient_id = facts.patient_id
    refusal = may_write(principal, facts)
    if refusal is not None and refusal.for_relationship and patient_id is not None:
        # Only now is it worth asking the database about relationships.
        view = sight(principal, facts.interaction, facts.resource_type, access.config)
        facts = replace(
            facts,
            patient_reachable=patient_reachable(conn, view, patient_id),
            patient_registered_by_writer=_registered_by(conn, patient_id, principal),
        )
        refusal = may_write(principal, facts)
        if refusal is None and not facts.patient_registered_by_writer:
            # Allowed without a care relationship (a correction of one's own entry): the privacy
            # officer's review queue hears of it.
            audit_trail.note_outside_relationship(patient_id)
    elif refusal is None and _self_claimed(conn, access, facts):
        audit_trail.note_outside_relationship(patient_id)  # type: ignore[arg-type]
    deferred = ctx.extras.get(DEFERRED_CHECKS)
    if refusal is not None and refusal.for_relationship and deferred is not None:
        # Inside a transaction: decide once every entry is written (an Encounter or the Patient
        # recorded by a later entry may be what opens the record).
        later = replace(ctx, extras={k: v for k, v in ctx.extras.items() if k != DEFERRED_CHECKS})
        deferred.append(lambda: _decide(conn, later, access, facts))
        return
    if (
        refusal is not None
        and refusal.status == 403
        and access.break_glass is not None
        and patient_id is not None
        and not facts.patient_reachable
    ):
        granted = ensure_grant(
            conn,
            principal,
            access.break_glass,
            patient_id,
            encounter_window_days=access.config.encounter_window_days,
            request_id=ctx.request_id,
        )
        if granted is not None:
            refusal = may_write(principal, replace(facts, patient_reachable=True))
    if refusal is not None:
        raise refusal_error(refusal)


def _self_claimed(conn: Connection, access: RequestAccess, facts: WriteFacts) -> bool:
    """Whether this write is an Encounter a clinician or system records at its own organisation
    for a patient it had no relationship with: allowed (recording the attendance is what opens
    the record), and queued for the privacy officer as a self-claimed relationship."""
    principal = access.principal
    if (
        facts.resource_type != "Encounter"
        or facts.patient_id is None
        or facts.service_organisation is None
        or facts.service_organisation != principal.organisation
        or facts.interaction is not FhirInteraction.CREATE
    ):
        return False
    view = sight(principal, facts.interaction, facts.resource_type, access.config)
    return not patient_reachable(conn, view, facts.patient_id) and not _registered_by(
        conn, facts.patient_id, principal
    )


def _registered_by(conn: Connection, patient_id: str, principal: Principal) -> bool:
    if principal.organisation is None:
        return False
    recorded_by = conn.execute(_REGISTERED_BY, {"pid": patient_id}).scalar()
    return recorded_by is not None and recorded_by == principal.organisation


def _token_values(
    access: RequestAccess, interaction: FhirInteraction, resource: dict[str, Any]
) -> dict[str, list[tuple[str | None, str | None]]] | None:
    if not needs_token_values(access.principal, interaction, resource["resourceType"]):
        return None
    values: dict[str, list[tuple[str | None, str | None]]] = {}
    for entry in extract(resource):
        if isinstance(entry, TokenEntry) and (entry.system is not None or entry.code is not None):
            values.setdefault(entry.param, []).append((entry.system, entry.code))
    return values


def _link_subject_by_nhs_number(conn: Connection, resource: dict[str, Any]) -> dict[str, Any]:
    subject = resource.get("subject")
    if not isinstance(subject, dict) or "reference" in subject:
        return resource
    identifier = subject.get("identifier")
    if not isinstance(identifier, dict) or identifier.get("system") != NHS_NUMBER_SYSTEM:
        return resource
    value = identifier.get("value")
    found = patients_with_nhs_number(conn, value.strip()) if isinstance(value, str) else []
    if len(found) != 1:
        raise FhirError(
            422,
            error(
                "processing",
                "Encounter.subject names an NHS number "
                + (
                    "no Patient on the register carries."
                    if not found
                    else "several Patients carry."
                ),
                "Encounter.subject",
            ),
        )
    return {**resource, "subject": {**subject, "reference": f"Patient/{found[0]}"}}
