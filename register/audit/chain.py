"""The tamper-evident audit chain: append events and verify the log.

Each event's hash covers its sequence number, the previous event's hash and its exact bytes, so
editing, deleting, inserting or reordering any stored event breaks the chain at that point; the
head row keeps the last sequence number and hash, so removing events from the end is caught too.
Appenders lock the head row inside their transaction, which makes the chain follow commit order
on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select

from register.schema import audit_head_table, audit_patient_table, audit_table

GENESIS = "0" * 64
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
H = audit_head_table
E = audit_table
P = audit_patient_table


@dataclass(slots=True)  # not frozen: built for every request, and frozen init costs
class PreparedEvent:
    """An audit event ready to append: its bytes and the columns used to query it."""

    event_id: str
    recorded: datetime
    kind: str
    action: str
    outcome: str
    content: bytes
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


@dataclass(frozen=True)
class Alert:
    """One reason for review: ``category`` (break-glass | no-relationship), the patient, why."""

    category: str
    patient_id: str | None
    reason: str | None = None


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


_HEAD = "SELECT seq, hash FROM audit_head WHERE id = 1"


def _insert_sql(table: str, columns: Sequence[str], mark: str) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


def append(conn: Connection, events: Sequence[PreparedEvent]) -> list[int]:
    """Append ``events`` to the chain in the caller's transaction; their sequence numbers."""
    if not events:
        return []
    sqlite = conn.dialect.name == "sqlite"
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    # Driver-level SQL throughout: building Core statements and processing their parameters
    # cost more than the rest of an audited read (measured with benchmarks/bench_audit.py).
    head = conn.exec_driver_sql(_HEAD if sqlite else _HEAD + " FOR UPDATE").first()
    if head is None:
        # A new log: the head is created with the first event (never over an existing log).
        if conn.execute(select(E.c.seq).limit(1)).first() is not None:
            raise RuntimeError("audit chain head is missing while events exist")
        conn.execute(insert(H).values(id=1, seq=0, hash=GENESIS))
        seq, prev = 0, GENESIS
    else:
        seq, prev = int(head.seq), str(head.hash)
    rows = []
    patient_rows = []
    numbers = []
    for event in events:
        seq += 1
        current = link_hash(seq, prev, event.content)
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
                event.content,
                prev,
                current,
            )
        )
        patient_rows.extend((seq, p) for p in sorted(set(event.patients)))
        numbers.append(seq)
        prev = current
    conn.exec_driver_sql(_insert_sql("audit_event", _EVENT_COLUMNS, mark), rows)
    if patient_rows:
        conn.exec_driver_sql(
            _insert_sql("audit_patient", ("seq", "patient_id"), mark), patient_rows
        )
    conn.exec_driver_sql(
        f"UPDATE audit_head SET seq = {mark}, hash = {mark} WHERE id = 1", (seq, prev)
    )
    return numbers


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
