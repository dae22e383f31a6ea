"""Audit events built from what the register knows about an access: who, what, why, outcome.

One function per kind of event. Each returns a :class:`~register.audit.plan.PreparedEvent`: the
facts of the BALP AuditEvent (rendered to bytes by :mod:`fhir_adapters.audit_event` when the
event is appended, see :func:`register.audit.plan.content_of`) and the columns the audit queries
use (agent, organisation, patients, entities, alerts for the review queue).
"""

from __future__ import annotations

import itertools
import secrets
from collections import Counter
from datetime import UTC, datetime

from auth.policy import BreakGlassClaim
from auth.principal import Principal, Role
from fhir_adapters.audit_event import AuditFacts, outcome_for_status
from register.audit.chain import Alert, PreparedEvent
from register.audit.trail import Trail

MAX_QUERY = 2000
"""Longest search query recorded (longer ones are cut; the request id finds the rest)."""
_REVIEWED_ROLES = (Role.CLINICIAN,)
"""Whose reads are checked for a care relationship (an organisation's system reads what its
organisation recorded and its relationships open; its writes are still checked)."""


_PREFIX = secrets.token_hex(8)
_COUNTER = itertools.count(1)


def new_event_id() -> str:
    """A unique AuditEvent id: a random per-process prefix and a counter (uuid4 reads the
    system's random source on every call, which showed in the profile of audited reads)."""
    return f"{_PREFIX}{next(_COUNTER):08x}"


def _prepare(
    facts: AuditFacts,
    moment: datetime,
    *,
    kind: str,
    entities: tuple[str, ...] = (),
    alerts: tuple[Alert, ...] = (),
    party: tuple[str | None, str | None, int] | None = None,
) -> PreparedEvent:
    patients = tuple(dict.fromkeys([*facts.patients, *(p for p, _ in facts.patient_types)]))
    return PreparedEvent(
        facts=facts,
        event_id=facts.event_id,
        recorded=moment,
        kind=kind,
        action=facts.action,
        outcome=facts.outcome,
        content=b"",  # rendered from the facts when appended (register.audit.plan.content_of)
        patients=patients,
        agent_role=facts.agent_role,
        agent_who=facts.agent_who,
        agent_org=facts.agent_org,
        client_id=facts.client_id,
        purpose=facts.purpose,
        break_glass=bool(facts.break_glass_reason),
        request_id=facts.request_id,
        entities=tuple(dict.fromkeys(entities))[:200],
        alerts=alerts,
        party=party,
    )


_WHO_FIELDS = ("agent_who", "agent_name", "agent_role", "agent_org", "client_id", "token_id")
_NOBODY = (None,) * len(_WHO_FIELDS)
_SOURCE = AuditFacts.__dataclass_fields__["source"].default
_WHO: dict[int, tuple[Principal, tuple[str | None, ...]]] = {}


def _who_values(principal: Principal | None) -> tuple[str | None, ...]:
    """The agent's AuditFacts fields (``_WHO_FIELDS``, in that order), kept per principal: a
    token's requests share one principal object, and this runs on the event loop for every
    read."""
    if principal is None:
        return _NOBODY
    found = _WHO.get(id(principal))
    if found is not None and found[0] is principal:
        return found[1]
    values = (
        principal.fhir_user,
        principal.subject,
        principal.role.value,
        principal.organisation,
        principal.client_id,
        principal.token_id,
    )
    if len(_WHO) > 10_000:
        _WHO.clear()
    _WHO[id(principal)] = (principal, values)  # the principal is kept, so its id is not reused
    return values


def _who(principal: Principal | None) -> dict[str, str | None]:
    """The agent's AuditFacts fields by name (none for no principal)."""
    if principal is None:
        return {}
    return dict(zip(_WHO_FIELDS, _who_values(principal), strict=True))


def rest_event(
    *,
    interaction: str,
    status: int,
    principal: Principal | None,
    break_glass: BreakGlassClaim | None,
    trail: Trail,
    target: str | None,
    query: str | None,
    request_id: str | None,
    address: str | None,
    detail: str | None = None,
    encounter_window_days: int = 30,
) -> PreparedEvent:
    """The event of one FHIR interaction (granted or refused) and what it touched.

    ``target`` is the ``Type/id`` the URL names (also recorded when the request was refused);
    ``query`` the search parameters of a search or history; the trail adds the patients whose
    data was served or written (with the kinds of data), the versions written and the flags.
    Built for every read on the event loop, so it builds each object once, positionally.
    """
    moment = datetime.now(UTC)
    if break_glass is not None:
        purpose, reason = break_glass.purpose.value, break_glass.reason
    elif principal is not None and principal.purpose_of_use is not None:
        purpose, reason = principal.purpose_of_use.value, None
    else:
        purpose, reason = None, None
    if trail.written:  # the versions written, and what was served by id beside them
        versioned = {ref.rsplit("/_history/", 1)[0] for ref in trail.written}
        entities = (*trail.written, *(ref for ref in trail.read if ref not in versioned))
    else:
        entities = tuple(trail.read) or ((target,) if target else ())
    named = tuple(dict.fromkeys(entities))[:200] if len(entities) > 1 else entities
    ok = status < 400
    patient_types = trail.patient_types() if ok and trail.patients else ()
    alerts = (
        tuple(
            Alert("no-relationship", patient, "written without a care relationship")
            for patient in sorted(trail.outside_relationship)
        )
        if trail.outside_relationship
        else ()
    )
    party = None
    if (
        ok
        and principal is not None
        and principal.role in _REVIEWED_ROLES
        and break_glass is None
        and patient_types
    ):
        party = (principal.organisation, principal.fhir_user, encounter_window_days)
    who, name, role, org, client, token = _who_values(principal)
    event_id = new_event_id()
    action = interaction
    outcome = "0" if ok else outcome_for_status(status)
    consent = trail.consent_changed
    facts = AuditFacts(
        event_id,
        "",
        "rest",
        action,
        outcome,
        detail,
        who,
        name,
        role,
        org,
        client,
        token,
        purpose,
        reason,
        _SOURCE,
        (),
        patient_types,
        consent,
        entities,
        query[:MAX_QUERY] if query is not None else None,
        request_id,
        address,
    )
    return PreparedEvent(
        event_id,
        moment,
        "consent" if consent else "rest",
        action,
        outcome,
        b"",  # rendered from the facts when appended (register.audit.plan.content_of)
        tuple(p for p, _ in patient_types),  # sorted, one each
        role,
        who,
        org,
        client,
        purpose,
        bool(reason),
        request_id,
        named,
        alerts,
        party,
        facts,
    )


