""" "Who looked at my record": the accesses to one patient's record, in plain words.

A service module (no HTTP): ``Patient/{id}/$access-log`` (``register/api/audit_routes.py``) and
the web pages call :func:`access_log`. Each entry says who (name, role, organisation, resolved
from the Practitioner, PractitionerRole and Organization resources on the register), when, what
kinds of data, and why (purpose; break-glass with its reason), newest first, a page at a time.
Left out: the patient's own accesses, the register's own work (the command line, loading), and
refused requests (nothing of the record was seen).

Wording lives in ``register/data/audit/plain-words.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, and_, or_, select

from fhir_adapters.audit_event import DATA_KINDS
from register import storage
from register.relationships import organisation_with_code
from register.schema import audit_patient_table, audit_table

E = audit_table
P = audit_patient_table
WORDS_FILE = Path(__file__).resolve().parents[1] / "data" / "audit" / "plain-words.json"
SHOWN_KINDS = ("rest", "consent", "break-glass")
"""Event kinds a patient sees: accesses to the record and emergency-access declarations."""
INTERNAL_ROLES = ("operator",)


@lru_cache(maxsize=1)
def words() -> dict[str, dict[str, str]]:
    """The plain-words tables (types, roles, purposes, actions)."""
    data = json.loads(WORDS_FILE.read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


@dataclass(frozen=True)
class Accessor:
    """Who accessed the record."""

    name: str
    role: str
    organisation: str | None
    organisation_code: str | None
    reference: str | None


@dataclass(frozen=True)
class AccessEntry:
    """One access to the record, for a web page (fields) and in words (``text``)."""

    id: str
    when: datetime
    who: Accessor
    action: str
    data_kinds: list[str]
    purpose: str | None
    purpose_text: str
    break_glass: bool
    break_glass_reason: str | None
    text: str
    request_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The entry as JSON-ready data."""
        data = asdict(self)
        data["when"] = self.when.isoformat().replace("+00:00", "Z")
        return data


@dataclass(frozen=True)
class AccessLogPage:
    """One page of the access log, newest first, and the position of the next page."""

    patient_id: str
    entries: list[AccessEntry]
    next_before: int | None
    positions: list[int] = field(default_factory=list)


def _name_of(content: bytes | None) -> str | None:
    if not content:
        return None
    resource = orjson.loads(content)
    names = resource.get("name")
    if isinstance(names, str):
        return names
    if isinstance(names, list) and names and isinstance(names[0], dict):
        name = names[0]
        if name.get("text"):
            return str(name["text"])
        parts = [*name.get("prefix", []), *name.get("given", []), name.get("family", "")]
        text = " ".join(p for p in parts if isinstance(p, str) and p)
        return text or None
    return None


