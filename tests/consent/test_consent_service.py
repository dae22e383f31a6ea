"""register/consent_service.py: pages record a patient's sharing choices as a Consent, with the
requester's rights, and the next request sees them."""

from __future__ import annotations

from typing import Any

import pytest

from auth.policy import FhirInteraction
from register.access_request import RequestAccess
from register.consent_service import SharingChoice, record_sharing_choice, sharing_choice
from register.context import RequestContext
from register.errors import FhirError
from tests.access.world import World
from tests.conftest import TEST_BASE


def _context(app: Any, token: str) -> RequestContext:
    """The context the FHIR gate would give a write by the holder of ``token``."""
    service = app.state.access
    principal = service.endpoints(TEST_BASE).tokens.principal(token)
    access = RequestAccess.build(principal, service.config, FhirInteraction.UPDATE, "Consent")
    return RequestContext(
        request_id="page",
        base_url=TEST_BASE,
        visibility=access.visibility,
        author_org=access.author_org,
        principal=principal,
        access=access,
    )


@pytest.fixture
def world(client, token_for) -> World:  # type: ignore[no-untyped-def]
    built = World(client, token_for).build()
    built.relate("active")
    return built


def test_a_patient_records_and_revises_their_choice(app, world: World) -> None:  # type: ignore[no-untyped-def]
    db = app.state.db
    ctx = _context(app, world.tokens["patient_p"])
    hosp = world.as_("hosp_clinician")
    with db.write() as conn:
        assert sharing_choice(conn, ctx, "p") is None
        first = record_sharing_choice(
            conn, ctx, "p", SharingChoice(withhold_types=frozenset({"Observation"}))
        )
    assert first.created
    assert world.http.get("/fhir/Observation/obs-p", headers=hosp).status_code == 404
    assert world.http.get("/fhir/Condition/cond-p", headers=hosp).status_code == 200
    with db.write() as conn:
        second = record_sharing_choice(conn, ctx, "p", SharingChoice(share=False))
        assert sharing_choice(conn, ctx, "p") == (
            first.version.resource_id,
            SharingChoice(share=False),
        )
    assert second.version.resource_id == first.version.resource_id  # revised, not a second one
    assert world.http.get("/fhir/Condition/cond-p", headers=hosp).status_code == 404
    with db.write() as conn:
        choice = SharingChoice(
            withhold_from=frozenset({"OTH04"}), share_sensitive=frozenset({"hiv"})
        )
        record_sharing_choice(conn, ctx, "p", choice)
        assert sharing_choice(conn, ctx, "p") == (first.version.resource_id, choice)
    assert world.http.get("/fhir/Condition/cond-p", headers=hosp).status_code == 200


def test_a_clinician_must_say_who_gave_it(app, world: World) -> None:  # type: ignore[no-untyped-def]
    db = app.state.db
    ctx = _context(app, world.tokens["hosp_clinician"])
    with pytest.raises(FhirError) as refused, db.write() as conn:
        record_sharing_choice(conn, ctx, "p", SharingChoice(share=False))
    assert refused.value.status == 422
    with db.write() as conn:
        record_sharing_choice(
            conn,
            ctx,
            "p",
            SharingChoice(share=False),
            given_by="Patient/p",
            verified_with="Patient/p",
        )
    assert (
        world.http.get("/fhir/Observation/obs-p", headers=world.as_("hosp_clinician")).status_code
        == 404
    )
    with pytest.raises(FhirError) as unknown, db.write() as conn:
        record_sharing_choice(conn, ctx, "p", SharingChoice(share_sensitive=frozenset({"nope"})))
    assert unknown.value.status == 400
