"""IPS ``Patient/$summary``: an International Patient Summary document from the shared record.

The document Bundle (http://hl7.org/fhir/uv/ips/) holds the Composition (LOINC 60591-5) first,
then the Patient, every entry's resource as stored, and any Flags raised here. Sections use the
IPS LOINC codes; the care team (85847-2) and the diabetes care processes (a register code) are
open slices the IPS profile allows.

Which organisation recorded each entry, and when, is said three ways:

- ``section.entry`` carries the register's ``recorded-by`` extension (``author``: the recording
  organisation by ODS code; ``date``: when the fact held; ``recorded``: when the register
  received it). IPS gives no element for per-entry attribution (``section.author`` is per
  section) and its Bundle profile lists no Provenance slice, so the attribution stays on the
  reference that put the entry in the document, without touching the resource as recorded;
- ``section.author`` lists every organisation whose records the section shows;
- the section narrative has a "Recorded by" and a "Date" column for people.

Disagreements between organisations are never merged away: an allergy or a current medication
recorded by one organisation and absent from, or contradicted by, another's record of the same
patient becomes a Flag in the Alerts section (104605-1) and a note on the section concerned
(the ``note`` extension that IPS uses for section notes), and is written in its narrative.

Pure: ``sourced_resources`` are what the requester may see (the server's search applies the
access rules), so nothing withheld is summarised.
"""

from __future__ import annotations

import html
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir_adapters.memory_search import MemoryFetch
from fhir_adapters.sdc import FILLED, LAST_KNOWN, populate
from fhir_adapters.sourced import Sourced, fhir_datetime, organisation_reference

LOINC = "http://loinc.org"
REGISTER = "https://fhir.shared-care-register.nhs.uk/"
RECORDED_BY_URL = REGISTER + "StructureDefinition/recorded-by"
SECTION_CODES = REGISTER + "CodeSystem/summary-section"
NOTE_URL = "http://hl7.org/fhir/StructureDefinition/note"
FLAG_DETAIL_URL = "http://hl7.org/fhir/StructureDefinition/flag-detail"
IPS_BUNDLE = "http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips"
IPS_COMPOSITION = "http://hl7.org/fhir/uv/ips/StructureDefinition/Composition-uv-ips"
_NAMESPACE = uuid.UUID("6f0b7f8e-2f53-4c5e-9d3c-3a8f2d1c7b10")

# key, code system, code, title; in document order.
SECTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("allergies", LOINC, "48765-2", "Allergies and intolerances"),
    ("medications", LOINC, "10160-0", "Medication summary"),
    ("problems", LOINC, "11450-4", "Problem list"),
    ("past-illness", LOINC, "11348-0", "History of past illness"),
    ("immunizations", LOINC, "11369-6", "Immunizations"),
    ("results", LOINC, "30954-2", "Results"),
    ("vital-signs", LOINC, "8716-3", "Vital signs"),
    ("social-history", LOINC, "29762-2", "Social history"),
    ("procedures", LOINC, "47519-4", "History of procedures"),
    ("care-team", LOINC, "85847-2", "Care team"),
    ("diabetes", SECTION_CODES, "diabetes-care-processes", "Diabetes care processes"),
    ("alerts", LOINC, "104605-1", "Alerts"),
)
REQUIRED = frozenset({"allergies", "medications", "problems"})
_CURRENT_MEDICATION = frozenset({"active", "on-hold", "intended"})
_ERROR = frozenset({"entered-in-error", "refuted"})
_SOCIAL_CODES = frozenset({"72166-2", "74013-4", "11331-6", "1082641000000106"})
_NO_KNOWN_ALLERGY = frozenset({"716186003", "409137002", "716184000", "428607008"})


@dataclass(frozen=True, slots=True)
class Disagreement:
    """One thing organisations' records disagree on, for a Flag and a section note."""

    section: str  # allergies | medications
    text: str
    records: tuple[Sourced, ...]
    organisations: tuple[str, ...]  # the organisations whose records lack or contradict it