class _Names:
    """Resolves practitioners and organisations once per page."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.cache: dict[str, str | None] = {}

    def resource_name(self, reference: str | None) -> str | None:
        if not reference or "/" not in reference:
            return None
        if reference in self.cache:
            return self.cache[reference]
        rtype, rid = reference.split("/", 1)
        version = storage.read(self.conn, storage.EVERYTHING, rtype, rid)
        name = None
        if version is not None and not version.deleted and version.content:
            if rtype == "PractitionerRole":
                practitioner = (orjson.loads(version.content).get("practitioner") or {}).get(
                    "reference"
                )
                name = self.resource_name(practitioner) if practitioner else None
            else:
                name = _name_of(version.content)
        self.cache[reference] = name
        return name

    def organisation_name(self, ods: str | None) -> str | None:
        if not ods:
            return None
        key = f"ods:{ods}"
        if key not in self.cache:
            org_id = organisation_with_code(self.conn, ods)
            self.cache[key] = self.resource_name(f"Organization/{org_id}") if org_id else None
        return self.cache[key]


def _kinds(content: dict[str, Any], patient_id: str) -> list[str]:
    for entity in content.get("entity") or []:
        if (entity.get("what") or {}).get("reference") == f"Patient/{patient_id}":
            for detail in entity.get("detail") or []:
                if detail.get("type") == DATA_KINDS:
                    return str(detail.get("valueString", "")).split()
    return []


def _reason(content: dict[str, Any]) -> str | None:
    for purpose in content.get("purposeOfEvent") or []:
        if purpose.get("text"):
            return str(purpose["text"])
    return None


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _sentence(
    entry_who: Accessor,
    action: str,
    kinds: list[str],
    when: datetime,
    purpose_text: str,
    reason: str | None,
    break_glass: bool,
) -> str:
    w = words()
    role = w["roles"].get(entry_who.role, entry_who.role)
    who = entry_who.name
    at = f", {entry_who.organisation}" if entry_who.organisation else ""
    verb = w["actions"].get(action, "looked at")
    data = _join([w["types"].get(k, k) for k in kinds]) or "your record"
    day = when.strftime("%d %B %Y at %H:%M UTC").lstrip("0")
    if action == "break-glass":
        text = f"{who} ({role}{at}) declared emergency access to your record on {day}"
    else:
        text = f"{who} ({role}{at}) {verb} {data} on {day}, {purpose_text}"
    if break_glass and reason:
        text += f'. Reason given: "{reason}"'
    return text + "."


def access_log(
    conn: Connection, patient_id: str, *, count: int = 20, before: int | None = None
) -> AccessLogPage:
    """The accesses to ``patient_id``'s record by others, newest first, ``count`` at a time
    (``before``: the position a previous page returned as ``next_before``)."""
    own = f"Patient/{patient_id}"
    query = (
        select(
            E.c.seq,
            E.c.event_id,
            E.c.recorded,
            E.c.kind,
            E.c.action,
            E.c.agent_role,
            E.c.agent_who,
            E.c.agent_org,
            E.c.client_id,
            E.c.purpose,
            E.c.break_glass,
            E.c.request_id,
            E.c.content,
        )
        .select_from(P.join(E, E.c.seq == P.c.seq))
        .where(
            P.c.patient_id == patient_id,
            E.c.outcome == "0",
            E.c.kind.in_(SHOWN_KINDS),
            E.c.agent_role.is_not(None),
            E.c.agent_role.not_in(INTERNAL_ROLES),
            or_(E.c.agent_who.is_(None), E.c.agent_who != own),
        )
        .order_by(P.c.seq.desc())
        .limit(count + 1)
    )
    if before is not None:
        query = query.where(and_(P.c.seq < before))
    rows = conn.execute(query).all()
    names = _Names(conn)
    entries = []
    w = words()
    for row in rows[:count]:
        content = orjson.loads(row.content)
        person = names.resource_name(row.agent_who)
        org_name = names.organisation_name(row.agent_org)
        who = Accessor(
            name=person or (row.client_id if row.agent_role == "system" else None) or "Someone",
            role=str(row.agent_role),
            organisation=org_name or row.agent_org,
            organisation_code=row.agent_org,
            reference=row.agent_who,
        )
        purpose = row.purpose or ("TREAT" if row.agent_role in ("clinician", "system") else None)
        purpose_text = w["purposes"].get(purpose or "", "")
        reason = _reason(content) if row.break_glass else None
        kinds = _kinds(content, patient_id)
        when = row.recorded
        entries.append(
            AccessEntry(
                id=row.event_id,
                when=when,
                who=who,
                action=row.action,
                data_kinds=kinds,
                purpose=purpose,
                purpose_text=purpose_text,
                break_glass=bool(row.break_glass),
                break_glass_reason=reason,
                text=_sentence(
                    who, row.action, kinds, when, purpose_text, reason, bool(row.break_glass)
                ),
                request_id=row.request_id,
            )
        )
    next_before = int(rows[count - 1].seq) if len(rows) > count else None
    return AccessLogPage(patient_id, entries, next_before, [int(r.seq) for r in rows[:count]])
