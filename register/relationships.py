"""Care relationships and the identifiers access rules compare, kept in step with every write.

A write step (:func:`after_write`, called from :mod:`register.write_hooks` inside the write's
transaction) derives:

- from an **Organization**: its ODS codes (``access_identifier``), and fills in the ODS code of
  relationships that named it before it was known;
- from a **Patient**: its NHS numbers (a hospital opens a record by NHS number);
- from an **Encounter**, **EpisodeOfCare** or **CareTeam**: one ``care_relationship`` row per
  organisation and practitioner taking part, with whether it is active and when it ends.

Which relationships are *current* is decided when a request is read (``register/visibility.py``),
so an Encounter that ended 29 days ago opens the record today and not next week, without any job
rewriting rows.

Rules (R4 status codes):

=============== ======================================= ==========================================
resource        counts while                            parties
=============== ======================================= ==========================================
Encounter       arrived, triaged, in-progress, onleave; ``serviceProvider``; ``participant.
                finished: until ``period.end`` (or the  individual`` (Practitioner,
                time it was recorded finished) plus the PractitionerRole)
                relationship window
EpisodeOfCare   active, until ``period.end`` if set     ``managingOrganization``; ``careManager``
CareTeam        active, until ``period.end`` (or the    ``managingOrganization``; ``participant.
                participant's ``period.end``) if set    member`` and ``onBehalfOf``
=============== ======================================= ==========================================
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from register.access_schema import identifier_table, relationship_table
from register.context import RequestContext
from register.facts import primary_patient
from register.storage import Current, Version

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
TRACKED_IDENTIFIERS = {"Organization": ODS_SYSTEM, "Patient": NHS_NUMBER_SYSTEM}
ROLE_PRACTITIONER = "urn:careregister:practitioner-of-role"
"""``access_identifier`` system under which a PractitionerRole records its ``Practitioner/x``, so
a clinician signed in as either is matched to care teams naming the other."""
RELATIONSHIP_TYPES = frozenset({"Encounter", "EpisodeOfCare", "CareTeam"})
PRACTITIONER_TYPES = ("Practitioner", "PractitionerRole")

_ENCOUNTER_OPEN = frozenset({"arrived", "triaged", "in-progress", "onleave"})

IDS = identifier_table
C = relationship_table

# Built once: on the write path, building a statement costs more than running it.
_DELETE_RELATIONSHIPS = delete(C).where(
    C.c.source_type == bindparam("source_type"), C.c.source_id == bindparam("source_id")
)
_INSERT_RELATIONSHIP = insert(C)
_DELETE_IDENTIFIERS = delete(IDS).where(
    IDS.c.resource_type == bindparam("rtype"), IDS.c.resource_id == bindparam("rid")
)
_INSERT_IDENTIFIER = insert(IDS)
_FILL_ORG_CODES = update(C).where(C.c.org_ref == bindparam("ref")).values(org_ods=bindparam("ods"))
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
_ORG_WITH_CODE = (
    select(IDS.c.resource_id)
    .where(
        IDS.c.resource_type == "Organization",
        IDS.c.system == ODS_SYSTEM,
        IDS.c.value == bindparam("code"),
    )
    .order_by(IDS.c.resource_id)
    .limit(1)
)
_PATIENTS_WITH_NHS = select(IDS.c.resource_id).where(
    IDS.c.resource_type == "Patient",
    IDS.c.system == NHS_NUMBER_SYSTEM,
    IDS.c.value == bindparam("nhs"),
)


def after_write(
    conn: Connection,
    ctx: RequestContext,
    version: Version,
    resource: dict[str, Any] | None,
    *,
    previous: Current | None,
) -> None:
    """Bring identifiers and care relationships in step with the version just written."""
    resource_type = version.resource_type
    if resource_type == "PractitionerRole":
        _sync_role(conn, ctx, version.resource_id, resource, fresh=previous is None)
    if resource_type in TRACKED_IDENTIFIERS:
        _sync_identifiers(
            conn, resource_type, version.resource_id, resource, fresh=previous is None
        )
        if resource_type == "Organization":
            _fill_org_codes(conn, version.resource_id, resource)
    if resource_type in RELATIONSHIP_TYPES:
        if previous is not None:
            conn.execute(
                _DELETE_RELATIONSHIPS,
                {"source_type": resource_type, "source_id": version.resource_id},
            )
        if resource is not None:
            rows = list(_relationship_rows(conn, ctx, resource, version.last_updated))
            if rows:
                conn.execute(_INSERT_RELATIONSHIP, rows)


# --- identifiers -------------------------------------------------------------------------------


def _sync_identifiers(
    conn: Connection,
    resource_type: str,
    resource_id: str,
    resource: dict[str, Any] | None,
    *,
    fresh: bool,
) -> None:
    system = TRACKED_IDENTIFIERS[resource_type]
    if not fresh:
        conn.execute(_DELETE_IDENTIFIERS, {"rtype": resource_type, "rid": resource_id})
    values = sorted(set(identifier_values(resource, system))) if resource is not None else []
    if values:
        conn.execute(
            _INSERT_IDENTIFIER,
            [
                {
                    "resource_type": resource_type,
                    "resource_id": resource_id,
                    "system": system,
                    "value": value,
                }
                for value in values
            ],
        )


def _sync_role(
    conn: Connection,
    ctx: RequestContext,
    role_id: str,
    resource: dict[str, Any] | None,
    *,
    fresh: bool,
) -> None:
    if not fresh:
        conn.execute(_DELETE_IDENTIFIERS, {"rtype": "PractitionerRole", "rid": role_id})
    practitioner = local_reference(resource.get("practitioner"), ctx.base_url) if resource else None
    if practitioner is not None and practitioner.startswith("Practitioner/"):
        conn.execute(
            _INSERT_IDENTIFIER,
            [
                {
                    "resource_type": "PractitionerRole",
                    "resource_id": role_id,
                    "system": ROLE_PRACTITIONER,
                    "value": practitioner,
                }
            ],
        )


def identifier_values(resource: dict[str, Any], system: str) -> Iterator[str]:
    """The values of ``resource``'s identifiers in ``system``."""
    identifiers = resource.get("identifier")
    if isinstance(identifiers, dict):
        identifiers = [identifiers]
    for identifier in identifiers if isinstance(identifiers, list) else ():
        if not isinstance(identifier, dict) or identifier.get("system") != system:
            continue
        value = identifier.get("value")
        if isinstance(value, str) and value.strip() and len(value) <= 255:
            yield value.strip()


