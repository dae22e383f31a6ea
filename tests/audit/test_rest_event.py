"""The REST event built on the event loop for every request equals, field for field, the event
described by the plain reference below (AuditFacts by name, then the query columns derived from
the facts), on random principals, trails, statuses and break-glass claims (hypothesis)."""

from __future__ import annotations

from dataclasses import asdict, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from auth.policy import BreakGlassClaim
from auth.principal import Principal, PurposeOfUse, Role
from auth.scopes import parse_scopes
from fhir_adapters.audit_event import AuditFacts, outcome_for_status
from register.audit.chain import Alert, PreparedEvent
from register.audit.events import rest_event
from register.audit.trail import Trail

IDS = st.sampled_from(["p", "q", "r1", "z-9"])
TYPES = st.sampled_from(["Patient", "Observation", "Condition", "Consent"])


@st.composite
def principals(draw: st.DrawFn) -> Principal | None:
    if draw(st.booleans()):
        return None
    role = draw(st.sampled_from(list(Role)))
    return Principal(
        role=role,
        subject=draw(st.sampled_from(["dr-a", "sys-b"])),
        client_id=draw(st.sampled_from(["c1", "c2"])),
        scopes=parse_scopes("system/*.cruds"),
        fhir_user=draw(st.sampled_from([None, "Practitioner/h1", "Patient/p"])),
        organisation=draw(st.sampled_from([None, "HOS03", "GP01"])),
        purpose_of_use=draw(st.sampled_from([None, *PurposeOfUse])),
        token_id=draw(st.sampled_from([None, "t1"])),
    )


@st.composite
def trails(draw: st.DrawFn) -> Trail:
    trail = Trail()
    for rtype, pid in draw(st.lists(st.tuples(TYPES, IDS), max_size=5)):
        trail.served(rtype, pid)
    trail.read = [f"{t}/{i}" for t, i in draw(st.lists(st.tuples(TYPES, IDS), max_size=3))]
    trail.written = [
        f"{t}/{i}/_history/{n}"
        for t, i, n in draw(st.lists(st.tuples(TYPES, IDS, st.integers(1, 3)), max_size=3))
    ]
    trail.consent_changed = draw(st.booleans())
    trail.outside_relationship = set(draw(st.lists(IDS, max_size=2)))
    return trail


def reference(principal, claim, trail, status, target, query, detail, window) -> PreparedEvent:  # type: ignore[no-untyped-def]
    """What a REST event says, written plainly."""
    if claim is not None:
        purpose, reason = claim.purpose.value, claim.reason
    elif principal is not None and principal.purpose_of_use is not None:
        purpose, reason = principal.purpose_of_use.value, None
    else:
        purpose, reason = None, None
    written_resources = {"/".join(ref.split("/")[:2]) for ref in trail.written}
    entities = (
        tuple(trail.written) + tuple(r for r in trail.read if r not in written_resources)
        if trail.written
        else tuple(trail.read) or ((target,) if target else ())
    )
    ok = status < 400
    patient_types = (
        tuple((p, tuple(sorted(t))) for p, t in sorted(trail.patients.items())) if ok else ()
    )
    who = {}
    if principal is not None:
        who = {
            "agent_who": principal.fhir_user,
            "agent_name": principal.subject,
            "agent_role": principal.role.value,
            "agent_org": principal.organisation,
            "client_id": principal.client_id,
            "token_id": principal.token_id,
        }
    facts = AuditFacts(
        event_id="",
        recorded="",
        kind="rest",
        action="read",
        outcome=outcome_for_status(status),
        outcome_detail=detail,
        purpose=purpose,
        break_glass_reason=reason,
        patient_types=patient_types,
        entities=entities,
        query=query,
        request_id="req-1",
        address="10.0.0.1",
        consent_change=trail.consent_changed,
        **who,
    )
    reviewed = (
        ok
        and principal is not None
        and principal.role is Role.CLINICIAN
        and claim is None
        and patient_types
    )
    return PreparedEvent(
        event_id="",
        recorded=None,  # type: ignore[arg-type]
        kind="consent" if trail.consent_changed else "rest",
        action="read",
        outcome=facts.outcome,
        content=b"",
        patients=tuple(p for p, _ in patient_types),
        agent_role=facts.agent_role,
        agent_who=facts.agent_who,
        agent_org=facts.agent_org,
        client_id=facts.client_id,
        purpose=purpose,
        break_glass=reason is not None,
        request_id="req-1",
        entities=tuple(dict.fromkeys(entities))[:200],
        alerts=tuple(
            Alert("no-relationship", p, "written without a care relationship")
            for p in sorted(trail.outside_relationship)
        ),
        party=(principal.organisation, principal.fhir_user, window) if reviewed else None,
        facts=facts,
    )


@settings(max_examples=300, deadline=None)
@given(
    principal=principals(),
    glass=st.booleans(),
    trail=trails(),
    status=st.sampled_from([200, 201, 304, 403, 404, 422, 500, 503]),
    target=st.sampled_from([None, "Patient/p", "Observation/o1"]),
    query=st.sampled_from([None, "Observation?code=1"]),
    detail=st.sampled_from([None, "why"]),
    window=st.integers(1, 90),
)
def test_rest_event_matches_the_reference(
    principal, glass, trail, status, target, query, detail, window
):  # type: ignore[no-untyped-def]
    claim = (
        BreakGlassClaim("unconscious, no history", PurposeOfUse.BTG, 60, "Practitioner/h1")
        if glass
        else None
    )
    built = rest_event(
        interaction="read",
        status=status,
        principal=principal,
        break_glass=claim,
        trail=trail,
        target=target,
        query=query,
        request_id="req-1",
        address="10.0.0.1",
        detail=detail,
        encounter_window_days=window,
    )
    expected = reference(principal, claim, trail, status, target, query, detail, window)
    assert built.event_id and built.facts is not None and built.facts.event_id == built.event_id
    assert built.recorded.tzinfo is not None
    got = replace(built, event_id="", recorded=None, facts=replace(built.facts, event_id=""))
    assert asdict(got.facts) == asdict(expected.facts)  # type: ignore[arg-type]
    assert got == expected
