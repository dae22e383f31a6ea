"""The tamper-evident audit chain: append events and verify the log.

Each event's hash covers its sequence number, the previous event's hash and its exact bytes, so
editing, deleting, inserting or reordering any stored event breaks the chain at that point; the
head row keeps the last sequence number and hash, so removing events from the end is caught too.
Appenders lock the head row inside their transaction, which makes the chain follow commit order
on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, select

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
)
from register.schema import audit_head_table, audit_patient_table, audit_table

__all__ = [
    "ANY_EVENT_SQL",
    "GENESIS",
    "HEAD_SQL",
    "Alert",
    "ChainPlan",
    "PreparedEvent",
    "Statement",
    "append",
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


def read_head(conn: Connection) -> tuple[int, str, bool]:
    """Lock and read the chain head in ``conn``'s write transaction (see :func:`head_of`)."""
    sqlite = conn.dialect.name == "sqlite"
    row = conn.exec_driver_sql(HEAD_SQL if sqlite else HEAD_SQL + " FOR UPDATE").first()
    return head_of(row, row is None and conn.exec_driver_sql(ANY_EVENT_SQL).first() is not None)


def run_statements(conn: Connection, statements: Sequence[Statement]) -> None:
    """Execute a plan's statements on a SQLAlchemy connection."""
    for sql, rows in statements:
        conn.exec_driver_sql(sql, rows if len(rows) > 1 else rows[0])


def append(conn: Connection, events: Sequence[PreparedEvent]) -> list[int]:
    """Append ``events`` to the chain in the caller's transaction; their sequence numbers."""
    if not events:
        return []
    plan = plan_append(
        events,
        read_head(conn),
        sqlite=conn.dialect.name == "sqlite",
        mark="?" if conn.dialect.paramstyle == "qmark" else "%s",
    )
    run_statements(conn, plan.statements)
    return plan.seqs


@dataclass
class VerifyReport:
    """What ``verify`` found: how many events it checked and every break in the chain."""

    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """Whether the chain is unbroken."""
        return not self.problems


_INDEXED = (E.c.agent_who, E.c.agent_org, E.c.outcome, E.c.request_id)


def _rows(conn: Connection, batch: int) -> Iterator[tuple[Any, set[str]]]:
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
        patients: dict[int, set[str]] = {}
        for seq, patient in conn.execute(
            select(P.c.seq, P.c.patient_id).where(P.c.seq > last, P.c.seq <= int(chunk[-1].seq))
        ):
            patients.setdefault(int(seq), set()).add(str(patient))
        for row in chunk:
            yield row, patients.get(int(row.seq), set())
        last = int(chunk[-1].seq)


def indexed_facts(content: bytes) -> tuple[dict[str, str | None], set[str]]:
    """The columns and patients an event's stored bytes say it has (what queries filter on)."""
    event = orjson.loads(content)
    facts: dict[str, str | None] = {
        "agent_who": None,
        "agent_org": None,
        "outcome": event.get("outcome"),
        "request_id": None,
    }
    for agent in event.get("agent") or []:
        who = agent.get("who") or {}
        if agent.get("requestor"):
            facts["agent_who"] = who.get("reference")
        elif (who.get("identifier") or {}).get("system") == ODS:
            facts["agent_org"] = who["identifier"].get("value")
    patients = set()
    for entity in event.get("entity") or []:
        reference = (entity.get("what") or {}).get("reference") or ""
        if (entity.get("role") or {}).get("code") == "1" and reference.startswith("Patient/"):
            patients.add(reference[8:])
        if (entity.get("type") or {}).get("code") == "XrequestId":
            facts["request_id"] = (entity.get("what") or {}).get("identifier", {}).get("value")
    return facts, patients


def verify(conn: Connection, *, batch: int = 5000, limit_problems: int = 50) -> VerifyReport:
    """Walk the whole chain and report where it is broken (edited, missing, inserted, moved)."""
    report = VerifyReport()
    expected_seq = 1
    prev = GENESIS
    for row, patients in _rows(conn, batch):
        seq, prev_hash, stored_hash = int(row.seq), str(row.prev_hash), str(row.hash)
        content = bytes(row.content)
        report.checked += 1
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
            # The columns and patient rows queries use must say what the hashed bytes say.
            facts, named = indexed_facts(content)
            changed = [name for name, value in facts.items() if getattr(row, name) != value]
            if named != patients:
                changed.append("patients")
            if changed:
                report.problems.append(
                    f"event {seq}: its index ({', '.join(changed)}) does not match its content"
                )
        prev = stored_hash
        expected_seq = seq + 1
        if len(report.problems) >= limit_problems:
            report.problems.append("... stopped after too many problems")
            return report
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
