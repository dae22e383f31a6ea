"""Break-glass: recording a clinician's declared emergency access to one patient's record.

``auth.policy`` decides whether a request claims break-glass and whether the caller may
(:func:`auth.policy.break_glass_claim`), and whether a new grant is due
(:func:`auth.policy.should_record_grant`). This module finds the patient in question, loads the
two facts that decision needs (a care relationship? an unexpired grant?) and records the grant:
who, for which patient, why, for how long. Each grant lands in the review queue
(``break_glass_grant.reviewed_at IS NULL``) for a privacy officer to look at afterwards
(``careregister break-glass list`` / ``review``).

A grant is a row, not a property of the token: the read filter (``register/visibility.py``)
opens the patient's record to the holder while the grant is unexpired, whatever token they use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from auth.policy import BreakGlassClaim, CareParty, should_record_grant
from auth.principal import Principal
from register.access_schema import break_glass_table
from register.audit.events import break_glass_event
from register.audit.requests import record_now
from register.schema import resource_table
from register.visibility import has_active_grant, has_relationship

log = logging.getLogger("register.access")
G = break_glass_table
R = resource_table


def patient_of_resource(conn: Connection, resource_type: str, resource_id: str) -> str | None:
    """Whose record ``resource_type/resource_id`` is part of (a fact, not the content)."""
    if resource_type == "Patient":
        return resource_id
    return conn.execute(
        select(R.c.patient_id).where(
            R.c.resource_type == resource_type, R.c.resource_id == resource_id
        )
    ).scalar()


def patient_in_search(resource_type: str, params: list[tuple[str, str]]) -> str | None:
    """The one patient a search is about (``patient=``, ``subject=Patient/x``, ``_id``)."""
    found: set[str] = set()
    for name, value in params:
        base = name.split(":", 1)[0]
        if base in ("patient", "subject") or (resource_type == "Patient" and base == "_id"):
            for item in value.split(","):
                item = item.strip()
                if item.startswith("Patient/"):
                    found.add(item.split("/", 1)[1])
                elif "/" not in item and item and (base != "subject" or resource_type == "Patient"):
                    found.add(item)
    return found.pop() if len(found) == 1 else None


def grant_due(
    conn: Connection,
    principal: Principal,
    claim: BreakGlassClaim,
    patient_id: str,
    *,
    encounter_window_days: int,
) -> bool:
    """Whether the policy says a new grant is due for ``patient_id`` (facts read here)."""
    party = CareParty(principal.organisation, principal.fhir_user, encounter_window_days)
    related = has_relationship(conn, party, patient_id)
    running = not related and has_active_grant(conn, claim.holder, patient_id)
    return should_record_grant(
        claim, patient_id, has_relationship=related, has_active_grant=running
    )


def ensure_grant(
    conn: Connection,
    principal: Principal,
    claim: BreakGlassClaim,
    patient_id: str,
    *,
    encounter_window_days: int,
    request_id: str | None,
) -> int | None:
    """Record a grant for ``patient_id`` if the policy says one is due; its id, or None."""
    if not grant_due(
        conn, principal, claim, patient_id, encounter_window_days=encounter_window_days
    ):
        return None
    now = datetime.now(UTC)
    pk = conn.execute(
        insert(G)
        .values(
            holder=claim.holder,
            subject=principal.subject,
            organisation=principal.organisation,
            practitioner=principal.fhir_user,
            client_id=principal.client_id,
            patient_id=patient_id,
            reason=claim.reason,
            purpose=claim.purpose.value,
            started_at=now,
            expires_at=now + timedelta(minutes=claim.minutes),
            request_id=request_id,
        )
        .returning(G.c.pk)
    ).scalar_one()
    # Audited with the grant (a write's event and this one commit together; see record_now).
    record_now(conn, break_glass_event(principal, claim, patient_id, int(pk), request_id))
    # The log names the grant, never the patient: logs carry no patient identifiers.
    log.warning(
        "break-glass access declared",
        extra={"grant": pk, "organisation": principal.organisation, "request_id": request_id},
    )
    return int(pk)


@dataclass(frozen=True)
class GrantRow:
    """A break-glass grant as the review queue shows it."""

    pk: int
    subject: str
    organisation: str | None
    practitioner: str | None
    client_id: str
    patient_id: str
    reason: str
    purpose: str
    started_at: datetime
    expires_at: datetime
    reviewed_at: datetime | None
    reviewed_by: str | None
    review_outcome: str | None
    review_note: str | None


REVIEW_OUTCOMES = ("justified", "not-justified", "referred")


def list_grants(conn: Connection, *, unreviewed_only: bool = True) -> list[GrantRow]:
    """Grants oldest first (only those still waiting for review, by default)."""
    query = select(*(G.c[name] for name in GrantRow.__dataclass_fields__)).order_by(G.c.pk)
    if unreviewed_only:
        query = query.where(G.c.reviewed_at.is_(None))
    return [GrantRow(**row._mapping) for row in conn.execute(query)]


def review_grant(conn: Connection, pk: int, *, outcome: str, reviewer: str, note: str) -> bool:
    """Record the review of grant ``pk``; False if there is no such grant."""
    if outcome not in REVIEW_OUTCOMES:
        raise ValueError(f"outcome must be one of {REVIEW_OUTCOMES}")
    values: dict[str, Any] = {
        "reviewed_at": datetime.now(UTC),
        "reviewed_by": reviewer,
        "review_outcome": outcome,
        "review_note": note,
    }
    return bool(conn.execute(update(G).where(G.c.pk == pk).values(**values)).rowcount)
