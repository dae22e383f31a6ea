"""Ask once: the patient summary and questionnaires pre-filled from the shared record.

The service behind ``Patient/{id}/$summary`` (an IPS document) and ``Questionnaire/$populate``
/ ``Questionnaire/{id}/$populate`` (SDC), and behind the web pages that show them. It gathers
the patient's record **through** :func:`register.storage.read_compartment` with the requester's
visibility (the one policy decision point: ``auth.policy.sight`` -> ``register/visibility.py``),
in one query, parses each stored body once, and hands the records to the pure builders in
``fhir_adapters/`` (:mod:`fhir_adapters.ips`, :mod:`fhir_adapters.sdc`). Whatever the policy
withholds (another organisation's record without a care relationship, a type the token's scopes
leave out, and whatever the consent rules withhold as they join the visibility) never reaches
them, so it can appear in neither a summary nor a pre-fill.

Each record keeps the organisation that recorded it (``resource.author_org``) and when the
register received it (``last_updated``): the builders print both beside every entry and answer.

Web pages call :func:`patient_summary`, :func:`resolve_questionnaire` and :func:`populate`
directly with the request's :class:`~register.context.RequestContext`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection

from auth.policy import FhirInteraction
from fhir_adapters import ips, sdc
from fhir_adapters.compartments import primary_patient
from fhir_adapters.memory_search import MemoryFetch
from fhir_adapters.operation_outcome import ResourceInvalid, error, operation_outcome, warning
from fhir_adapters.sourced import ODS_SYSTEM, Sourced
from fhir_adapters.validation import validate_resource
from register import interactions, search, storage
from register.consent_notice import MESSAGE, NOTICE, withheld_visibility
from register.context import RequestContext
from register.errors import FhirError, bad_request
from register.storage import Visibility

QUESTIONNAIRES_DIR = Path(__file__).with_name("data") / "questionnaires"
ANNUAL_REVIEW_URL = "https://fhir.shared-care-register.nhs.uk/Questionnaire/diabetes-annual-review"
# Record types a summary is built from (the IPS sections, the care team and the care processes).
SUMMARY_TYPES = (
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationStatement",
    "Condition",
    "Immunization",
    "Observation",
    "Procedure",
    "CareTeam",
    "Flag",
)


@dataclass(frozen=True)
class PatientRecord:
    """A patient's record as one requester may see it.

    ``records`` are the visible resources whose record this is (the Patient excluded), each
    with the organisation that recorded it; ``organisations`` maps those ODS codes to names.
    ``withheld``: the patient's Consent or a sensitive label kept something of these types from
    this requester (never what or how many; never set for the patient's own view).
    """

    patient: Sourced
    records: list[Sourced]
    organisations: dict[str, str]
    withheld: bool = False


@dataclass(frozen=True)
class Populated:
    """A pre-filled QuestionnaireResponse and what ``$populate`` could do for each item."""

    response: dict[str, Any]
    report: sdc.PopulateReport
    withheld: bool = False  # something of the record was withheld from the requester


def record_visibility(ctx: RequestContext) -> Visibility:
    """What the requester may read of a patient's record, across every resource type.

    An operation is admitted for its own type (``Patient``, ``Questionnaire``); the records it
    reads are of many types, so they get the policy's sight for *reading any type* (the token's
    read scopes per type), not the operation's.
    """
    if ctx.access is None:
        return ctx.visibility
    return ctx.access.visibility_for(FhirInteraction.READ, None)


def _definition_visibility(ctx: RequestContext) -> Visibility:
    if ctx.access is None:
        return ctx.visibility
    return ctx.access.visibility_for(FhirInteraction.READ, "Questionnaire")


def patient_record(
    conn: Connection,
    ctx: RequestContext,
    patient_id: str,
    types: Sequence[str] | None = None,
) -> PatientRecord:
    """The visible record of Patient ``patient_id`` (404 if the Patient is not visible).

    One compartment query (``types`` narrows it), each body parsed once. Resources in the
    compartment that are another patient's record (this patient only named in them, as a
    performer say) are left out.
    """
    interactions.check_id(patient_id)
    visibility = record_visibility(ctx)
    wanted = None if types is None else sorted({*types, "Patient"})
    held = storage.read_compartment(conn, visibility, patient_id, wanted)
    patient: Sourced | None = None
    records: list[Sourced] = []
    for item in held:
        version = item.version
        if version.content is None:
            continue
        resource = orjson.loads(version.content)
        sourced = Sourced(resource, item.author_org, version.last_updated)
        if version.resource_type == "Patient":
            if version.resource_id == patient_id:
                patient = sourced
            continue
        if primary_patient(resource) == patient_id:
            records.append(sourced)
    if patient is None:
        raise FhirError(404, error("not-found", f"Patient/{patient_id[:64]} is not known."))
    orgs = {r.org for r in records if r.org} | ({patient.org} if patient.org else set())
    hidden = withheld_visibility(replace(ctx, visibility=visibility))
    withheld = hidden is not None and storage.compartment_has(conn, hidden, patient_id, wanted)
    return PatientRecord(patient, records, organisation_names(conn, ctx, orgs), withheld)


def organisation_names(
    conn: Connection, ctx: RequestContext, codes: Iterable[str]
) -> dict[str, str]:
    """Names of the organisations with these ODS codes, as the register's directory holds them."""
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    directory = replace(ctx, visibility=_definition_visibility(ctx))
    names: dict[str, str] = {}
    for start in range(0, len(wanted), 50):
        value = ",".join(f"{ODS_SYSTEM}|{code}" for code in wanted[start : start + 50])
        for version in search.find_matches(
            conn, directory, "Organization", [("identifier", value)]
        ):
            if version.content is None:
                continue
            org = orjson.loads(version.content)
            for identifier in org.get("identifier") or []:
                code = identifier.get("value")
                if identifier.get("system") == ODS_SYSTEM and code in wanted and org.get("name"):
                    names.setdefault(code, str(org["name"]))
    return names