def _fill_org_codes(conn: Connection, org_id: str, resource: dict[str, Any] | None) -> None:
    codes = sorted(set(identifier_values(resource, ODS_SYSTEM))) if resource is not None else []
    conn.execute(
        _FILL_ORG_CODES, {"ref": f"Organization/{org_id}", "ods": codes[0] if codes else None}
    )


def ods_code_of(conn: Connection, org_id: str) -> str | None:
    """The ODS code of ``Organization/{org_id}``, if it has one."""
    return conn.execute(_ODS_OF, {"rid": org_id}).scalar()


def organisation_with_code(conn: Connection, ods_code: str) -> str | None:
    """The id of the Organization carrying ``ods_code``, if one is on the register."""
    return conn.execute(_ORG_WITH_CODE, {"code": ods_code}).scalar()


def patients_with_nhs_number(conn: Connection, nhs_number: str) -> list[str]:
    """Ids of the Patients carrying ``nhs_number`` (normally one)."""
    return list(conn.execute(_PATIENTS_WITH_NHS, {"nhs": nhs_number}).scalars())


# --- references --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Party:
    """An organisation or practitioner taking part in someone's care."""

    org_ref: str | None = None
    org_ods: str | None = None
    practitioner_ref: str | None = None


def local_reference(value: Any, base_url: str | None = None) -> str | None:
    """``Type/id`` for a reference to a resource on this register (relative or under our base)."""
    if not isinstance(value, dict):
        return None
    reference = value.get("reference")
    if not isinstance(reference, str) or not reference:
        return None
    if base_url and reference.startswith(base_url + "/"):
        reference = reference[len(base_url) + 1 :]
    if "://" in reference or reference.startswith(("#", "urn:")):
        return None
    parts = reference.split("/")
    if len(parts) == 4 and parts[2] == "_history":
        parts = parts[:2]
    if len(parts) != 2 or not parts[0][:1].isupper() or not parts[1]:
        return None
    return f"{parts[0]}/{parts[1]}"


