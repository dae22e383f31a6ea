"""A patient's shared record as the signed-in person may see it, ready for the pages.

Read with ``Patient/{id}/$everything`` through the FHIR API as the session's user (so the policy
decides what is in it), every page followed. Beside each resource the page needs which
organisation recorded it and when: the register writes a Provenance for every version (its
``onBehalfOf`` names the organisation by ODS code), and those Provenances are part of the same
record, visible under the same rules. Duplicate findings (DetectedIssue) are attached to the
entries they implicate. Notices the API sends with the Bundle (an OperationOutcome entry, e.g.
that items were withheld) are kept, word for word, for the page to show.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fhir_adapters.ips import patient_summary
from fhir_adapters.sourced import Sourced, parse_instant
from register.web import plain
from register.web.fhir_client import Fhir

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
HIDDEN_TYPES = frozenset({"Provenance", "OperationOutcome"})
PROVENANCE_CHUNK = 40
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
DIRECTORY_TYPES = frozenset(
    {"Organization", "Practitioner", "PractitionerRole", "Medication", "Location"}
)


@dataclass
class Entry:
    """One resource of the record with who recorded it, when, and findings about it."""

    resource: dict[str, Any]
    org_code: str | None = None
    org_name: str = ""
    recorded: datetime | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reference(self) -> str:
        """``Type/id``."""
        return f"{self.resource.get('resourceType')}/{self.resource.get('id')}"

    @property
    def type(self) -> str:
        """The resource type."""
        return str(self.resource.get("resourceType"))

    @property
    def when(self) -> str:
        """The date the entry speaks for (its clinical date), else when it was recorded."""
        for name in (
            "effectiveDateTime",
            "issued",
            "authoredOn",
            "recordedDate",
            "onsetDateTime",
            "performedDateTime",
            "occurrenceDateTime",
            "date",
            "authored",
            "created",
        ):
            if self.resource.get(name):
                return str(self.resource[name])
        for name in ("period", "effectivePeriod", "performedPeriod"):
            start = (self.resource.get(name) or {}).get("start")
            if start:
                return str(start)
        return self.recorded.isoformat() if self.recorded else ""

    @property
    def title(self) -> str:
        """What the entry is, in words."""
        r = self.resource
        for name in ("code", "medicationCodeableConcept", "type", "vaccineCode", "category"):
            text = plain.concept(r.get(name))
            if text:
                return text
        if r.get("resourceType") == "Encounter":
            return plain.concept(r.get("class")) or "Attendance"
        if r.get("resourceType") == "QuestionnaireResponse":
            return "Questionnaire answers"
        return str(r.get("resourceType"))

    def sourced(self) -> Sourced:
        """The entry as the IPS engine takes it."""
        return Sourced(self.resource, self.org_code, self.recorded)


@dataclass
class Record:
    """What the requester may see of one patient's record."""

    patient: dict[str, Any] | None
    entries: list[Entry]
    organisations: dict[str, str]
    notices: list[str]
    status: int
    directory: dict[str, str] = field(default_factory=dict)

    def disagreements(self) -> list[str]:
        """Where organisations' records disagree (allergies, current medicines), in words, as
        the IPS summary engine flags them (``fhir_adapters.ips``): never resolved silently."""
        if self.patient is None:
            return []
        document = patient_summary(
            Sourced(self.patient),
            [e.sourced() for e in self.entries],
            now=datetime.now(UTC),
            organisations=self.organisations,
        )
        return [
            plain.concept(entry["resource"].get("code"))
            for entry in document.get("entry") or []
            if entry.get("resource", {}).get("resourceType") == "Flag"
        ]

    def of_type(self, *types: str) -> list[Entry]:
        """Entries of the given types, newest first."""
        chosen = [e for e in self.entries if e.type in types]
        return sorted(chosen, key=lambda e: plain.sortable(e.when), reverse=True)


def _org_code(reference: dict[str, Any] | None, ods_by_id: dict[str, str]) -> str | None:
    if not isinstance(reference, dict):
        return None
    identifier = reference.get("identifier") or {}
    if identifier.get("system") == ODS_SYSTEM and identifier.get("value"):
        return str(identifier["value"])
    ref = str(reference.get("reference") or "")
    return ods_by_id.get(ref.rsplit("/", 1)[-1]) if ref.startswith("Organization/") else None