def patient_summary(
    patient: Sourced | Mapping[str, Any],
    sourced_resources: Sequence[Sourced],
    *,
    now: datetime,
    organisations: Mapping[str, str] | None = None,
    base_url: str = "https://fhir.shared-care-register.nhs.uk/fhir",
    care_processes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An IPS document Bundle for ``patient`` from the records the requester may see.

    ``organisations`` maps ODS codes to names; ``base_url`` makes the entries' fullUrls (so the
    resources' relative references resolve inside the document); ``care_processes`` is the
    diabetes annual review Questionnaire, whose items define the NICE care processes shown when
    the patient has a diabetes diagnosis.
    """
    subject = patient if isinstance(patient, Sourced) else Sourced(patient)
    names = organisations or {}
    records = [r for r in sourced_resources if _status_ok(r.resource)]
    placed = _place(records)
    disagreements = find_disagreements(placed["allergies"], placed["medications"], records, names)
    flags = [_flag(d, subject, now) for d in disagreements]
    sections: list[dict[str, Any]] = []
    extra_entries: list[Sourced] = []
    for key, system, code, title in SECTIONS:
        if key == "diabetes":
            section = _diabetes_section(care_processes, subject, records, now, names)
        elif key == "alerts":
            section = _alerts_section(flags) if flags else None
        elif key == "care-team":
            section = _care_team_section(placed["care-team"], records, names)
        else:
            chosen = placed[key]
            if not chosen and key not in REQUIRED:
                continue
            section = _section(key, chosen, names, [d for d in disagreements if d.section == key])
        if section is None:
            continue
        section = {
            "title": title,
            "code": {"coding": [{"system": system, "code": code}]},
            **section,
        }
        sections.append(section)
    for section in sections:
        for entry in section.get("entry", []):
            reference = entry.get("reference", "")
            if not reference.startswith("urn:"):
                extra_entries.extend(r for r in records if r.reference == reference)
    doc_id = str(uuid.uuid5(_NAMESPACE, f"{subject.reference}|{fhir_datetime(now)}"))
    authors = sorted({r.org for r in records if r.org})
    composition: dict[str, Any] = {
        "resourceType": "Composition",
        "id": doc_id,
        "meta": {"profile": [IPS_COMPOSITION]},
        "status": "final",
        "type": {
            "coding": [{"system": LOINC, "code": "60591-5", "display": "Patient summary Document"}]
        },
        "subject": {"reference": subject.reference},
        "date": fhir_datetime(now),
        "author": [organisation_reference(o, names) for o in authors]
        or [{"display": "Shared Care Register"}],
        "title": "Patient Summary",
        "section": sections,
    }
    entries = [
        {"fullUrl": f"urn:uuid:{doc_id}", "resource": composition},
        _entry(base_url, subject),
    ]
    seen = {subject.reference}
    for record in extra_entries:
        if record.reference not in seen:
            seen.add(record.reference)
            entries.append(_entry(base_url, record))
    entries.extend({"fullUrl": f"urn:uuid:{f['id']}", "resource": f} for f in flags)
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [IPS_BUNDLE]},
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{doc_id}"},
        "type": "document",
        "timestamp": fhir_datetime(now),
        "entry": entries,
    }


def _entry(base_url: str, record: Sourced) -> dict[str, Any]:
    return {
        "fullUrl": f"{base_url.rstrip('/')}/{record.reference}",
        "resource": dict(record.resource),
    }


# -- placing records in sections ------------------------------------------------------------


def _codes(concept: Any) -> frozenset[str]:
    if not isinstance(concept, dict):
        return frozenset()
    return frozenset(
        f"{c.get('system', '')}|{c['code']}"
        for c in concept.get("coding") or []
        if isinstance(c, dict) and c.get("code")
    )


def _bare_codes(concept: Any) -> frozenset[str]:
    return frozenset(code.rpartition("|")[2] for code in _codes(concept))


def _status_ok(resource: Mapping[str, Any]) -> bool:
    if resource.get("status") in ("entered-in-error", "cancelled", "not-done"):
        return False
    return not (_bare_codes(resource.get("verificationStatus")) & {"entered-in-error"})


def _category_codes(resource: Mapping[str, Any]) -> frozenset[str]:
    found: set[str] = set()
    for concept in resource.get("category") or []:
        found |= _bare_codes(concept)
    return frozenset(found)


def _place(records: Iterable[Sourced]) -> dict[str, list[Sourced]]:
    """Records by section; observations and procedures keep the newest per code."""
    placed: dict[str, list[Sourced]] = defaultdict(list)
    latest: dict[tuple[str, frozenset[str]], Sourced] = {}
    for record in records:
        resource = record.resource
        kind = resource.get("resourceType")
        if kind == "AllergyIntolerance":
            placed["allergies"].append(record)
        elif kind in ("MedicationRequest", "MedicationStatement"):
            if resource.get("status") in _CURRENT_MEDICATION:
                placed["medications"].append(record)
        elif kind == "Condition":
            if _bare_codes(resource.get("verificationStatus")) & _ERROR:
                continue
            clinical = _bare_codes(resource.get("clinicalStatus"))
            current = not clinical or clinical & {"active", "recurrence", "relapse"}
            placed["problems" if current else "past-illness"].append(record)
        elif kind == "Immunization":
            placed["immunizations"].append(record)
        elif kind == "CareTeam":
            if resource.get("status") in (None, "active", "proposed"):
                placed["care-team"].append(record)
        elif kind in ("Observation", "Procedure"):
            codes = _codes(resource.get("code"))
            if kind == "Procedure":
                key = "procedures"
            elif _bare_codes(resource.get("code")) & _SOCIAL_CODES or (
                "social-history" in _category_codes(resource)
            ):
                key = "social-history"
            elif "vital-signs" in _category_codes(resource):
                key = "vital-signs"
            elif "laboratory" in _category_codes(resource):
                key = "results"
            else:
                continue
            slot = (key, codes)
            held = latest.get(slot)
            if held is None or _later(record, held):
                latest[slot] = record
    for (key, _), record in latest.items():
        placed[key].append(record)
    for key in placed:
        placed[key].sort(key=lambda r: (r.when is None, r.when), reverse=False)
        placed[key].reverse()
    return placed


def _later(a: Sourced, b: Sourced) -> bool:
    if a.when is None:
        return False
    return b.when is None or a.when > b.when


# -- disagreements -------------------------------------------------------------------------


def _identity(resource: Mapping[str, Any]) -> frozenset[str]:
    concept = resource.get("code") or resource.get("medicationCodeableConcept")
    codes = _codes(concept)
    if codes:
        return codes
    text = (concept or {}).get("text") if isinstance(concept, dict) else None
    return frozenset({f"text|{text.strip().lower()}"}) if isinstance(text, str) else frozenset()


def _label(resource: Mapping[str, Any]) -> str:
    concept = resource.get("code") or resource.get("medicationCodeableConcept") or {}
    if isinstance(concept, dict):
        if isinstance(concept.get("text"), str):
            return concept["text"]
        for coding in concept.get("coding") or []:
            if coding.get("display"):
                return str(coding["display"])
            if coding.get("code"):
                return str(coding["code"])
    return str(resource.get("resourceType"))


def _asserted_allergy(resource: Mapping[str, Any]) -> bool:
    if _bare_codes(resource.get("verificationStatus")) & _ERROR:
        return False
    clinical = _bare_codes(resource.get("clinicalStatus"))
    if clinical and not clinical & {"active"}:
        return False
    return not (_bare_codes(resource.get("code")) & _NO_KNOWN_ALLERGY)


def find_disagreements(
    allergies: Sequence[Sourced],
    medications: Sequence[Sourced],
    everything: Sequence[Sourced],
    names: Mapping[str, str] | None = None,
) -> list[Disagreement]:
    """Allergies and current medications that organisations' records disagree on.

    An allergy one organisation records as active is a disagreement with every other
    organisation that contributed to this patient's record and does not record it (absent), or
    records it refuted or resolved, or records "no known allergy" (contradicted). A current
    medication is compared across the organisations that keep a medication list for the patient
    (any MedicationRequest or MedicationStatement): missing from one of those lists, or stopped
    there, is a disagreement.
    """
    names = names or {}

    def named(orgs: Iterable[str | None]) -> str:
        return ", ".join(_org_name(o, names) for o in orgs)

    found: list[Disagreement] = []
    contributors = sorted({r.org for r in everything if r.org})
    for record in allergies:
        if not _asserted_allergy(record.resource):
            continue
        identity = _identity(record.resource)
        lacking = []
        for org in contributors:
            if org == record.org:
                continue
            theirs = [a for a in allergies if a.org == org]
            same = [a for a in theirs if _identity(a.resource) & identity]
            if any(_asserted_allergy(a.resource) for a in same):
                continue
            lacking.append(org)
        if lacking:
            label = _label(record.resource)
            found.append(
                Disagreement(
                    "allergies",
                    f"Allergy or intolerance '{label}' is recorded by {named([record.org])}"
                    f" but not by {named(lacking)}.",
                    (
                        record,
                        *[
                            a
                            for a in allergies
                            if a.org in lacking and _identity(a.resource) & identity
                        ],
                    ),
                    tuple(lacking),
                )
            )
    list_keepers = sorted(
        {
            r.org
            for r in everything
            if r.org
            and r.resource.get("resourceType") in ("MedicationRequest", "MedicationStatement")
        }
    )
    for record in medications:
        identity = _identity(record.resource)
        lacking = [
            org
            for org in list_keepers
            if org != record.org
            and not any(m.org == org and _identity(m.resource) & identity for m in medications)
        ]
        if lacking:
            label = _label(record.resource)
            found.append(
                Disagreement(
                    "medications",
                    f"Current medication '{label}' is on the list of {named([record.org])}"
                    f" but not on the current list of {named(lacking)}.",
                    (record,),
                    tuple(lacking),
                )
            )
    return found


def _flag(disagreement: Disagreement, subject: Sourced, now: datetime) -> dict[str, Any]:
    key = "|".join([disagreement.section, *(r.reference for r in disagreement.records)])
    flag: dict[str, Any] = {
        "resourceType": "Flag",
        "id": str(uuid.uuid5(_NAMESPACE, key)),
        "extension": [
            {"url": FLAG_DETAIL_URL, "valueReference": {"reference": r.reference}}
            for r in disagreement.records
        ],
        "status": "active",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/flag-category",
                        "code": "clinical",
                        "display": "Clinical",
                    }
                ]
            }
        ],
        "code": {"text": disagreement.text},
        "subject": {"reference": subject.reference},
        "period": {"start": fhir_datetime(now)},
    }
    return flag


# -- sections --------------------------------------------------------------------------------


def _recorded_by(record: Sourced, names: Mapping[str, str]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"url": "author", "valueReference": organisation_reference(record.org, names)}
    ]
    if record.when is not None:
        parts.append({"url": "date", "valueDateTime": fhir_datetime(record.when)})
    if record.recorded is not None:
        parts.append({"url": "recorded", "valueDateTime": fhir_datetime(record.recorded)})
    return {"url": RECORDED_BY_URL, "extension": parts}


def _entry_reference(record: Sourced, names: Mapping[str, str]) -> dict[str, Any]:
    return {
        "extension": [_recorded_by(record, names)],
        "reference": record.reference,
        "display": _label(record.resource),
    }


def _org_name(org: str | None, names: Mapping[str, str]) -> str:
    if not org:
        return "unknown"
    return names.get(org, org)


def _date_text(record: Sourced) -> str:
    return record.when.date().isoformat() if record.when is not None else "unknown"


def _value_text(resource: Mapping[str, Any]) -> str:
    quantity = resource.get("valueQuantity")
    if isinstance(quantity, dict) and "value" in quantity:
        value = quantity["value"]
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        return f"{shown} {quantity.get('unit') or quantity.get('code') or ''}".strip()
    concept = resource.get("valueCodeableConcept")
    if isinstance(concept, dict):
        return _label({"code": concept})
    components = []
    for component in resource.get("component") or []:
        part = _value_text(component)
        if part:
            components.append(part)
    if components:
        return " / ".join(components)
    for key in ("valueString", "status"):
        if isinstance(resource.get(key), str):
            return str(resource[key])
    return ""


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _narrative(body: str) -> dict[str, str]:
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{body}</div>'}


def _section(
    key: str,
    records: Sequence[Sourced],
    names: Mapping[str, str],
    disagreements: Sequence[Disagreement],
) -> dict[str, Any]:
    section: dict[str, Any] = {}
    if records:
        with_value = key in ("results", "vital-signs", "social-history")
        headers = ["Item", *(["Value"] if with_value else []), "Date", "Recorded by"]
        rows = [
            [
                _label(r.resource),
                *([_value_text(r.resource)] if with_value else []),
                _date_text(r),
                _org_name(r.org, names),
            ]
            for r in records
        ]
        body = _table(headers, rows)
        section["entry"] = [_entry_reference(r, names) for r in records]
        orgs = sorted({r.org for r in records if r.org})
        if orgs:
            section["author"] = [organisation_reference(o, names) for o in orgs]
    else:
        body = "<p>No information is available in the shared record.</p>"
        section["emptyReason"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/list-empty-reason",
                    "code": "unavailable",
                    "display": "Unavailable",
                }
            ]
        }
    if disagreements:
        texts = [d.text for d in disagreements]
        body += "<p><b>Organisations disagree:</b></p><ul>"
        body += "".join(f"<li>{html.escape(t)}</li>" for t in texts) + "</ul>"
        section["extension"] = [
            {
                "url": NOTE_URL,
                "valueAnnotation": {"text": "Organisations disagree: " + " ".join(texts)},
            }
        ]
    section["text"] = _narrative(body)
    return section


def _alerts_section(flags: Sequence[dict[str, Any]]) -> dict[str, Any]:
    items = "".join(f"<li>{html.escape(f['code']['text'])}</li>" for f in flags)
    return {
        "text": _narrative(f"<ul>{items}</ul>"),
        "entry": [
            {"reference": f"urn:uuid:{f['id']}", "display": f["code"]["text"]} for f in flags
        ],
    }


def _care_team_section(
    teams: Sequence[Sourced], records: Sequence[Sourced], names: Mapping[str, str]
) -> dict[str, Any] | None:
    involved: dict[str, tuple[int, Sourced]] = {}
    for record in records:
        if record.org:
            count, latest = involved.get(record.org, (0, record))
            involved[record.org] = (count + 1, record if _later(record, latest) else latest)
    if not teams and not involved:
        return None
    rows = [
        [_org_name(org, names), str(count), _date_text(latest)]
        for org, (count, latest) in sorted(involved.items(), key=lambda kv: -kv[1][0])
    ]
    body = _table(["Organisation", "Records shared", "Latest record"], rows)
    if teams:
        body += _table(
            ["Care team", "Recorded by"],
            [[str(t.resource.get("name") or "Care team"), _org_name(t.org, names)] for t in teams],
        )
    section: dict[str, Any] = {"text": _narrative(body)}
    if involved:
        section["author"] = [organisation_reference(o, names) for o in sorted(involved)]
    if teams:
        section["entry"] = [_entry_reference(t, names) for t in teams]
    return section


def _diabetes_section(
    questionnaire: Mapping[str, Any] | None,
    subject: Sourced,
    records: Sequence[Sourced],
    now: datetime,
    names: Mapping[str, str],
) -> dict[str, Any] | None:
    """The NICE care processes with their latest value, date and source, when the patient has
    a diabetes diagnosis (the annual review's ``diagnosis`` item is answered)."""
    if questionnaire is None:
        return None
    fetch = MemoryFetch([subject, *records], now=now)
    response, report = populate(
        questionnaire, patient=subject, fetch=fetch, now=now, organisations=names
    )
    outcomes = report.by_link_id()
    diagnosis = outcomes.get("diagnosis")
    if diagnosis is None or diagnosis.status not in (FILLED, LAST_KNOWN):
        return None
    by_reference = {r.reference: r for r in records}
    rows = []
    entries = []
    seen: set[str] = set()
    for item in _leaf_items(response):
        outcome = outcomes.get(item["linkId"])
        if outcome is None or item["linkId"] == "diagnosis":
            continue
        source = by_reference.get(outcome.sources[0]) if outcome.sources else None
        value = _answer_text(item)
        state = {FILLED: "up to date", LAST_KNOWN: "due (last known shown)"}.get(
            outcome.status, "not recorded"
        )
        rows.append(
            [
                str(item.get("text", item["linkId"])),
                value,
                _date_text(source) if source else "",
                _org_name(source.org, names) if source else "",
                state,
            ]
        )
        if source is not None and source.reference not in seen:
            seen.add(source.reference)
            entries.append(_entry_reference(source, names))
    section: dict[str, Any] = {
        "text": _narrative(
            _table(["Care process", "Latest", "Date", "Recorded by", "Status"], rows)
        )
    }
    if entries:
        section["entry"] = entries
    return section


def _leaf_items(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    stack = list(response.get("item") or [])
    while stack:
        item = stack.pop(0)
        if item.get("item"):
            stack[0:0] = item["item"]
        else:
            out.append(item)
    return out


def _answer_text(item: Mapping[str, Any]) -> str:
    values = [a for a in item.get("answer") or []]
    if not values:
        offers = [
            {p["url"]: p for p in e.get("extension", [])}.get("value", {})
            for e in item.get("extension") or []
        ]
        values = [o for o in offers if o]
    texts = []
    for value in values:
        for key, content in value.items():
            if key == "valueQuantity":
                number = content.get("value")
                shown = f"{number:.4g}" if isinstance(number, float) else str(number)
                texts.append(f"{shown} {content.get('unit') or content.get('code') or ''}".strip())
            elif key == "valueCoding":
                texts.append(str(content.get("display") or content.get("code")))
            elif key.startswith("value"):
                texts.append(str(content))
    return "; ".join(texts)
