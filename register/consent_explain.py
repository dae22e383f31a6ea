"""``Patient/[id]/$access-explain?resource=Type/id``: why a resource is, or is not, visible to
the requester, in plain words, without revealing what is withheld.

The answer is a ``Parameters`` resource: ``visible`` (boolean), ``rule`` (a code naming the
rule that decided, below), ``explanation`` (a sentence for people) and, when a Consent
provision decided, ``consent`` (its reference) and ``provision`` (the provision's FHIRPath).

The decision is not made again here: the register asks the database the same questions the read
filter asks (``register/visibility.py``: the requester's condition with and without its
withholdings, the care relationship, break-glass, sensitivity, the deciding Consent rule) about
that one row, and words the answer. What it never says:

- to a requester with no care relationship (and no break-glass) with the patient, anything
  about a resource their organisation did not record: the answer is the same whether it exists
  or not;
- to the patient, anything about an item not to be disclosed to them: it reads as not found;
- to anyone, the sensitive category of a withheld resource, or its content.

Rule codes: ``own-organisation``, ``own-record``, ``always-shared``, ``consent-permit``,
``default-opt-out``, ``care-relationship``, ``break-glass``, ``consent-deny``, ``sensitive``,
``default-opt-in``, ``scope``, ``no-relationship``, ``not-found``, ``everything`` (operator).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, case, literal_column, select

from auth.policy import SharingModel, Sight
from register import storage
from register.consent_schema import provision_table
from register.context import RequestContext
from register.errors import bad_request, not_found
from register.schema import resource_table
from register.visibility import (
    deciding_rule,
    has_active_grant,
    has_relationship,
    labelled,
    sight_clause,
)

R = resource_table
_ONE, _ZERO = literal_column("1"), literal_column("0")


def _flag(condition: Any) -> Any:
    return case((condition, _ONE), else_=_ZERO) if condition is not None else _ONE


def explain(
    conn: Connection, ctx: RequestContext, patient_id: str, reference: str | None
) -> dict[str, Any]:
    """The Parameters answer for ``reference`` (``Type/id``) in ``patient_id``'s record."""
    if storage.read(conn, ctx.visibility, "Patient", patient_id) is None:
        raise not_found(f"Patient/{patient_id} is not known.")
    resource_type, _, resource_id = (reference or "").partition("/")
    if not resource_type or not resource_id or "/" in resource_id:
        raise bad_request("resource must name one resource as Type/id.", "resource")
    sight = getattr(ctx.visibility, "sight", None)
    if not isinstance(sight, Sight) or sight.everything:
        return _answer(True, "everything", "You may see every resource (the register's operator).")

    row = conn.execute(
        select(R.c.pk, R.c.patient_id, R.c.author_org, R.c.deleted).where(
            R.c.resource_type == resource_type, R.c.resource_id == resource_id
        )
    ).first()
    exists_here = row is not None and not row.deleted and row.patient_id == patient_id
    relaxed = sight.without_withholdings()
    columns = [
        _flag(sight_clause(sight, R)).label("visible"),
        _flag(sight_clause(relaxed, R)).label("relaxed"),
    ]
    if sight.own_patient is not None:  # the patient: own record, or nothing said
        if exists_here and _one(conn, row.pk, columns).visible:
            return _answer(True, "own-record", "It is part of your own record.")
        return _not_found()

    org = sight.own_organisation
    if exists_here and org is not None and row.author_org == org:
        return _answer(
            True,
            "own-organisation",
            "Your organisation recorded it; an organisation always sees what it recorded, "
            "whatever the patient's sharing choices.",
        )
    care = sight.care_of is not None and has_relationship(conn, sight.care_of, patient_id)
    glass = sight.break_glass_holder is not None and has_active_grant(
        conn, sight.break_glass_holder, patient_id
    )
    if not care and not glass:
        return _answer(
            False,
            "no-relationship",
            "Your organisation has no active care relationship with this patient, so records "
            "other organisations made are not open to you (and nothing is said about them). "
            "Recording an Encounter at your organisation opens the record; in an emergency a "
            "clinician may declare break-glass access with a reason.",
        )
    if not exists_here:
        return _not_found()
    flags = _one(conn, row.pk, columns)
    if glass and flags.visible:
        return _answer(
            True,
            "break-glass",
            "Your break-glass access for this patient is running: the whole record is open to "
            "you until it expires, and the access is recorded and reviewed.",
        )
    if not flags.relaxed:
        return _answer(
            False,
            "scope",
            "Your token's scopes do not include this kind of resource.",
        )
    rule = sight.consent
    if flags.visible:
        if rule is None:
            return _answer(True, "care-relationship", "Your care relationship opens it.")
        if resource_type in rule.always_shared:
            return _answer(
                True,
                "always-shared",
                f"{resource_type} resources are always shared with those caring for the patient.",
            )
        decided = _deciding(conn, ctx, row.pk, sight)
        if decided is not None:
            return _answer(
                True,
                "consent-permit",
                "The patient's Consent permits sharing it with your organisation.",
                decided,
            )
        return _answer(
            True,
            "default-opt-out",
            "The register shares records for direct care unless the patient withholds them "
            "(opt-out), and nothing in the patient's Consent withholds this from you.",
        )
    # Reachable but withheld: say which withholding, never what it holds.
    assert rule is not None
    sensitive = (
        bool(
            conn.execute(
                select(_flag(labelled(R, rule.sensitive_labels, "sens"))).where(R.c.pk == row.pk)
            ).scalar()
        )
        if rule.sensitive_labels
        else False
    )
    decided = _deciding(conn, ctx, row.pk, sight)
    override = (
        " In an emergency a clinician may declare break-glass access with a reason; it is "
        "recorded and reviewed."
    )
    if decided is not None and decided["effect"] == "deny":
        return _answer(
            False,
            "consent-deny",
            "The patient's Consent withholds it from your organisation." + override,
            decided,
        )
    if sensitive:
        return _answer(
            False,
            "sensitive",
            "It is confidential (a sensitive category of information) and the patient has not "
            "permitted sharing it." + override,
            decided,
        )
    if rule.model is SharingModel.OPT_IN:
        return _answer(
            False,
            "default-opt-in",
            "Sharing is opt-in here and the patient's Consent does not permit sharing it with "
            "your organisation." + override,
        )
    return _answer(False, "consent-deny", "The patient's sharing choices withhold it." + override)


