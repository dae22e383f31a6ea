"""Synthea patients as the register would hold them, for the ask-once engines.

Each Synthea Bundle is a transaction with ``urn:uuid:`` references; :func:`load_patient`
rewrites them to ``Type/id`` and attributes every record to the organisation of its encounter
(``Encounter.serviceProvider``), which stands in for the register's ``author_org``. Claims and
ExplanationOfBenefits are left out: they are billing, not the clinical record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from fhir_adapters.memory_search import MemoryFetch
from fhir_adapters.sourced import Sourced, parse_instant

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "synthea"
SKIPPED = frozenset({"Claim", "ExplanationOfBenefit"})
DIABETES_CODES = frozenset({"44054006", "46635009", "73211009", "15777000"})


@dataclass
class SyntheaPatient:
    """One patient's record: the Patient, every clinical record with its source, and a 'now'."""

    name: str
    patient: Sourced
    records: list[Sourced]
    organisations: dict[str, str]
    now: datetime

    def fetch(self) -> MemoryFetch:
        """A fetch over this patient's record (everything visible)."""
        return MemoryFetch([self.patient, *self.records], now=self.now)

    @property
    def diabetic(self) -> bool:
        """Whether a diabetes or prediabetes diagnosis is recorded."""
        return any(
            r.resource.get("resourceType") == "Condition"
            and any(c.get("code") in DIABETES_CODES for c in r.resource["code"].get("coding", []))
            for r in self.records
        )

    @property
    def has_history(self) -> bool:
        """Whether any condition, medication, allergy or observation is recorded."""
        kinds = {"Condition", "MedicationRequest", "AllergyIntolerance", "Observation"}
        return any(r.resource.get("resourceType") in kinds for r in self.records)


def _rewrite(value: Any, targets: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {k: _rewrite(v, targets) for k, v in value.items()}
        ref = out.get("reference")
        if isinstance(ref, str) and ref in targets:
            out["reference"] = targets[ref]
        return out
    if isinstance(value, list):
        return [_rewrite(v, targets) for v in value]
    return value


def load_patient(path: Path, raw: bytes | None = None) -> SyntheaPatient:
    """Read one Synthea Bundle as a register record (references rewritten, sources attributed);
    ``raw`` is its JSON when it has been changed (dates shifted)."""
    bundle = json.loads(raw if raw is not None else path.read_bytes())
    targets = {
        e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle["entry"]
    }
    resources = [_rewrite(e["resource"], targets) for e in bundle["entry"]]
    organisations = {
        r["id"]: r.get("name", r["id"]) for r in resources if r["resourceType"] == "Organization"
    }
    encounters = {r["id"]: r for r in resources if r["resourceType"] == "Encounter"}

    def org_of(resource: dict[str, Any]) -> str | None:
        if resource["resourceType"] == "Encounter":
            encounter = resource
        else:
            ref = (resource.get("encounter") or resource.get("context") or {}).get("reference", "")
            encounter = encounters.get(ref.partition("/")[2])
        if encounter is None:
            return None
        return (encounter.get("serviceProvider") or {}).get("reference", "/").partition("/")[2]

    patient_resource = next(r for r in resources if r["resourceType"] == "Patient")
    checkups = sorted(
        (e for e in encounters.values() if e["type"][0]["coding"][0]["code"] == "185349003"),
        key=lambda e: e["period"]["start"],
    )
    patient_org = org_of(checkups[-1]) if checkups else None
    records = [
        Sourced(r, org_of(r))
        for r in resources
        if r["resourceType"] not in SKIPPED | {"Patient", "Organization", "Practitioner"}
    ]
    ends = [
        parse_instant(e["period"].get("end") or e["period"]["start"]) for e in encounters.values()
    ]
    last = max(
        (m for m in ends if m is not None),
        default=datetime.fromisoformat("2021-04-01T00:00:00+00:00"),
    )
    return SyntheaPatient(
        name=path.stem,
        patient=Sourced(patient_resource, patient_org),
        records=records,
        organisations=organisations,
        now=last + timedelta(days=1),
    )


def all_patients(directory: Path = DATA) -> Iterator[SyntheaPatient]:
    """Every Synthea patient in ``directory`` (default: the shared data), in file name order."""
    for path in sorted(directory.glob("*.json")):
        yield load_patient(path)


_DATE_STRING = re.compile(rb'"(\d{4})-(\d{2})-(\d{2})(T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)?"')


def shift_dates(raw: bytes, days: int) -> bytes:
    """A Synthea Bundle's JSON with every full date (and dateTime) moved by ``days``.

    Intervals between records are kept (birth dates move too, so ages stay right); partial
    dates (year, year-month) are left alone.
    """

    def moved(match: re.Match[bytes]) -> bytes:
        day = date(int(match[1]), int(match[2]), int(match[3])) + timedelta(days=days)
        return b'"' + day.isoformat().encode() + (match[4] or b"") + b'"'

    return _DATE_STRING.sub(moved, raw)


def attending_now(path: Path, today: date | None = None) -> tuple[bytes, int]:
    """The patient's Bundle with dates shifted so the last encounter began yesterday: the
    patient attends now (the phase-1 measurement's "day after the last encounter", at the real
    date the HTTP operations use). Returns the JSON bytes and the shift in days."""
    raw = path.read_bytes()
    bundle = json.loads(raw)
    last = max(
        date.fromisoformat(e["resource"]["period"]["start"][:10])
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Encounter"
    )
    days = ((today or datetime.now(UTC).date()) - timedelta(days=1) - last).days
    return shift_dates(raw, days), days
