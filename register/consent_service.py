"""A patient's sharing choices as a FHIR Consent: the service pages (and other callers) use to
show and record them, without writing Consent JSON themselves.

- :func:`sharing_choice` reads the choice in force for a patient (what the requester may see of
  it; None when the patient has made none through this service or it is not visible).
- :func:`record_sharing_choice` writes the choice as the patient's Consent (scope
  ``patient-privacy``): it revises the Consent in force when there is one, else creates one. It
  runs the ordinary write path (``register.interactions``) in the caller's transaction, so the
  requester's rights apply (the patient themselves, or a clinician recording it for them, who
  must then say who gave it and how: ``given_by`` and ``verified_with``), the Consent is
  validated, and the next request sees the change.

A :class:`SharingChoice` maps onto provisions like this (README "What is shared: consent")::

    share=False                       -> provision: deny (nothing shared beyond the author)
    share=True                        -> provision: permit, with nested provisions
      withhold_types={"Observation"}  ->   deny,   class Observation
      withhold_from={"HOS03"}         ->   deny,   actor the organisation with ODS code HOS03
      share_sensitive={"hiv"}         ->   permit, securityLabel the category's labels
                                           (keys of register/data/sensitive-codes.json)

A withholding wins over a sensitive permit (a deny at the same depth decides).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection

from fhir_adapters.consent import (
    ODS_SYSTEM,
    PATIENT_PRIVACY,
    RESOURCE_TYPES_SYSTEM,
    SCOPE_SYSTEM,
    in_force,
    is_sharing_consent,
)
from register import interactions, search, sensitivity
from register.context import RequestContext
from register.errors import bad_request
from register.interactions import WriteResult

ACTOR_ROLE = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}
    ]
}
CATEGORY = {"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}


@dataclass(frozen=True)
class SharingChoice:
    """What a patient chose to share with those caring for them."""

    share: bool = True
    """False: opt out (only what an organisation recorded stays visible to it)."""
    withhold_types: frozenset[str] = field(default_factory=frozenset)
    """Resource types not to share (``Observation``, ``MedicationRequest`` ...)."""
    withhold_from: frozenset[str] = field(default_factory=frozenset)
    """ODS codes of organisations not to share with."""
    share_sensitive: frozenset[str] = field(default_factory=frozenset)
    """Sensitive categories the patient does share (keys of sensitive-codes.json)."""


def sharing_choice(
    conn: Connection, ctx: RequestContext, patient_id: str
) -> tuple[str, SharingChoice] | None:
    """The id of the patient's Consent in force and the choice it records, as far as this
    service can read it back; None when there is none visible to the requester."""
    current = _in_force(conn, ctx, patient_id)
    if current is None:
        return None
    return current["id"], _choice_of(current)


def record_sharing_choice(
    conn: Connection,
    ctx: RequestContext,
    patient_id: str,
    choice: SharingChoice,
    *,
    given_by: str | None = None,
    verified_with: str | None = None,
) -> WriteResult:
    """Write ``choice`` as ``patient_id``'s Consent in force (revised, or created).

    ``given_by`` (``Patient/x`` or ``RelatedPerson/y``) and ``verified_with`` say who gave the
    choice and who confirmed it; a clinician recording it must pass them (the patient's own
    writes name the patient). Raises FhirError (403/404/422) as any write would.
    """
    categories = {c.key: c for c in sensitivity.load().categories}
    unknown = sorted(choice.share_sensitive - set(categories))
    if unknown:
        raise bad_request(f"Unknown sensitive category: {unknown[0][:40]}.", "share_sensitive")
    body: dict[str, Any] = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": SCOPE_SYSTEM, "code": PATIENT_PRIVACY}]},
        "category": [CATEGORY],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "provision": _provision(choice, categories),
    }
    if given_by is not None:
        body["performer"] = [{"reference": given_by}]
    if verified_with is not None:
        body["verification"] = [
            {
                "verified": True,
                "verifiedWith": {"reference": verified_with},
                "verificationDate": body["dateTime"][:10],
            }
        ]
    current = _in_force(conn, ctx, patient_id)
    if current is None:
        return interactions.create(conn, ctx, body, resource_type="Consent")
    body["id"] = current["id"]
    return interactions.update(conn, ctx, "Consent", current["id"], body)


def _provision(choice: SharingChoice, categories: dict[str, Any]) -> dict[str, Any]:
    if not choice.share:
        return {"type": "deny"}
    nested: list[dict[str, Any]] = []
    for rtype in sorted(choice.withhold_types):
        nested.append({"type": "deny", "class": [{"system": RESOURCE_TYPES_SYSTEM, "code": rtype}]})
    for ods in sorted(choice.withhold_from):
        nested.append(
            {
                "type": "deny",
                "actor": [
                    {
                        "role": ACTOR_ROLE,
                        "reference": {"identifier": {"system": ODS_SYSTEM, "value": ods}},
                    }
                ],
            }
        )
    for key in sorted(choice.share_sensitive):
        labels = sorted(categories[key].labels)
        nested.append(
            {
                "type": "permit",
                "securityLabel": [
                    {"system": label.rpartition("|")[0], "code": label.rpartition("|")[2]}
                    for label in labels
                ],
            }
        )
    provision: dict[str, Any] = {"type": "permit"}
    if nested:
        provision["provision"] = nested
    return provision


def _choice_of(consent: dict[str, Any]) -> SharingChoice:
    root = consent.get("provision") or {}
    if root.get("type") == "deny":
        return SharingChoice(share=False)
    categories = sensitivity.load()
    types: set[str] = set()
    orgs: set[str] = set()
    shared: set[str] = set()
    for node in root.get("provision") or []:
        if node.get("type") == "deny":
            types |= {c.get("code") for c in node.get("class") or [] if c.get("code")}
            for actor in node.get("actor") or []:
                ident = (actor.get("reference") or {}).get("identifier") or {}
                if ident.get("value"):
                    orgs.add(ident["value"])
        else:
            for label in node.get("securityLabel") or []:
                found = categories.category_of_label(f"{label.get('system')}|{label.get('code')}")
                if found is not None:
                    shared.add(found.key)
    return SharingChoice(True, frozenset(types), frozenset(orgs), frozenset(shared))


def _in_force(conn: Connection, ctx: RequestContext, patient_id: str) -> dict[str, Any] | None:
    """The patient's most recently written active sharing Consent the requester can see."""
    found = search.find_matches(conn, ctx, "Consent", [("patient", patient_id)])
    newest: tuple[Any, dict[str, Any]] | None = None
    for version in found:
        resource = orjson.loads(version.content or b"{}")
        if not (is_sharing_consent(resource) and in_force(resource)):
            continue
        if newest is None or version.last_updated > newest[0]:
            newest = (version.last_updated, resource)
    return None if newest is None else newest[1]
