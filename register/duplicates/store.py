"""The action log, findings and patient identities, as tables kept inside write transactions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, delete, insert, or_, select

from register.duplicates.actions import CareAction
from register.duplicates.matching import Identity
from register.schema import care_action_table, finding_table, identity_table

A = care_action_table
F = finding_table
I = identity_table  # noqa: E741 - the table's short name, as R and V in storage

_SEP = "\n"
_INSERT_ACTION = insert(A)
_EARLIER = select(A).where(
    A.c.patient_id == bindparam("patient"),
    A.c.group_key.in_(bindparam("groups", expanding=True)),
    A.c.resource_pk != bindparam("exclude"),
)


def _join(values: Iterable[str]) -> str:
    return _SEP.join(sorted(values))


def _split(value: str | None) -> frozenset[str]:
    return frozenset(v for v in (value or "").split(_SEP) if v)


def replace_actions(
    conn: Connection,
    resource_pk: int,
    patient_id: str | None,
    actions: Sequence[CareAction],
    *,
    fresh: bool = False,
) -> None:
    """Make the log hold exactly ``actions`` for the resource (none after a delete).

    A registration keeps the time it was first logged: updating a Patient is not registering
    them again. ``fresh`` (a resource just created) skips looking for rows that cannot exist.
    """
    if fresh:
        _insert_actions(conn, resource_pk, patient_id, actions)
        return
    first_registered = conn.execute(
        select(A.c.occurred_at).where(A.c.resource_pk == resource_pk, A.c.kind == "registration")
    ).scalar()
    if first_registered is not None:
        actions = [
            replace(a, occurred_at=first_registered) if a.kind == "registration" else a
            for a in actions
        ]
    conn.execute(delete(A).where(A.c.resource_pk == resource_pk))
    _insert_actions(conn, resource_pk, patient_id, actions)


def _insert_actions(
    conn: Connection, resource_pk: int, patient_id: str | None, actions: Sequence[CareAction]
) -> None:
    if not actions or not patient_id:
        return
    conn.execute(
        _INSERT_ACTION,
        [
            {
                "resource_pk": resource_pk,
                "resource_type": a.resource_type,
                "resource_id": a.resource_id,
                "patient_id": patient_id,
                "kind": a.kind,
                "group_key": a.group[:200],
                "occurred_at": a.occurred_at,
                "status": a.status,
                "codes": _join(a.codes),
                "ingredients": _join(a.ingredients),
                "classes": _join(a.classes),
                "org": a.org[:200] if a.org else None,
                "practitioner": a.practitioner[:200] if a.practitioner else None,
                "encounter": a.encounter[:200] if a.encounter else None,
                "linked": _join(a.linked),
                "value": a.value,
                "unit": a.unit[:64] if a.unit else None,
                "reason": a.reason,
                "confirmed": a.confirmed,
            }
            for a in actions
        ],
    )


def earlier_actions(
    conn: Connection, patient_id: str, groups: Iterable[str], *, exclude_pk: int
) -> list[CareAction]:
    """The patient's logged actions in ``groups``, other than those of one resource."""
    wanted = sorted(set(groups))
    if not wanted:
        return []
    rows = conn.execute(_EARLIER, {"patient": patient_id, "groups": wanted, "exclude": exclude_pk})
    return [
        CareAction(
            kind=row.kind,
            group=row.group_key,
            resource_type=row.resource_type,
            resource_id=row.resource_id,
            occurred_at=row.occurred_at,
            status=row.status,
            codes=_split(row.codes),
            ingredients=_split(row.ingredients),
            classes=_split(row.classes),
            org=row.org,
            practitioner=row.practitioner,
            encounter=row.encounter,
            linked=_split(row.linked),
            value=row.value,
            unit=row.unit,
            reason=row.reason,
            confirmed=bool(row.confirmed),
        )
        for row in rows
    ]


