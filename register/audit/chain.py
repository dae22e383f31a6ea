"""The tamper-evident audit chain: append events and verify the log.

Each event's hash covers its sequence number, the previous event's hash and its exact bytes, so
editing, deleting, inserting or reordering any stored event breaks the chain at that point; the
head row keeps the last sequence number and hash, so removing events from the end is caught too.
Appenders lock the head row inside their transaction, which makes the chain follow commit order
on SQLite and PostgreSQL alike.

What queries filter on is stored beside the bytes (the event's columns, its patient and entity
rows, its review-queue entry), so ``verify`` also reads back from each event's bytes what those
should be (:func:`fhir_adapters.audit_event.index_of`) and reports any difference: moving an
access to another organisation, hiding it from a patient's access log, or quietly closing a
break-glass review all show. Review verdicts are chained as review events: each queue entry's
verdict, note, reviewer and time must match its one review (a second review of an entry is
reported too). Run it in one snapshot (``register.db.read_transaction``) so that a register
writing meanwhile does not look like tampering.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, select

from fhir_adapters.audit_event import AuditIndex, index_of
from register.audit.plan import (
    ANY_EVENT_SQL,
    GENESIS,
    HEAD_SQL,
    Alert,
    ChainPlan,
    PreparedEvent,
    Statement,
    head_of,
    insert_sql,
    link_hash,
    plan_append,
    review_entry,
)
from register.audit.schema import audit_entity_table, audit_review_table
from register.schema import audit_head_table, audit_patient_table, audit_table

__all__ = [
    "ANY_EVENT_SQL",
    "GENESIS",
    "HEAD_SQL",
    "Alert",
    "ChainPlan",
    "PreparedEvent",
    "Statement",
    "head_of",
    "insert_sql",
    "link_hash",
    "plan_append",
    "read_head",
    "run_statements",
    "verify",
]

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
H = audit_head_table
E = audit_table
P = audit_patient_table
N = audit_entity_table
Q = audit_review_table


def read_head(conn: Connection) -> tuple[int, str, bool]:
    """Lock and read the chain head in ``conn``'s write transaction (see :func:`head_of`)."""
    sqlite = conn.dialect.name == "sqlite"
    row = conn.exec_driver_sql(HEAD_SQL if sqlite else HEAD_SQL + " FOR UPDATE").first()
    return head_of(row, row is None and conn.exec_driver_sql(ANY_EVENT_SQL).first() is not None)


def run_statements(conn: Connection, statements: Sequence[Statement]) -> None:
    """Execute a plan's statements on a SQLAlchemy connection."""
    for sql, rows in statements:
        conn.exec_driver_sql(sql, rows if len(rows) > 1 else rows[0])


@dataclass
class VerifyReport:
    """What ``verify`` found: how many events it checked and every break in the chain."""

    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """Whether the chain is unbroken."""
        return not self.problems


_INDEXED = (
    E.c.event_id,
    E.c.recorded,
    E.c.kind,
    E.c.action,
    E.c.outcome,
    E.c.agent_role,
    E.c.agent_who,
    E.c.agent_org,
    E.c.client_id,
    E.c.purpose,
    E.c.break_glass,
    E.c.request_id,
)
_COLUMN_NAMES = tuple(column.name for column in _INDEXED)


@dataclass
class _Stored:
    """One event as stored: its chain row, and the patient and entity rows beside it."""

    row: Any
    patients: set[str]
    entities: set[str]


def _rows(conn: Connection, batch: int) -> Iterator[_Stored]:
    last = 0
    while True:
        chunk = conn.execute(
            select(E.c.seq, E.c.prev_hash, E.c.hash, E.c.content, *_INDEXED)
            .where(E.c.seq > last)
            .order_by(E.c.seq)
            .limit(batch)
        ).all()
        if not chunk:
            return
        high = int(chunk[-1].seq)
        patients: dict[int, set[str]] = {}
        for seq, patient in conn.execute(
            select(P.c.seq, P.c.patient_id).where(P.c.seq > last, P.c.seq <= high)
        ):
            patients.setdefault(int(seq), set()).add(str(patient))
        entities: dict[int, set[str]] = {}
        for seq, reference in conn.execute(
            select(N.c.seq, N.c.reference).where(N.c.seq > last, N.c.seq <= high)
        ):
            entities.setdefault(int(seq), set()).add(str(reference))
        for row in chunk:
            seq = int(row.seq)
            yield _Stored(row, patients.get(seq, set()), entities.get(seq, set()))
        last = high


@dataclass
class Expected:
    """What an event's hashed bytes say is stored beside them: its columns, its patient and
    entity rows, its review-queue entry (category, patient, reason), and for a privacy
    officer's review, the events it reviewed and the verdict, note and reviewer."""

    index: AuditIndex
    columns: dict[str, Any]
    patients: set[str]
    entities: set[str]
    review: tuple[str, str | None, str | None] | None
    verdict: tuple[str, str, str | None, Any] | None
    reviewed: list[str]


def expected_index(content: bytes) -> Expected:
    """Everything an event's stored bytes say its index rows are (what queries filter on)."""
    index = index_of(orjson.loads(content))
    columns = {name: getattr(index, name) for name in _COLUMN_NAMES}
    entities = {
        reference[:200]
        for reference in list(dict.fromkeys(index.entities))[:200]
        if not (reference.startswith("Patient/") and reference[8:] in index.patients)
    }
    verdict = None
    reviewed: list[str] = []
    if index.verdict is not None:
        verdict = (*index.verdict, index.agent_who or index.agent_name, index.recorded)
        reviewed = [ref[11:] for ref in index.entities if ref.startswith("AuditEvent/")]
    return Expected(
        index=index,
        columns=columns,
        patients=set(index.patients),
        entities=entities,
        review=review_entry(index.alerts) if index.alerts else None,
        verdict=verdict,
        reviewed=reviewed,
    )


