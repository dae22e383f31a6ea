"""AuditEvent as a FHIR type: read and search over the audit log, as the policy allows.

Events are served as the bytes the chain covers (de-identified for improvement reviewers). What a
requester may see is decided by :func:`auth.policy.audit_sight` and applied here as one SQL
condition (:func:`sight_clause`), before paging, exactly as resource reads apply ``Sight``: an
event one may not see is absent.

Search parameters (https://hl7.org/fhir/R4/auditevent.html#search): ``patient``, ``entity``,
``agent``, ``date`` (with ``eq ge gt le lt`` prefixes), ``subtype``, ``outcome``, ``action``,
``_count``; newest first, paged by position (``_before``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import orjson
from sqlalchemy import Connection, and_, exists, false, or_, select, true
from sqlalchemy.sql.expression import ColumnElement

from auth.policy import AuditSight
from fhir_adapters.audit_event import deidentified
from fhir_adapters.bundles import bundle_bytes, entry_bytes
from fhir_adapters.operation_outcome import error
from fhir_adapters.search_values import parse_date_range
from register.audit.schema import audit_entity_table
from register.errors import FhirError, bad_request
from register.schema import audit_patient_table, audit_table

E = audit_table
P = audit_patient_table
N = audit_entity_table
Params = list[tuple[str, str]]
SUPPORTED = ("patient", "entity", "agent", "date", "subtype", "outcome", "action")
IDENTIFYING = ("patient", "entity", "agent")
"""Parameters that find events by whom they concern or who acted: refused under a
de-identified sight, whose results would otherwise say that such an event exists."""


def sight_clause(sight: AuditSight) -> ColumnElement[bool]:
    """The condition an ``audit_event`` row must meet to be visible under ``sight``."""
    if sight.everything:
        return true()
    grants: list[ColumnElement[bool]] = []
    if sight.organisation:
        grants.append(E.c.agent_org == sight.organisation)
    if sight.patient:
        grants.append(exists().where(P.c.seq == E.c.seq, P.c.patient_id == sight.patient))
    if sight.without_patients:
        grants.append(~exists().where(P.c.seq == E.c.seq))
    return or_(*grants) if grants else false()


def _served(sight: AuditSight, content: bytes) -> bytes:
    """The bytes a requester under ``sight`` is served: the stored ones, or de-identified."""
    if sight.deidentified:
        return orjson.dumps(deidentified(orjson.loads(content)))
    return content


def read_event(conn: Connection, sight: AuditSight, event_id: str) -> bytes | None:
    """One AuditEvent's stored bytes (de-identified if ``sight`` says so), if it exists and is
    visible."""
    content = conn.execute(
        select(E.c.content).where(E.c.event_id == event_id, sight_clause(sight))
    ).scalar()
    return None if content is None else _served(sight, bytes(content))


def _reference_id(value: str, kind: str) -> str:
    value = value.strip()
    return value.split("/", 1)[1] if value.startswith(f"{kind}/") else value


def _date_condition(value: str) -> ColumnElement[bool]:
    prefix = value[:2] if value[:2] in ("eq", "ge", "gt", "le", "lt", "ne") else "eq"
    text = value[2:] if value[:2] == prefix else value
    try:
        span = parse_date_range(text)
    except ValueError:
        raise bad_request(
            "date must be a FHIR date or instant (prefixes eq ge gt le lt).", "date"
        ) from None
    recorded = E.c.recorded
    return {
        "eq": and_(recorded >= span.low, recorded < span.high),
        "ne": or_(recorded < span.low, recorded >= span.high),
        "ge": recorded >= span.low,
        "gt": recorded >= span.high,
        "le": recorded < span.high,
        "lt": recorded < span.low,
    }[prefix]


def _condition(name: str, value: str) -> ColumnElement[bool]:
    values = [v for v in value.split(",") if v.strip()]
    if not values:
        raise bad_request(f"{name} needs a value.", name)
    if name == "date":
        return or_(*(_date_condition(v) for v in values))
    if name == "patient":
        ids = [_reference_id(v, "Patient") for v in values]
        return exists().where(P.c.seq == E.c.seq, P.c.patient_id.in_(ids))
    if name == "entity":
        refs = [v.strip() for v in values]
        patients = [r.split("/", 1)[1] for r in refs if r.startswith("Patient/")]
        found = exists().where(N.c.seq == E.c.seq, N.c.reference.in_(refs))
        if patients:
            found = or_(found, exists().where(P.c.seq == E.c.seq, P.c.patient_id.in_(patients)))
        return found
    if name == "agent":
        refs = [v.strip() for v in values]
        return or_(E.c.agent_who.in_(refs), E.c.client_id.in_(refs))
    if name == "subtype":
        return E.c.action.in_([v.rsplit("|", 1)[-1].strip() for v in values])
    if name == "outcome":
        return E.c.outcome.in_([v.strip() for v in values])
    # action: the CRUDE code is in the content; the interaction code is the column.
    from fhir_adapters.audit_event import ACTIONS

    wanted = {v.strip() for v in values}
    return E.c.action.in_([code for code, crude in ACTIONS.items() if crude in wanted])


@dataclass(frozen=True)
class SearchPage:
    """One page of events (newest first) and the position to continue from."""

    events: list[tuple[int, str, bytes]]
    next_before: int | None


def search_events(conn: Connection, sight: AuditSight, params: Params, *, count: int) -> SearchPage:
    """Events matching ``params`` that ``sight`` shows, newest first, one page."""
    conditions: list[ColumnElement[bool]] = [sight_clause(sight)]
    for name, value in params:
        base = name.split(":", 1)[0]
        if base in ("_count", "_format", "_pretty"):
            continue
        if base == "_before":
            if not value.isdigit():
                raise bad_request("_before must be a position from a next link.", "_before")
            conditions.append(E.c.seq < int(value))
            continue
        if base not in SUPPORTED:
            raise bad_request(
                f"AuditEvent cannot be searched by '{name[:40]}' here "
                f"(supported: {', '.join(SUPPORTED)}).",
                name[:40],
            )
        if sight.deidentified and base in IDENTIFYING:
            raise FhirError(
                403,
                error(
                    "forbidden",
                    "The audit log is de-identified for this role: it cannot be searched by "
                    f"{', '.join(IDENTIFYING)}.",
                    name[:40],
                ),
            )
        conditions.append(_condition(base, value))
    rows = conn.execute(
        select(E.c.seq, E.c.event_id, E.c.content)
        .where(*conditions)
        .order_by(E.c.seq.desc())
        .limit(count + 1)
    ).all()
    events = [(int(r.seq), str(r.event_id), _served(sight, bytes(r.content))) for r in rows[:count]]
    return SearchPage(events, events[-1][0] if len(rows) > count and events else None)


def search_bundle(
    conn: Connection, sight: AuditSight, params: Params, *, base_url: str, count: int
) -> bytes:
    """The searchset Bundle of AuditEvents answering ``params``."""
    page = search_events(conn, sight, params, count=count)
    kept = [(k, v) for k, v in params if k not in ("_before",)]
    links = [("self", f"{base_url}/AuditEvent?{urlencode(kept)}".rstrip("?"))]
    if page.next_before is not None:
        nxt = urlencode([*kept, ("_before", str(page.next_before))])
        links.append(("next", f"{base_url}/AuditEvent?{nxt}"))
    entries = [
        entry_bytes(
            full_url=f"{base_url}/AuditEvent/{event_id}", resource=content, search={"mode": "match"}
        )
        for _, event_id, content in page.events
    ]
    return bundle_bytes("searchset", entries, links=links)