# --- $summary ----------------------------------------------------------------------------------


def patient_summary(
    conn: Connection,
    ctx: RequestContext,
    patient_id: str,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The IPS document Bundle for Patient ``patient_id`` as the requester may see the record.

    Every entry says which organisation recorded it and when; where organisations disagree
    (allergies, current medications) the document carries Flags and section notes instead of
    picking one. A patient asking for their own summary gets exactly what their token sees.
    """
    record = patient_record(conn, ctx, patient_id, SUMMARY_TYPES)
    document = ips.patient_summary(
        record.patient,
        record.records,
        now=now or datetime.now(UTC),
        organisations=record.organisations,
        base_url=ctx.base_url,
        care_processes=shipped_questionnaire(ANNUAL_REVIEW_URL),
    )
    if record.withheld:
        composition = document["entry"][0]["resource"]
        composition.setdefault("extension", []).append(
            {"url": ips.NOTE_URL, "valueAnnotation": {"text": MESSAGE}}
        )
    return document


# --- $populate ---------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _shipped() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(QUESTIONNAIRES_DIR.glob("*.json")):
        questionnaire = orjson.loads(path.read_bytes())
        found[questionnaire["url"]] = questionnaire
    return found


def shipped_questionnaire(url: str) -> dict[str, Any] | None:
    """A Questionnaire shipped with the register (``register/data/questionnaires``), by URL."""
    return _shipped().get(url.split("|")[0])


def shipped_questionnaires() -> list[dict[str, Any]]:
    """Every Questionnaire shipped with the register."""
    return list(_shipped().values())


def resolve_questionnaire(
    conn: Connection,
    ctx: RequestContext,
    *,
    resource_id: str | None = None,
    canonical: str | None = None,
    reference: str | None = None,
    inline: Any = None,
) -> dict[str, Any]:
    """The Questionnaire to fill: stored (by id or reference), by canonical URL (stored, else
    shipped), or given inline (validated). 404 when it cannot be found, 400 when it is no
    Questionnaire."""
    if inline is not None:
        try:
            validate_resource(inline, expected_type="Questionnaire")
        except ResourceInvalid as exc:
            raise FhirError(400, exc.issues) from None
        return dict(inline)
    if reference is not None:
        kind, _, rid = reference.rstrip("/").split("/_history")[0].rpartition("/")
        if kind.rpartition("/")[2] != "Questionnaire" or not rid:
            raise bad_request(
                "questionnaire must refer to a Questionnaire (Questionnaire/id).", "questionnaire"
            )
        resource_id = rid
    visibility = _definition_visibility(ctx)
    if resource_id is not None:
        interactions.check_id(resource_id)
        version = storage.read(conn, visibility, "Questionnaire", resource_id)
        if version is None or version.content is None:
            raise FhirError(
                404,
                error(
                    "not-found", f"Questionnaire/{resource_id[:64]} is not known.", "questionnaire"
                ),
            )
        return orjson.loads(version.content)
    if canonical is None:
        raise bad_request(
            "Say which Questionnaire to fill: the questionnaire parameter (a canonical URL or "
            "the resource) or Questionnaire/{id}/$populate.",
            "questionnaire",
            code="required",
        )
    url, _, wanted_version = canonical.partition("|")
    directory = replace(ctx, visibility=visibility)
    params = [("url", url)] + ([("version", wanted_version)] if wanted_version else [])
    try:
        stored = search.find_matches(conn, directory, "Questionnaire", params)
    except FhirError:
        stored = []
    found = [orjson.loads(v.content) for v in stored if v.content is not None]
    if found:
        return max(found, key=lambda q: str(q.get("version", "")))
    shipped = shipped_questionnaire(url)
    if shipped is not None and (not wanted_version or shipped.get("version") == wanted_version):
        return shipped
    raise FhirError(
        404, error("not-found", f"No Questionnaire {canonical[:200]} is known.", "questionnaire")
    )


def record_types(questionnaire: Mapping[str, Any]) -> list[str]:
    """The resource types a Questionnaire's pre-fill reads (its x-fhir-query variables, and
    Observation for observation-linked items), so the record query fetches only those."""
    types = {"Patient"}
    stack: list[Mapping[str, Any]] = [questionnaire]
    while stack:
        element = stack.pop()
        for extension in element.get("extension") or []:
            url = extension.get("url")
            if url == sdc.LINK_PERIOD_URL:
                types.add("Observation")
            elif url == sdc.VARIABLE_URL:
                expression = extension.get("valueExpression") or {}
                if expression.get("language") == "application/x-fhir-query":
                    text = str(expression.get("expression", ""))
                    types.add(text.strip().partition("?")[0])
        stack.extend(element.get("item") or [])
    return sorted(types)


def populate(
    conn: Connection,
    ctx: RequestContext,
    questionnaire: Mapping[str, Any],
    patient_id: str,
    *,
    now: datetime | None = None,
) -> Populated:
    """``questionnaire`` pre-filled for Patient ``patient_id`` from what the requester may see.

    Each filled answer carries where it came from (record, organisation, dates, digest); an
    answer older than its freshness is offered as "last known" instead; 404 if the Patient is
    not visible.
    """
    record = patient_record(conn, ctx, patient_id, record_types(questionnaire))
    moment = now or datetime.now(UTC)
    fetch = MemoryFetch([record.patient, *record.records], now=moment)
    response, report = sdc.populate(
        questionnaire,
        patient=record.patient,
        fetch=fetch,
        now=moment,
        organisations=record.organisations,
    )
    return Populated(response, report, record.withheld)


def populate_parameters(populated: Populated) -> dict[str, Any]:
    """The ``$populate`` output: Parameters with ``response`` and, when there were problems,
    ``issues`` (an OperationOutcome of warnings naming the items concerned, and the
    withheld-items notice when consent or confidentiality left something out)."""
    parameters: list[dict[str, Any]] = [{"name": "response", "resource": populated.response}]
    problems = [NOTICE] if populated.withheld else []
    problems += [warning("processing", text) for text in populated.report.issues]
    for item in populated.report.items:
        problems.extend(
            warning("processing", f"item {item.link_id}: {problem}") for problem in item.problems
        )
    if problems:
        parameters.append({"name": "issues", "resource": operation_outcome(problems)})
    return {"resourceType": "Parameters", "parameter": parameters}


def subject_patient_id(reference: str | None) -> str:
    """The Patient id of a ``subject`` reference (``Patient/x`` or an absolute URL ending so)."""
    if not reference:
        raise bad_request(
            "$populate needs a subject: a reference to the Patient the answers are about.",
            "subject",
            code="required",
        )
    path = reference.split("/_history")[0].rstrip("/")
    head, _, rid = path.rpartition("/")
    if head.rpartition("/")[2] != "Patient" or not rid:
        raise bad_request(
            "subject must refer to a Patient (Patient/id).", "subject", code="not-supported"
        )
    return rid
