"""Principals from verified claims: roles, fhirUser, organisation, purpose, break-glass."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from auth.errors import TokenError, TokenErrorReason
from auth.principal import OPERATOR, TOKEN_ROLES, Principal, PurposeOfUse, Role, claims_for
from auth.scopes import Interaction, ScopeContext, permits


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sub": "user-1",
        "client_id": "care-portal",
        "scope": "user/*.rs",
        "role": "clinician",
        "fhirUser": "Practitioner/p-1",
        "org": "A81001",
        "jti": "t-1",
        "exp": 1_750_000_300,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def refused(**overrides: Any) -> TokenErrorReason:
    with pytest.raises(TokenError) as caught:
        Principal.from_claims(claims(**overrides))
    return caught.value.reason


def test_clinician_from_claims() -> None:
    p = Principal.from_claims(claims(purpose_of_use="TREAT"))
    assert p.role is Role.CLINICIAN
    assert p.subject == "user-1" and p.client_id == "care-portal"
    assert p.fhir_user == "Practitioner/p-1" and p.fhir_user_type == "Practitioner"
    assert p.organisation == "A81001"
    assert p.purpose_of_use is PurposeOfUse.TREAT
    assert p.token_id == "t-1" and p.expires_at == 1_750_000_300
    assert p.patient_id is None and not p.is_break_glass and not p.is_operator
    assert permits(p.scopes, ScopeContext.USER, "Observation", Interaction.READ)


def test_patient_principal_knows_its_patient() -> None:
    p = Principal.from_claims(
        claims(role="patient", fhirUser="Patient/pat-42", org=None, scope="patient/*.rs")
    )
    assert p.role is Role.PATIENT and p.patient_id == "pat-42"


def test_principal_is_frozen_and_hashable() -> None:
    p = Principal.from_claims(claims())
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.role = Role.ADMIN  # type: ignore[misc]
    assert hash(p) == hash(Principal.from_claims(claims()))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"role": None}, TokenErrorReason.MISSING_CLAIM),
        ({"role": "superuser"}, TokenErrorReason.INVALID_CLAIM),
        ({"role": "operator"}, TokenErrorReason.INVALID_CLAIM),  # never from a token
        ({"role": ["clinician"]}, TokenErrorReason.INVALID_CLAIM),
        ({"sub": None}, TokenErrorReason.MISSING_CLAIM),
        ({"client_id": None}, TokenErrorReason.MISSING_CLAIM),
        ({"scope": None}, TokenErrorReason.MISSING_CLAIM),
        ({"scope": ["user/*.rs"]}, TokenErrorReason.INVALID_CLAIM),
        ({"fhirUser": None}, TokenErrorReason.MISSING_CLAIM),  # clinicians need one
        ({"fhirUser": "Patient/p-1"}, TokenErrorReason.INVALID_CLAIM),  # wrong type for role
        ({"fhirUser": "https://other.example/Practitioner/p-1"}, TokenErrorReason.INVALID_CLAIM),
        ({"fhirUser": "Practitioner/"}, TokenErrorReason.INVALID_CLAIM),
        ({"org": None}, TokenErrorReason.MISSING_CLAIM),  # clinicians act for an organisation
        ({"org": "a81001"}, TokenErrorReason.INVALID_CLAIM),
        ({"org": "A8 1001"}, TokenErrorReason.INVALID_CLAIM),
        ({"purpose_of_use": "MARKETING"}, TokenErrorReason.INVALID_CLAIM),
        ({"role": "patient", "fhirUser": "Practitioner/p-1"}, TokenErrorReason.INVALID_CLAIM),
        ({"role": "patient", "fhirUser": None}, TokenErrorReason.MISSING_CLAIM),
        ({"role": "system", "org": None, "fhirUser": None}, TokenErrorReason.MISSING_CLAIM),
    ],
)
def test_claims_that_do_not_fit_are_refused(overrides, expected) -> None:
    assert refused(**overrides) is expected


def test_break_glass_needs_a_reason_and_an_emergency_purpose() -> None:
    p = Principal.from_claims(
        claims(purpose_of_use="BTG", break_glass_reason="Unconscious in A&E, no GP record")
    )
    assert p.is_break_glass and p.purpose_of_use is PurposeOfUse.BTG
    assert refused(purpose_of_use="BTG") is TokenErrorReason.MISSING_CLAIM
    assert refused(purpose_of_use="TREAT", break_glass_reason="x") is (
        TokenErrorReason.INVALID_CLAIM
    )
    assert refused(break_glass_reason="x") is TokenErrorReason.INVALID_CLAIM
    assert refused(purpose_of_use="ETREAT", break_glass_reason="   ") is (
        TokenErrorReason.INVALID_CLAIM
    )
    assert refused(purpose_of_use="BTG", break_glass_reason="x" * 501) is (
        TokenErrorReason.INVALID_CLAIM
    )


def test_system_principal_without_a_user() -> None:
    p = Principal.from_claims(claims(role="system", fhirUser=None, scope="system/Observation.c"))
    assert p.role is Role.SYSTEM and p.fhir_user is None
    assert permits(p.scopes, ScopeContext.SYSTEM, "Observation", Interaction.CREATE)


def test_operator_is_distinct_and_cannot_come_from_a_token() -> None:
    assert OPERATOR.role is Role.OPERATOR and OPERATOR.is_operator
    assert Role.OPERATOR not in TOKEN_ROLES
    assert {r.value for r in TOKEN_ROLES} == {
        "clinician",
        "system",
        "patient",
        "reviewer",
        "admin",
        "privacy_officer",
    }
    with pytest.raises(ValueError):
        claims_for(role=Role.OPERATOR, subject="x", client_id="c", scope="system/*.rs")


def test_claims_for_round_trips_through_from_claims() -> None:
    made = claims_for(
        role=Role.PRIVACY_OFFICER,
        subject="po-1",
        client_id="console",
        scope="user/AuditEvent.rs",
        fhir_user="Practitioner/po",
        purpose_of_use=PurposeOfUse.HOPERAT,
    )
    p = Principal.from_claims(made)
    assert (p.role, p.fhir_user, p.purpose_of_use) == (
        Role.PRIVACY_OFFICER,
        "Practitioner/po",
        PurposeOfUse.HOPERAT,
    )
    assert "org" not in made
