"""A reference model of ``auth.policy.Sight`` semantics in plain Python, for tests only.

The register evaluates a Sight only in SQL (``register/visibility.py``); this model states the
same rules the slow, obvious way so property tests can check the SQL against it. It is never
used to serve requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from auth.policy import Sight


@dataclass(frozen=True)
class Row:
    resource_type: str
    patient_id: str | None
    author_org: str | None


@dataclass(frozen=True)
class Relationship:
    patient_id: str
    kind: str  # encounter | episode | careteam
    org_ods: str | None
    practitioner_ref: str | None
    active: bool
    ends_at: datetime | None


@dataclass(frozen=True)
class Grant:
    holder: str
    patient_id: str
    expires_at: datetime


def _related(sight: Sight, patient: str, rels: list[Relationship], now: datetime) -> bool:
    party = sight.care_of
    if party is None:
        return False
    window = timedelta(days=party.encounter_window_days)
    for rel in rels:
        if rel.patient_id != patient or not rel.active:
            continue
        if not (
            (party.organisation is not None and rel.org_ods == party.organisation)
            or (party.practitioner is not None and rel.practitioner_ref == party.practitioner)
        ):
            continue
        if (
            rel.ends_at is None
            or rel.ends_at > now
            or (rel.kind == "encounter" and rel.ends_at > now - window)
        ):
            return True
    return False


def _scope_admits(sight: Sight, row: Row) -> bool:
    if sight.scope is None:
        return True
    for grant in sight.scope:
        if grant.filters:
            continue  # constraints are checked over the search index; not modelled here
        if grant.resource_type == row.resource_type:
            return True
        if grant.resource_type is None and row.resource_type not in grant.others_than:
            return True
    return False


def visible(
    sight: Sight, row: Row, rels: list[Relationship], grants: list[Grant], now: datetime
) -> bool:
    """Whether ``row`` is visible under ``sight``, given the relationship and grant tables."""
    if sight.everything:
        return True
    if not _scope_admits(sight, row):
        return False
    if sight.own_organisation is not None and row.author_org == sight.own_organisation:
        return True
    if sight.own_patient is not None and row.patient_id == sight.own_patient:
        return True
    if row.patient_id is None:
        return row.resource_type in sight.shared_types
    if _related(sight, row.patient_id, rels, now):
        return True
    return sight.break_glass_holder is not None and any(
        g.holder == sight.break_glass_holder
        and g.patient_id == row.patient_id
        and g.expires_at > now
        for g in grants
    )
