"""Planning an append to the audit chain: hashes and driver-level statements, nothing else.

Kept free of SQLAlchemy and the register's schema so that the audit writer process
(:mod:`register.audit.sidecar`) starts in a fraction of a second; every path that appends
events (the writer process, a write's own transaction, the command line) runs these plans.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

import orjson

from fhir_adapters.audit_event import AuditFacts, audit_event

GENESIS = "0" * 64


@dataclass(slots=True)  # not frozen: built for every request, and frozen init costs
class PreparedEvent:
    """An audit event ready to append: its bytes (or the facts to render them from, see
    :func:`content_of`) and the columns used to query it."""

    event_id: str
    recorded: datetime
    kind: str
    action: str
    outcome: str
    content: bytes
    """The AuditEvent's JSON bytes; empty until rendered from ``facts``."""
    patients: tuple[str, ...] = ()
    agent_role: str | None = None
    agent_who: str | None = None
    agent_org: str | None = None
    client_id: str | None = None
    purpose: str | None = None
    break_glass: bool = False
    request_id: str | None = None
    entities: tuple[str, ...] = ()
    """``Type/id`` of the resources the event names (``audit_entity`` rows)."""
    alerts: tuple[Alert, ...] = ()
    """Why a privacy officer should look at this event (``audit_review`` rows)."""
    party: tuple[str | None, str | None, int] | None = None
    """For a clinician's or system's access: (organisation, practitioner, encounter window
    days), so the recorder can ask whether each patient was in a care relationship."""
    facts: AuditFacts | None = None
    """What the AuditEvent says, when ``content`` is not rendered yet."""


@dataclass(frozen=True)
class Alert:
    """One reason for review: ``category`` (break-glass | no-relationship), the patient, why."""

    category: str
    patient_id: str | None
    reason: str | None = None


_PREPARED_VALUES = attrgetter(*(f.name for f in fields(PreparedEvent) if f.name != "facts"))
_FACT_VALUES = attrgetter(*(f.name for f in fields(AuditFacts)))

Wire = tuple[tuple[Any, ...], tuple[Any, ...] | None]
"""An event as plain tuples, as shipped to the audit writer process with every read (pickling
the dataclasses took about 9 µs an event on the event loop; this, about 1)."""


def to_wire(event: PreparedEvent) -> Wire:
    """``event`` as plain tuples (see :data:`Wire`)."""
    facts = event.facts
    return _PREPARED_VALUES(event), None if facts is None else _FACT_VALUES(facts)


def from_wire(wire: Wire) -> PreparedEvent:
    """The event :func:`to_wire` made ``wire`` from."""
    values, facts = wire
    return PreparedEvent(*values, facts=None if facts is None else AuditFacts(*facts))


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def content_of(event: PreparedEvent) -> bytes:
    """The event's AuditEvent bytes, rendered from its facts the first time they are needed:
    for reads that is in the audit writer process, work the request does not wait for."""
    if not event.content:
        facts = event.facts
        if facts is None:
            raise ValueError("an audit event has neither content nor facts")
        if not facts.recorded:
            facts.recorded = _instant(event.recorded)
        event.content = orjson.dumps(audit_event(facts))
    return event.content


def link_hash(seq: int, prev_hash: str, content: bytes) -> str:
    """The hash of one link of the chain."""
    digest = hashlib.sha256()
    digest.update(f"{seq}|{prev_hash}|".encode())
    digest.update(content)
    return digest.hexdigest()


_EVENT_COLUMNS = (
    "seq",
    "event_id",
    "recorded",
    "kind",
    "action",
    "outcome",
    "agent_role",
    "agent_who",
    "agent_org",
    "client_id",
    "purpose",
    "break_glass",
    "request_id",
    "content",
    "prev_hash",
    "hash",
)


HEAD_SQL = "SELECT seq, hash FROM audit_head WHERE id = 1"
"""The chain head; PostgreSQL appenders add ``FOR UPDATE`` (SQLite's write lock serialises)."""
ANY_EVENT_SQL = "SELECT seq FROM audit_event LIMIT 1"


def insert_sql(table: str, columns: Sequence[str], mark: str) -> str:
    """A driver-level multi-row INSERT for ``executemany``."""
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


Statement = tuple[str, list[tuple[Any, ...]]]
"""Driver-level SQL and the rows to ``executemany`` it with."""


@dataclass(slots=True)
class ChainPlan:
    """What appending a batch writes: the events' sequence numbers and the statements."""

    seqs: list[int]
    statements: list[Statement]


def head_of(row: Any, any_event: bool) -> tuple[int, str, bool]:
    """The chain position to append after, from the head row (None for a new log), and whether
    the head row must be created. A missing head over existing events is a broken log."""
    if row is not None:
        return int(row[0]), str(row[1]), False
    if any_event:
        raise RuntimeError("audit chain head is missing while events exist")
    return 0, GENESIS, True


