"""What an improvement reviewer is served of the audit log names nobody.

On random events (hypothesis) whose every identity-bearing fact carries a marker (patients,
resource ids, queries, people, free text, addresses, request and token ids, review alerts and
notes), the de-identified AuditEvent is a valid R4 AuditEvent with no trace of the marker, and
keeps what improvement review needs (what was done, when, by which role, organisation and
client, to which kinds of resource, how it ended).
"""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_adapters.audit_event import ACTIONS, SPECIAL, AuditFacts, audit_event, deidentified
from fhir_adapters.validation import validate_resource

MARK = "ZQX"
"""In every identity-bearing value; must not appear in what a reviewer is served."""
marked = st.text(alphabet="abc0123456789-", min_size=1, max_size=8).map(lambda t: f"{MARK}{t}")
TYPES = st.sampled_from(["Patient", "Observation", "Condition", "Encounter"])


@st.composite
def facts(draw: st.DrawFn) -> AuditFacts:
    kind = draw(st.sampled_from(["rest", *SPECIAL]))
    patients = tuple(draw(st.lists(marked, max_size=3, unique=True)))
    return AuditFacts(
        event_id="e1",
        recorded="2026-12-03T10:00:00.000000Z",
        kind=kind,
        action=draw(st.sampled_from(list(ACTIONS))) if kind == "rest" else kind,
        outcome=draw(st.sampled_from(["0", "4", "8"])),
        outcome_detail=draw(st.none() | marked),
        agent_who=draw(st.none() | marked.map(lambda t: f"Practitioner/{t}")),
        agent_name=draw(st.none() | marked),
        agent_role=draw(st.sampled_from([None, "clinician", "patient", "system"])),
        agent_org=draw(st.sampled_from([None, "HOS03"])),
        client_id=draw(st.sampled_from([None, "hospital-ehr"])),
        token_id=draw(st.none() | marked),
        purpose=draw(st.sampled_from([None, "TREAT", "BTG"])),
        break_glass_reason=draw(st.none() | marked),
        patient_types=tuple((p, ("Observation",)) for p in patients),
        consent_change=draw(st.booleans()),
        entities=tuple(f"{t}/{i}" for t, i in draw(st.lists(st.tuples(TYPES, marked), max_size=4))),
        query=draw(st.none() | marked.map(lambda t: f"identifier=nhs|{t}")),
        request_id=draw(st.none() | marked),
        address=draw(st.none() | marked),
        alerts=tuple(("no-relationship", p, draw(st.none() | marked)) for p in patients[:1]),
        verdict=draw(st.none() | marked.map(lambda t: ("appropriate", t))),
    )


@settings(max_examples=300, deadline=None)
@given(event_facts=facts())
def test_a_reviewer_is_served_no_identity(event_facts: AuditFacts) -> None:
    stored = audit_event(event_facts)
    served = deidentified(stored)
    text = orjson.dumps(served).decode()
    assert MARK not in text
    assert validate_resource(orjson.loads(text)) == "AuditEvent"
    assert served["meta"]["security"][0]["code"] == "REDACTED"
    # what improvement review needs is kept
    for key in ("type", "subtype", "action", "recorded", "outcome", "source"):
        assert served[key] == stored[key]
    requestor = served["agent"][0]
    assert requestor.get("role") == stored["agent"][0].get("role")
    identified = {
        a["who"]["identifier"]["value"] for a in served["agent"] if "identifier" in a["who"]
    }
    # the client is named unless a refused token request's caller typed it
    typed = event_facts.kind == "token" and event_facts.outcome != "0"
    client = None if typed else event_facts.client_id
    assert identified == {event_facts.agent_org, client} - {None}
    kinds = {e["what"]["type"] for e in served.get("entity", [])}
    named = {r.split("/", 1)[0] for r in event_facts.entities}
    assert kinds == named | ({"Patient"} if event_facts.patient_types else set())