def organisation_party(conn: Connection, value: Any, base_url: str | None) -> Party | None:
    """The organisation a reference names: by ``Organization/id`` or by ODS identifier."""
    if not isinstance(value, dict):
        return None
    reference = local_reference(value, base_url)
    if reference is not None and reference.startswith("Organization/"):
        return Party(org_ref=reference, org_ods=ods_code_of(conn, reference.split("/", 1)[1]))
    identifier = value.get("identifier")
    if isinstance(identifier, dict) and identifier.get("system") == ODS_SYSTEM:
        code = identifier.get("value")
        if isinstance(code, str) and code.strip():
            return Party(org_ods=code.strip())
    return None


def _party(conn: Connection, value: Any, base_url: str | None) -> Party | None:
    reference = local_reference(value, base_url)
    if reference is not None and reference.split("/", 1)[0] in PRACTITIONER_TYPES:
        return Party(practitioner_ref=reference)
    return organisation_party(conn, value, base_url)


# --- relationships -----------------------------------------------------------------------------


def _instant(value: Any) -> datetime | None:
    """The end of a FHIR dateTime as an instant (``2024`` ends at 2025-01-01T00:00Z)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    try:
        if len(text) == 4:
            moment = datetime(int(text) + 1, 1, 1)
        elif len(text) == 7:
            year, month = int(text[:4]), int(text[5:7])
            moment = datetime(year + month // 12, month % 12 + 1, 1)
        elif len(text) == 10:
            moment = datetime.fromisoformat(text) + timedelta(days=1)
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _period_end(resource: Any) -> datetime | None:
    period = resource.get("period") if isinstance(resource, dict) else None
    return _instant(period.get("end")) if isinstance(period, dict) else None


def _listed(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def _relationship_rows(
    conn: Connection, ctx: RequestContext, resource: dict[str, Any], recorded: datetime
) -> Iterable[dict[str, Any]]:
    patient_id = primary_patient(resource)
    if patient_id is None:
        return
    resource_type = resource["resourceType"]
    status = resource.get("status")
    base = ctx.base_url
    parties: list[tuple[Party, datetime | None]] = []
    if resource_type == "Encounter":
        kind = "encounter"
        active = status in _ENCOUNTER_OPEN or status == "finished"
        ends = (_period_end(resource) or recorded) if status == "finished" else None
        provider = organisation_party(conn, resource.get("serviceProvider"), base)
        if provider is not None:
            parties.append((provider, ends))
        for participant in _listed(resource.get("participant")):
            if isinstance(participant, dict):
                party = _party(conn, participant.get("individual"), base)
                if party is not None and party.practitioner_ref:
                    parties.append((party, ends))
    elif resource_type == "EpisodeOfCare":
        kind = "episode"
        active = status == "active"
        ends = _period_end(resource)
        for value in (resource.get("managingOrganization"), resource.get("careManager")):
            party = _party(conn, value, base)
            if party is not None:
                parties.append((party, ends))
    else:
        kind = "careteam"
        active = status == "active"
        ends = _period_end(resource)
        for value in _listed(resource.get("managingOrganization")):
            party = organisation_party(conn, value, base)
            if party is not None:
                parties.append((party, ends))
        for participant in _listed(resource.get("participant")):
            if not isinstance(participant, dict):
                continue
            own_end = _period_end(participant)
            until = min((t for t in (ends, own_end) if t is not None), default=None)
            for value in (participant.get("member"), participant.get("onBehalfOf")):
                party = _party(conn, value, base)
                if party is not None:
                    parties.append((party, until))
    seen: set[tuple[Any, ...]] = set()
    for party, until in parties:
        key = (party.org_ref, party.org_ods, party.practitioner_ref, until)
        if key in seen:
            continue
        seen.add(key)
        yield {
            "source_type": resource_type,
            "source_id": resource["id"],
            "kind": kind,
            "patient_id": patient_id,
            "org_ref": party.org_ref,
            "org_ods": party.org_ods,
            "practitioner_ref": party.practitioner_ref,
            "active": active,
            "ends_at": until,
        }
