"""The privacy officer's review queue: audited accesses that need a person to look at them.

A service module (no HTTP): ``AuditEvent/$review-queue`` and ``AuditEvent/{id}/$review``
(``register/api/audit_routes.py``) and the web pages call these functions. Entries are made when
events are appended (:mod:`register.audit.recorder`): every break-glass start (with its typed
reason), and every access or write by a clinician or organisation system to a patient it had no
care relationship with. A privacy officer marks each reviewed, ``appropriate`` or
``inappropriate`` with a note; the review is itself recorded in the audit log.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select, update

from auth.principal import Principal
from register.audit.events import review_event
from register.audit.recorder import append_events
from register.audit.schema import audit_review_table
from register.schema import audit_patient_table, audit_table

E = audit_table
Q = audit_review_table
P = audit_patient_table
VERDICTS = ("appropriate", "inappropriate")
STATUSES = ("open", "reviewed", "all")
CATEGORIES = ("break-glass", "no-relationship")
ALREADY = "this entry was already reviewed"


class ReviewError(ValueError):
    """A review that cannot be recorded, or a queue that cannot be listed: the HTTP status,
    OperationOutcome issue code and element at fault it should be answered with."""

    def __init__(
        self, message: str, *, status: int = 400, code: str = "invalid", element: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.element = element


@dataclass(frozen=True)
class ReviewItem:
    """One entry of the queue: the event, why it is here, and its review so far."""

    id: str
    position: int
    category: str
    patient_id: str | None
    patients: list[str]
    reason: str | None
    recorded: datetime
    action: str
    outcome: str
    agent_who: str | None
    agent_name: str | None
    agent_role: str | None
    agent_org: str | None
    client_id: str | None
    purpose: str | None
    break_glass: bool
    request_id: str | None
    status: str
    note: str | None
    reviewer: str | None
    reviewed_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        """The entry as JSON-ready data."""
        data = asdict(self)
        for key in ("recorded", "reviewed_at"):
            if data[key] is not None:
                data[key] = data[key].isoformat().replace("+00:00", "Z")
        return data


@dataclass(frozen=True)
class ReviewPage:
    """One page of the queue, oldest first, and the position of the next page."""

    items: list[ReviewItem]
    next_after: int | None


_COLUMNS = (
    Q.c.seq,
    Q.c.category,
    Q.c.patient_id,
    Q.c.reason,
    Q.c.recorded,
    Q.c.status,
    Q.c.note,
    Q.c.reviewer,
    Q.c.reviewed_at,
    E.c.event_id,
    E.c.action,
    E.c.outcome,
    E.c.agent_who,
    E.c.agent_role,
    E.c.agent_org,
    E.c.client_id,
    E.c.purpose,
    E.c.break_glass,
    E.c.request_id,
    E.c.content,
)


def _agent_name(content: bytes) -> str | None:
    for agent in orjson.loads(content).get("agent") or []:
        if agent.get("requestor"):
            return (agent.get("who") or {}).get("display")
    return None


def _item(conn: Connection, row: Any) -> ReviewItem:
    patients = list(
        conn.execute(select(P.c.patient_id).where(P.c.seq == row.seq).order_by(P.c.patient_id))
        .scalars()
        .all()
    )
    return ReviewItem(
        id=row.event_id,
        position=int(row.seq),
        category=row.category,
        patient_id=row.patient_id,
        patients=patients,
        reason=row.reason,
        recorded=row.recorded,
        action=row.action,
        outcome=row.outcome,
        agent_who=row.agent_who,
        agent_name=_agent_name(row.content),
        agent_role=row.agent_role,
        agent_org=row.agent_org,
        client_id=row.client_id,
        purpose=row.purpose,
        break_glass=bool(row.break_glass),
        request_id=row.request_id,
        status=row.status,
        note=row.note,
        reviewer=row.reviewer,
        reviewed_at=row.reviewed_at,
    )


def list_queue(
    conn: Connection,
    *,
    status: str = "open",
    category: str | None = None,
    count: int = 50,
    after: int | None = None,
) -> ReviewPage:
    """Queue entries oldest first: ``status`` open (default), reviewed or all; optionally one
    ``category``; ``after`` is the position a previous page returned as ``next_after``."""
    if status not in STATUSES:
        raise ReviewError(f"status must be one of {', '.join(STATUSES)}", element="status")
    if category is not None and category not in CATEGORIES:
        raise ReviewError(f"category must be one of {', '.join(CATEGORIES)}", element="category")
    query = select(*_COLUMNS).select_from(Q.join(E, E.c.seq == Q.c.seq)).order_by(Q.c.seq)
    if status == "open":
        query = query.where(Q.c.status == "open")
    elif status == "reviewed":
        query = query.where(Q.c.status != "open")
    if category is not None:
        query = query.where(Q.c.category == category)
    if after is not None:
        query = query.where(Q.c.seq > after)
    rows = conn.execute(query.limit(count + 1)).all()
    items = [_item(conn, row) for row in rows[:count]]
    return ReviewPage(items, items[-1].position if len(rows) > count and items else None)


def get_item(conn: Connection, event_id: str) -> ReviewItem | None:
    """The queue entry of the event ``event_id``, if it has one."""
    row = conn.execute(
        select(*_COLUMNS).select_from(Q.join(E, E.c.seq == Q.c.seq)).where(E.c.event_id == event_id)
    ).first()
    return _item(conn, row) if row is not None else None


def mark_reviewed(
    conn: Connection,
    event_id: str,
    *,
    verdict: str,
    note: str,
    reviewer: Principal,
    request_id: str | None = None,
) -> ReviewItem:
    """Record a privacy officer's verdict on the entry of ``event_id`` (in the caller's write
    transaction, with an audit event of the review). Raises :class:`ReviewError`."""
    if verdict not in VERDICTS:
        raise ReviewError(f"verdict must be one of {', '.join(VERDICTS)}", element="verdict")
    note = note.strip()
    if not note or len(note) > 2000:
        raise ReviewError("a review needs a note of 1 to 2000 characters", element="note")
    item = get_item(conn, event_id)
    if item is None:
        raise ReviewError("no review-queue entry for this AuditEvent", status=404, code="not-found")
    if item.status != "open":
        raise ReviewError(ALREADY, status=409, code="conflict")
    who = reviewer.fhir_user or reviewer.subject
    event = review_event(
        principal=reviewer,
        reviewed=event_id,
        verdict=verdict,
        note=note,
        request_id=request_id,
        moment=datetime.now(UTC),
    )
    marked = conn.execute(
        update(Q)
        .where(Q.c.seq == item.position, Q.c.status == "open")
        .values(status=verdict, note=note, reviewer=who, reviewed_at=event.recorded)
    )
    if marked.rowcount != 1:  # another officer's review committed since ours read the entry
        raise ReviewError(ALREADY, status=409, code="conflict")
    append_events(conn, [event])
    found = get_item(conn, event_id)
    assert found is not None
    return found