def plan_append(
    events: Sequence[PreparedEvent],
    head: tuple[int, str, bool],
    *,
    sqlite: bool,
    mark: str,
) -> ChainPlan:
    """The statements that append ``events`` after ``head`` (see :func:`head_of`).

    Driver-level SQL throughout: building Core statements and processing their parameters cost
    more than the rest of an audited read (measured with benchmarks/bench_audit.py), and the
    same plan runs on SQLAlchemy connections, a raw sqlite3 connection and psycopg's async one.
    """
    seq, prev, create_head = head
    rows = []
    patient_rows = []
    numbers = []
    for event in events:
        seq += 1
        content = content_of(event)
        current = link_hash(seq, prev, content)
        recorded = event.recorded.astimezone(UTC)
        rows.append(
            (
                seq,
                event.event_id,
                # as UTCDateTime stores it: naive UTC text on SQLite, timestamptz on PostgreSQL
                recorded.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else recorded,
                event.kind,
                event.action,
                event.outcome,
                event.agent_role,
                event.agent_who,
                event.agent_org,
                event.client_id,
                event.purpose,
                event.break_glass,
                event.request_id,
                content,
                prev,
                current,
            )
        )
        patient_rows.extend((seq, p) for p in sorted(set(event.patients)))
        numbers.append(seq)
        prev = current
    statements: list[Statement] = [(insert_sql("audit_event", _EVENT_COLUMNS, mark), rows)]
    if patient_rows:
        statements.append((insert_sql("audit_patient", ("seq", "patient_id"), mark), patient_rows))
    if create_head:
        statements.append((insert_sql("audit_head", ("id", "seq", "hash"), mark), [(1, seq, prev)]))
    else:
        statements.append(
            (f"UPDATE audit_head SET seq = {mark}, hash = {mark} WHERE id = 1", [(seq, prev)])
        )
    return ChainPlan(numbers, statements)


def review_entry(
    alerts: Sequence[tuple[str, str | None, str | None]],
) -> tuple[str, str | None, str | None]:
    """The review-queue row's (category, patient, reason) for an event's alerts (category,
    patient, reason): the first alert's category and patient, and every distinct reason."""
    reason = "; ".join(dict.fromkeys(r or "" for _, _, r in alerts)) or None
    return alerts[0][0], alerts[0][1], reason


def with_alerts(event: PreparedEvent, raised: Sequence[Alert]) -> None:
    """Put the review-queue entries ``event`` raises into its facts, so its hashed bytes say
    why it is in the queue (``audit verify`` then catches a removed or altered entry)."""
    if not raised:
        return
    if event.facts is None:
        raise ValueError("an event that raises review alerts must be rendered from its facts")
    event.facts.alerts = tuple((a.category, a.patient_id, a.reason) for a in raised)
    event.content = b""


def event_statements(
    events: Sequence[PreparedEvent],
    seqs: Sequence[int],
    alerts: Sequence[Sequence[Alert]],
    *,
    sqlite: bool,
    mark: str,
) -> list[Statement]:
    """The entity rows and review-queue rows of appended ``events`` (numbered ``seqs``)."""
    entity_rows: list[tuple[Any, ...]] = []
    review_rows: list[tuple[Any, ...]] = []
    for seq, event, raised in zip(seqs, events, alerts, strict=True):
        entity_rows.extend(
            (seq, ref[:200])
            for ref in event.entities
            # Patient/x is found through audit_patient already (AuditEvent?entity=Patient/x)
            if not (ref.startswith("Patient/") and ref[8:] in event.patients)
        )
        if raised:
            recorded = event.recorded.astimezone(UTC)
            review_rows.append(
                (
                    seq,
                    *review_entry([(a.category, a.patient_id, a.reason) for a in raised]),
                    recorded.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else recorded,
                    "open",
                )
            )
    statements: list[Statement] = []
    if entity_rows:
        statements.append((insert_sql("audit_entity", ("seq", "reference"), mark), entity_rows))
    if review_rows:
        columns = ("seq", "category", "patient_id", "reason", "recorded", "status")
        statements.append((insert_sql("audit_review", columns, mark), review_rows))
    return statements


def plan_events(
    events: Sequence[PreparedEvent],
    alerts: Sequence[Sequence[Alert]],
    head: tuple[int, str, bool],
    *,
    sqlite: bool,
    mark: str,
) -> ChainPlan:
    """Everything appending ``events`` after ``head`` writes: chain, patients, entities and
    review-queue rows."""
    for event, raised in zip(events, alerts, strict=True):
        with_alerts(event, raised)
    plan = plan_append(events, head, sqlite=sqlite, mark=mark)
    plan.statements.extend(event_statements(events, plan.seqs, alerts, sqlite=sqlite, mark=mark))
    return plan