def _one(conn: Connection, pk: int, columns: list[Any]) -> Any:
    return conn.execute(select(*columns).where(R.c.pk == pk)).one()


def _deciding(
    conn: Connection, ctx: RequestContext, pk: int, sight: Sight
) -> dict[str, Any] | None:
    """The Consent rule that decides for the row, if one matches."""
    rule = sight.consent
    if rule is None:
        return None
    columns = []
    for name in ("consent_id", "path", "effect"):
        p = provision_table.alias(f"cp_e_{name}")
        columns.append(deciding_rule(rule, R, p, p.c[name]).scalar_subquery().label(name))
    found = conn.execute(select(*columns).where(R.c.pk == pk)).first()
    if found is not None and found.effect is None:
        found = None
    if found is None:
        return None
    return {
        "consent": f"Consent/{found.consent_id}",
        "provision": found.path,
        "effect": found.effect,
    }


def _not_found() -> dict[str, Any]:
    return _answer(
        False,
        "not-found",
        "No such resource is visible to you in this patient's record.",
    )


def _answer(
    visible: bool, rule: str, text: str, decided: dict[str, Any] | None = None
) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": "visible", "valueBoolean": visible},
        {"name": "rule", "valueCode": rule},
        {"name": "explanation", "valueString": text},
    ]
    if decided is not None:
        parameters.append({"name": "consent", "valueReference": {"reference": decided["consent"]}})
        parameters.append({"name": "provision", "valueString": decided["provision"]})
    return {"resourceType": "Parameters", "parameter": parameters}