def _same(stored: Any, expected: Any) -> bool:
    if isinstance(expected, bool):
        return bool(stored) == expected
    return stored == expected


def _index_problems(stored: _Stored, expected: Expected) -> list[str]:
    row = stored.row
    changed = [
        name for name, value in expected.columns.items() if not _same(getattr(row, name), value)
    ]
    if expected.patients != stored.patients:
        changed.append("patients")
    if expected.entities != stored.entities:
        changed.append("entities")
    return changed


_OPEN: tuple[str, str | None, str | None, Any] = ("open", None, None, None)


@dataclass
class _Reviews:
    """The review queue as stored, and what the chain says each entry should hold."""

    rows: dict[int, Any]
    flagged: dict[str, int] = field(default_factory=dict)  # event id -> seq
    stored: dict[int, tuple[str, str | None, str | None, Any]] = field(default_factory=dict)
    expected: dict[int, tuple[str, str | None, str | None, Any]] = field(default_factory=dict)

    def check(self, seq: int, expected: Expected, row: Any) -> list[str]:
        """Problems with event ``seq``'s queue entry, and note what later reviews must match."""
        found = []
        if expected.review is not None:
            if row is None:
                found.append(f"event {seq}: its review-queue entry is missing")
            else:
                entry = (row.category, row.patient_id, row.reason, row.recorded)
                if entry != (*expected.review, expected.index.recorded):
                    found.append(f"event {seq}: its review-queue entry does not match its content")
                self.stored[seq] = (row.status, row.note, row.reviewer, row.reviewed_at)
                self.expected[seq] = _OPEN
            if expected.index.event_id:
                self.flagged[expected.index.event_id] = seq
        elif row is not None:
            found.append(f"event {seq}: it has a review-queue entry its content does not raise")
        if expected.verdict is not None:
            for reviewed in expected.reviewed:
                target = self.flagged.get(reviewed)
                if target is None:
                    found.append(f"event {seq}: reviews an event that is not in the review queue")
                elif target in self.expected and self.expected[target] != _OPEN:
                    found.append(f"event {seq}: reviews event {target} a second time")
                elif target in self.expected:
                    self.expected[target] = expected.verdict
        return found

    def leftovers(self) -> list[str]:
        """Entries whose event is not in the log, and verdicts the chain does not record."""
        found = [
            f"event {seq}: a review-queue entry names it, but the log has no such event"
            for seq in sorted(self.rows)
        ]
        for seq, stored in sorted(self.stored.items()):
            if stored != self.expected[seq]:
                found.append(
                    f"event {seq}: its review-queue entry says {stored[0]!r}, "
                    f"but the chained reviews say {self.expected[seq][0]!r}"
                    + (
                        " (note, reviewer or time differ)"
                        if stored[0] == self.expected[seq][0]
                        else ""
                    )
                )
        return found


def verify(conn: Connection, *, batch: int = 5000, limit_problems: int = 50) -> VerifyReport:
    """Walk the whole chain and report where it is broken (edited, missing, inserted, moved),
    and where anything stored beside it (columns, patient and entity rows, the review queue and
    its verdicts) says other than the hashed bytes."""
    report = VerifyReport()
    expected_seq = 1
    prev = GENESIS
    reviews = _Reviews({int(r.seq): r for r in conn.execute(select(Q))})
    for stored in _rows(conn, batch):
        row = stored.row
        seq, prev_hash, stored_hash = int(row.seq), str(row.prev_hash), str(row.hash)
        content = bytes(row.content)
        report.checked += 1
        review = reviews.rows.pop(seq, None)
        if seq != expected_seq:
            report.problems.append(
                f"event {seq}: expected sequence {expected_seq}; events "
                f"{expected_seq}..{seq - 1} are missing"
                if seq > expected_seq
                else f"event {seq}: sequence number out of order"
            )
        if prev_hash != prev:
            report.problems.append(
                f"event {seq}: does not follow the event before it "
                "(an event was deleted, inserted or moved here)"
            )
        if link_hash(seq, prev_hash, content) != stored_hash:
            report.problems.append(f"event {seq}: content or hash was edited")
        else:
            try:
                expected: Expected | None = expected_index(content)
            except (ValueError, TypeError, AttributeError):  # bytes that are not an AuditEvent
                expected = None
                report.problems.append(f"event {seq}: its bytes are not a readable AuditEvent")
            if expected is not None:
                changed = _index_problems(stored, expected)
                if changed:
                    report.problems.append(
                        f"event {seq}: its index ({', '.join(changed)}) does not match its content"
                    )
                report.problems.extend(reviews.check(seq, expected, review))
        prev = stored_hash
        expected_seq = seq + 1
        if len(report.problems) >= limit_problems:
            report.problems.append("... stopped after too many problems")
            return report
    report.problems.extend(reviews.leftovers())
    head = conn.execute(select(H.c.seq, H.c.hash).where(H.c.id == 1)).first()
    if head is None:
        if report.checked:
            report.problems.append("the chain head is missing")
        return report
    if int(head.seq) != expected_seq - 1 or str(head.hash) != prev:
        report.problems.append(
            f"chain head names event {head.seq} but the log ends at event {expected_seq - 1}: "
            "events were removed from the end, or the head was changed"
        )
    return report
