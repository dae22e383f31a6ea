"""Every event the register builds says, in its hashed bytes, exactly what is stored beside them.

``audit verify`` trusts a column, a patient row, an entity row or a review-queue entry only if
the event's bytes say the same (``expected_index``). Here, on random events of every kind the
register records (REST interactions granted and refused, break-glass starts, tokens, client
registrations, reviews, loads) with random review alerts, what the bytes say is compared with
what the register stores for the event (hypothesis). A builder that indexed an event by
something its bytes do not say would make ``verify`` report an intact log as tampered, or hide
tampering.
"""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from auth.policy import BreakGlassClaim
from auth.principal import OPERATOR, Principal, PurposeOfUse, Role
from auth.scopes import parse_scopes
from fhir_adapters.validation import validate_resource
from register.audit.chain import expected_index
from register.audit.events import (
    break_glass_event,
    client_event,
    import_event,
    rest_event,
    review_event,
    token_event,
)
from register.audit.plan import Alert, PreparedEvent, content_of, review_entry, with_alerts
from tests.audit.test_rest_event import principals, trails

COLUMNS = (
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
)
TEXT = st.sampled_from([None, "", "unconscious on arrival", "x" * 300, "ünïcode; semi"])
ALERTS = st.lists(
    st.builds(
        Alert,
        st.sampled_from(["break-glass", "no-relationship"]),
        st.sampled_from([None, "p", "q"]),
        TEXT,
    ),
    max_size=3,
)
CLAIMS = st.builds(
    BreakGlassClaim,
    reason=st.sampled_from(["unconscious on arrival", "r"]),
    purpose=st.sampled_from([PurposeOfUse.ETREAT, PurposeOfUse.BTG]),
    minutes=st.just(60),
    holder=st.just("dr-a"),
)
CLINICIAN = Principal(
    role=Role.CLINICIAN,
    subject="dr-a",
    client_id="ehr",
    scopes=parse_scopes("user/*.rs"),
    fhir_user="Practitioner/h1",
    organisation="HOS03",
)


@st.composite
def built_events(draw: st.DrawFn) -> PreparedEvent:
    """An event as one of the register's builders makes it."""
    which = draw(st.sampled_from(["rest", "break-glass", "token", "client", "review", "import"]))
    principal = draw(principals())
    if which == "rest":
        return rest_event(
            interaction=draw(
                st.sampled_from(["read", "search-type", "create", "transaction", "operation"])
            ),
            status=draw(st.sampled_from([200, 201, 400, 403, 404, 500])),
            principal=principal,
            break_glass=draw(st.none() | CLAIMS),
            trail=draw(trails()),
            target=draw(st.sampled_from([None, "Patient/p", "Observation/o1"])),
            query=draw(st.sampled_from([None, "", "code=x&subject=Patient/p"])),
            request_id=draw(st.sampled_from([None, "r1"])),
            address="127.0.0.1",
            detail=draw(TEXT),
        )
    if which == "break-glass":
        who = principal or CLINICIAN
        return break_glass_event(who, draw(CLAIMS), draw(st.sampled_from(["p", "q"])), 7, None)
    if which == "token":
        return token_event(
            principal=principal,
            client_id=draw(st.sampled_from([None, "c1"])),
            claimed=draw(st.sampled_from([None, "someone"])),
            grant_type="client_credentials",
            error=draw(st.sampled_from([None, "invalid_client"])),
            request_id=None,
            address="127.0.0.1",
        )
    if which == "client":
        return client_event(
            action=draw(st.sampled_from(["register", "disable"])),
            client_id="c9",
            organisation=draw(st.sampled_from([None, "GP01"])),
            actor="ops",
        )
    if which == "import":
        return import_event(
            principal=principal or OPERATOR,
            organisation=draw(st.sampled_from([None, "GP01"])),
            trail=draw(trails()),
            request_id=draw(st.sampled_from([None, "load-1"])),
        )
    return review_event(
        principal=principal or CLINICIAN,
        reviewed="e1",
        verdict=draw(st.sampled_from(["appropriate", "inappropriate"])),
        note=draw(st.sampled_from(["checked with the ward", "ünïcode"])),
        request_id="r2",
    )


@settings(max_examples=300, deadline=None)
@given(event=built_events(), extra=ALERTS)
def test_the_bytes_say_what_is_indexed(event: PreparedEvent, extra: list[Alert]) -> None:
    alerts = [*event.alerts, *extra]
    with_alerts(event, alerts)
    content = content_of(event)
    assert validate_resource(orjson.loads(content)) == "AuditEvent"
    expected = expected_index(content)
    stored = {name: getattr(event, name) for name in COLUMNS}
    assert expected.columns == stored
    assert expected.patients == set(event.patients)
    assert expected.entities == {
        ref[:200]
        for ref in event.entities
        if not (ref.startswith("Patient/") and ref[8:] in event.patients)
    }
    if alerts:
        as_tuples = [(a.category, a.patient_id, a.reason) for a in alerts]
        assert expected.review == review_entry(as_tuples)
    else:
        assert expected.review is None