_INSERT_IDENTITY = insert(I)
_CANDIDATES = (
    select(I)
    .where(
        or_(I.c.nhs_number == bindparam("nhs"), I.c.birth_date == bindparam("birth")),
        I.c.resource_pk != bindparam("exclude"),
    )
    .limit(200)
)
# A strong match needs the NHS number, or family name and birth date together (the weights in
# matching.py): asking the database for just those keeps a registration check to the handful of
# rows that can matter, however many patients share a birth date.
_STRONG_CANDIDATES = select(I).where(
    or_(
        I.c.nhs_number == bindparam("nhs"),
        and_(I.c.birth_date == bindparam("birth"), I.c.family == bindparam("family")),
    ),
    I.c.resource_pk != bindparam("exclude"),
)


def replace_identity(
    conn: Connection, resource_pk: int, identity: Identity | None, *, fresh: bool = False
) -> None:
    """Keep the patient's matching demographics in step with the Patient resource."""
    if not fresh:
        conn.execute(delete(I).where(I.c.resource_pk == resource_pk))
    if identity is None:
        return
    conn.execute(
        _INSERT_IDENTITY,
        {
            "resource_pk": resource_pk,
            "patient_id": identity.patient_id,
            "nhs_number": identity.nhs_number,
            "family": identity.family,
            "given": identity.given,
            "birth_date": identity.birth_date,
            "gender": identity.gender,
            "postcode": identity.postcode,
        },
    )


def identity_candidates(
    conn: Connection,
    identity: Identity,
    *,
    exclude_pk: int | None = None,
    strong_only: bool = False,
) -> list[Identity]:
    """Registered patients sharing the NHS number or the birth date (the only ones that can
    score as possible or probable matches); with ``strong_only``, only those that can score as
    a strong match (same NHS number, or same family name and birth date)."""
    if not identity.nhs_number and not identity.birth_date:
        return []
    statement = _STRONG_CANDIDATES if strong_only else _CANDIDATES
    rows = conn.execute(
        statement,
        {
            "nhs": identity.nhs_number,
            "birth": identity.birth_date,
            "family": identity.family,
            "exclude": -1 if exclude_pk is None else exclude_pk,
        },
    )
    return [
        Identity(
            patient_id=row.patient_id,
            nhs_number=row.nhs_number,
            family=row.family,
            given=row.given,
            birth_date=row.birth_date,
            gender=row.gender,
            postcode=row.postcode,
        )
        for row in rows
    ]


def finding_exists(
    conn: Connection, patient_id: str, rule: str, group_key: str, event_key: str
) -> bool:
    """Whether this repeat event was already logged (one finding per repeated event)."""
    row = conn.execute(
        select(F.c.pk)
        .where(
            F.c.patient_id == patient_id,
            F.c.rule == rule,
            F.c.group_key == group_key,
            F.c.event_key == event_key,
        )
        .limit(1)
    ).first()
    return row is not None


def findings_for_repeat(conn: Connection, references: Iterable[str], group_key: str) -> bool:
    """Whether an order this result fulfils was already logged as a repeat of the same test."""
    refs = sorted(set(references))
    if not refs:
        return False
    row = conn.execute(
        select(F.c.pk).where(F.c.repeat_ref.in_(refs), F.c.group_key == group_key).limit(1)
    ).first()
    return row is not None


def reported_issue(
    conn: Connection, patient_id: str, rule: str, group_key: str, event_key: str
) -> str | None:
    """The DetectedIssue id of the same patient report made before, if any."""
    return conn.execute(
        select(F.c.issue_id)
        .where(
            F.c.patient_id == patient_id,
            F.c.rule == rule,
            F.c.group_key == group_key,
            F.c.event_key == event_key,
            F.c.patient_reported.is_(True),
        )
        .limit(1)
    ).scalar()


def save_finding(conn: Connection, values: dict[str, object]) -> None:
    """Log a finding for the improvement review."""
    conn.execute(insert(F).values(**values))


def event_key(action: CareAction) -> str:
    """What makes two actions the same clinical event: the encounter, else org and time."""
    if action.encounter:
        return f"enc:{action.encounter}"
    moment: datetime = action.occurred_at
    return f"at:{action.org or '-'}:{moment.strftime('%Y-%m-%dT%H')}"
