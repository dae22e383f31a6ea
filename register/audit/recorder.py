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

from sqlalchemy import Connection, insert

from auth.policy import CareParty
from register.audit.chain import Alert, PreparedEvent, append
from register.audit.schema import audit_review_table
from register.visibility import has_relationship

RELATIONSHIP_MEMO_SECONDS = 60.0
"""How long a "this party cares for this patient" answer is reused for the review queue (reads
are never decided by it; the read filter asks the database every time)."""

_memo: dict[tuple[str | None, str | None, int, str], tuple[float, bool]] = {}
_memo_lock = threading.Lock()


def _related(conn: Connection, party: tuple[str | None, str | None, int], patient: str) -> bool:
    key = (*party, patient)
    now = time.monotonic()
    with _memo_lock:
        found = _memo.get(key)
    if found is not None and now - found[0] < RELATIONSHIP_MEMO_SECONDS:
        return found[1]
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


def alerts_for(conn: Connection, event: PreparedEvent) -> list[Alert]:
    """The review-queue entries ``event`` raises: its own alerts, plus each patient it served
    to a clinician or system with no care relationship with them."""
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
    seqs = append(conn, events)
    entity_rows = []
    review_rows = []
    for seq, event in zip(seqs, events, strict=True):
        entity_rows.extend(
            {"seq": seq, "reference": ref[:200]}
            for ref in event.entities
            # Patient/x is found through audit_patient already (AuditEvent?entity=Patient/x)
            if not (ref.startswith("Patient/") and ref[8:] in event.patients)
        )
        alerts = alerts_for(conn, event)
        if alerts:
            first = alerts[0]
            review_rows.append(
                {
                    "seq": seq,
                    "category": first.category,
                    "patient_id": first.patient_id,
                    "reason": "; ".join(dict.fromkeys(a.reason or "" for a in alerts)) or None,
                    "recorded": event.recorded,
                    "status": "open",
                }
            )
    if entity_rows:
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        conn.exec_driver_sql(
            f"INSERT INTO audit_entity (seq, reference) VALUES ({mark}, {mark})",
            [(row["seq"], row["reference"]) for row in entity_rows],
        )
    if review_rows:
        conn.execute(insert(audit_review_table), review_rows)
    return seqs
