"""Appending audit events: the chain, the entities each names, and the review queue.

Every path that stores audit events calls :func:`append_events` inside its transaction: the
group-commit writer for reads and refusals, a write's own transaction for its event, the
break-glass grant's transaction for its start. Events of a clinician's or system's access are
checked for a care relationship with each patient whose data was served; those without one (and
every break-glass start) land in the privacy officer's review queue (``audit_review``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from sqlalchemy import Connection

from auth.policy import CareParty
from register.audit.chain import read_head, run_statements
from register.audit.plan import Alert, PreparedEvent, plan_events
from register.visibility import has_relationship

RELATIONSHIP_MEMO_SECONDS = 60.0
"""How long a "this party cares for this patient" answer is reused for the review queue (reads
are never decided by it; the read filter asks the database every time)."""

_memo: dict[tuple[str | None, str | None, int, str], tuple[float, bool]] = {}
_memo_lock = threading.Lock()


class LookupNeeded(Exception):
    """A relationship is not remembered and no connection was given to ask the database."""


def _related(
    conn: Connection | None, party: tuple[str | None, str | None, int], patient: str
) -> bool:
    key = (*party, patient)
    now = time.monotonic()
    with _memo_lock:
        found = _memo.get(key)
    if found is not None and now - found[0] < RELATIONSHIP_MEMO_SECONDS:
        return found[1]
    if conn is None:
        raise LookupNeeded
    answer = has_relationship(conn, CareParty(*party), patient)
    with _memo_lock:
        if len(_memo) > 50_000:
            _memo.clear()
        _memo[key] = (now, answer)
    return answer


def forget_relationships() -> None:
    """Drop the remembered relationship answers (tests that change relationships)."""
    with _memo_lock:
        _memo.clear()


def alerts_for(conn: Connection | None, event: PreparedEvent) -> list[Alert]:
    """The review-queue entries ``event`` raises: its own alerts, plus each patient it served
    to a clinician or system with no care relationship with them (asked on ``conn``; with no
    connection, from remembered answers only, raising :class:`LookupNeeded` on a miss)."""
    alerts = list(event.alerts)
    if event.party is not None:
        flagged = {a.patient_id for a in alerts}
        alerts.extend(
            Alert("no-relationship", patient, "data seen without a care relationship")
            for patient in event.patients
            if patient not in flagged and not _related(conn, event.party, patient)
        )
    return alerts


def append_events(conn: Connection, events: Sequence[PreparedEvent]) -> list[int]:
    """Append ``events`` to the chain in the caller's transaction, with their entity rows and
    review-queue entries; their sequence numbers."""
    if not events:
        return []
    alerts = [alerts_for(conn, event) for event in events]
    sqlite = conn.dialect.name == "sqlite"
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    plan = plan_events(events, alerts, read_head(conn), sqlite=sqlite, mark=mark)
    run_statements(conn, plan.statements)
    return plan.seqs