def _display_name(resource: dict[str, Any]) -> str:
    name = resource.get("name")
    return name if isinstance(name, str) else plain.human_name(resource)


async def load_record(fhir: Fhir, patient_id: str) -> Record:
    """The patient's record as the session's user may see it (``status`` 404 if none of it)."""
    if not FHIR_ID.fullmatch(patient_id):
        return Record(None, [], {}, [], 404, {})
    resources, first = await fhir.search_all(
        f"Patient/{patient_id}/$everything",
        [("_count", "500")],
        patient_id=patient_id,
        limit=5000,
    )
    if not first.ok:
        return Record(None, [], {}, first.issues(), first.status, {})
    organisations: dict[str, str] = {}
    ods_by_id: dict[str, str] = {}
    for r in resources:
        if r.get("resourceType") == "Organization":
            for identifier in r.get("identifier") or []:
                if identifier.get("system") == ODS_SYSTEM and identifier.get("value"):
                    organisations[identifier["value"]] = str(r.get("name") or identifier["value"])
                    ods_by_id[str(r.get("id"))] = identifier["value"]
    directory = {
        f"{r.get('resourceType')}/{r.get('id')}": _display_name(r)
        for r in resources
        if r.get("resourceType") in DIRECTORY_TYPES
    }
    refs = [
        f"{r.get('resourceType')}/{r.get('id')}"
        for r in resources
        if r.get("resourceType") not in HIDDEN_TYPES | DIRECTORY_TYPES
    ]
    provenances = [r for r in resources if r.get("resourceType") == "Provenance"]
    for start in range(0, len(refs), PROVENANCE_CHUNK):
        chunk = ",".join(refs[start : start + PROVENANCE_CHUNK])
        found, _ = await fhir.search_all(
            "Provenance", [("target", chunk), ("_count", "500")], patient_id=patient_id
        )
        provenances += found
    authored: dict[str, tuple[str | None, datetime | None]] = {}
    for r in provenances:
        org = None
        for agent in r.get("agent") or []:
            behalf = agent.get("onBehalfOf")
            org = org or _org_code(behalf, ods_by_id)
            if org and isinstance(behalf, dict) and behalf.get("display"):
                organisations.setdefault(org, str(behalf["display"]))
        recorded = parse_instant(r.get("recorded"))
        for target in r.get("target") or []:
            ref = str(target.get("reference") or "").split("/_history/")[0]
            known = authored.get(ref)
            if ref and (known is None or (recorded and known[1] and recorded > known[1])):
                authored[ref] = (org, recorded)
    unnamed = sorted({org for org, _ in authored.values() if org and org not in organisations})
    if unnamed:
        found = await fhir.get(
            "Organization", params={"identifier": ",".join(f"{ODS_SYSTEM}|{c}" for c in unnamed)}
        )
        for r in found.entries("Organization"):
            for identifier in r.get("identifier") or []:
                if identifier.get("system") == ODS_SYSTEM and identifier.get("value") in unnamed:
                    organisations[identifier["value"]] = str(r.get("name") or identifier["value"])
    patient = next(
        (r for r in resources if r.get("resourceType") == "Patient" and r.get("id") == patient_id),
        None,
    )
    entries: list[Entry] = []
    for r in resources:
        kind = r.get("resourceType")
        if kind in HIDDEN_TYPES or kind in DIRECTORY_TYPES or r is patient:
            continue
        org, recorded = authored.get(f"{kind}/{r.get('id')}", (None, None))
        entries.append(Entry(r, org, organisations.get(org or "", org or "not recorded"), recorded))
    by_ref = {e.reference: e for e in entries}
    shown_beside: set[str] = set()
    findings: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in entries:
        if e.type == "DetectedIssue":
            # the repeat comes first among the implicated (the earlier work second)
            implicated = e.resource.get("implicated") or [{}]
            findings[str(implicated[0].get("reference") or "")].append(e.resource)
            if e.org_code is None:
                e.org_name = "the register's duplicate check"
    for ref, found in findings.items():
        if ref in by_ref:
            by_ref[ref].findings.extend(found)
            for finding in found:
                shown_beside.add(f"DetectedIssue/{finding.get('id')}")
    entries = [e for e in entries if e.reference not in shown_beside]
    return Record(patient, entries, organisations, first.issues(), first.status, directory)