def break_glass_event(
    principal: Principal,
    claim: BreakGlassClaim,
    patient_id: str,
    grant: int,
    request_id: str | None,
) -> PreparedEvent:
    """The event of a break-glass start: who declared emergency access to whom, and why."""
    moment = datetime.now(UTC)
    facts = AuditFacts(
        event_id=new_event_id(),
        recorded="",
        kind="break-glass",
        action="break-glass",
        outcome="0",
        purpose=claim.purpose.value,
        break_glass_reason=claim.reason,
        patients=(patient_id,),
        entities=(f"break-glass-grant/{grant}",),
        request_id=request_id,
        **_who(principal),  # type: ignore[arg-type]
    )
    alert = Alert("break-glass", patient_id, claim.reason)
    return _prepare(facts, moment, kind="break-glass", entities=facts.entities, alerts=(alert,))


def token_event(
    *,
    principal: Principal | None,
    client_id: str | None,
    claimed: str | None = None,
    grant_type: str,
    error: str | None,
    request_id: str | None,
    address: str | None,
) -> PreparedEvent:
    """The event of a token request: who got a token (or who was refused one, and why)."""
    moment = datetime.now(UTC)
    who = _who(principal)
    if principal is None:
        if client_id:
            who["client_id"] = client_id[:200]
        if claimed:
            who["agent_name"] = claimed[:200]
    facts = AuditFacts(
        event_id=new_event_id(),
        recorded="",
        kind="token",
        action="token",
        outcome="0" if error is None else "4",
        outcome_detail=f"{grant_type}: {error}" if error else grant_type,
        purpose=principal.purpose_of_use.value if principal and principal.purpose_of_use else None,
        break_glass_reason=principal.break_glass_reason if principal else None,
        request_id=request_id,
        address=address,
        **who,  # type: ignore[arg-type]
    )
    return _prepare(facts, moment, kind="token")


def client_event(
    *, action: str, client_id: str, organisation: str | None, actor: str
) -> PreparedEvent:
    """The event of a client registration change (``register``, ``disable``)."""
    moment = datetime.now(UTC)
    facts = AuditFacts(
        event_id=new_event_id(),
        recorded="",
        kind="client-registration",
        action=action,
        outcome="0",
        outcome_detail=f"client {action}",
        agent_name=actor,
        agent_role=Role.OPERATOR.value,
        entities=(f"client/{client_id}",),
        agent_org=organisation,
    )
    return _prepare(facts, moment, kind="client-registration", entities=facts.entities)


def review_event(
    *,
    principal: Principal,
    reviewed: str,
    verdict: str,
    note: str,
    request_id: str | None,
    moment: datetime | None = None,
) -> PreparedEvent:
    """The event of a privacy officer's review of an audited access: the verdict and the note
    are in its hashed bytes, so the review-queue row can be checked against them."""
    moment = moment or datetime.now(UTC)
    facts = AuditFacts(
        event_id=new_event_id(),
        recorded="",
        kind="review",
        action="review",
        outcome="0",
        outcome_detail=verdict,
        entities=(f"AuditEvent/{reviewed}",),
        request_id=request_id,
        verdict=(verdict, note),
        **_who(principal),  # type: ignore[arg-type]
    )
    return _prepare(facts, moment, kind="review", entities=facts.entities)


MAX_LOAD_ENTITIES = 200
"""Versions a load's event names (a Synthea bundle writes thousands; each resource also carries
its own Provenance naming the operator, and the event counts every type)."""


def import_event(
    *, principal: Principal, organisation: str | None, trail: Trail, request_id: str | None
) -> PreparedEvent:
    """The event of one committed step of ``careregister load`` (a transaction or batch Bundle,
    or a chunk of entries): who loaded, on whose behalf, which patients' records gained which
    kinds of data, the versions written, and whether a Consent changed (the ``consent-change``
    subtype, as on a REST write). File names are left out (Synthea's hold names)."""
    moment = datetime.now(UTC)
    counts = Counter(reference.split("/", 1)[0] for reference in trail.written)
    loaded = ", ".join(f"{t} {n}" for t, n in sorted(counts.items()))
    written = tuple(trail.written)
    facts = AuditFacts(
        event_id=new_event_id(),
        recorded="",
        kind="import",
        action="load",
        outcome="0",
        outcome_detail=f"loaded {len(written)}: {loaded}" if written else "loaded nothing",
        patient_types=trail.patient_types(),
        consent_change=trail.consent_changed,
        entities=written[:MAX_LOAD_ENTITIES],
        request_id=request_id,
        **{**_who(principal), "agent_org": organisation},  # type: ignore[arg-type]
    )
    return _prepare(facts, moment, kind="import", entities=facts.entities)
