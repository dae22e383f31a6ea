"""The policy decision point, table by table: admission, what may be seen, writes, break-glass.

Pure functions over plain data: no database, no HTTP. What the SQL makes of a Sight is tested
against a reference model in tests/access/test_visibility_sql.py; the rules as experienced over
HTTP in tests/access/test_matrix.py.
"""

from __future__ import annotations

import pytest

from auth.policy import (
    DIRECTORY_TYPES,
    BreakGlassClaim,
    CareParty,
    FhirInteraction,
    PolicyConfig,
    Refusal,
    ScopeGrant,
    WriteFacts,
    admit,
    break_glass_claim,
    holder_key,
    may_write,
    should_record_grant,
    sight,
)
from auth.principal import OPERATOR, Principal, PurposeOfUse, Role
from auth.scopes import parse_scopes

Do = FhirInteraction
CONFIG = PolicyConfig(encounter_window_days=30, break_glass_minutes=240)


def who(role: str, scope: str, **extra: object) -> Principal:
    defaults: dict[str, object] = {
        "clinician": {"fhir_user": "Practitioner/p1", "organisation": "AAA01"},
        "system": {"organisation": "AAA01"},
        "patient": {"fhir_user": "Patient/pat1"},
        "reviewer": {},
        "admin": {},
        "privacy_officer": {},
    }[role]
    return Principal(
        role=Role(role),
        subject=f"{role}-1",
        client_id="app",
        scopes=parse_scopes(scope),
        **{**defaults, **extra},  # type: ignore[arg-type]
    )


CLINICIAN = who("clinician", "user/*.cruds")
SYSTEM = who("system", "system/*.cruds")
PATIENT = who("patient", "patient/*.cruds")
REVIEWER = who("reviewer", "user/*.rs")
ADMIN = who("admin", "user/*.rs")


# --- admission ---------------------------------------------------------------------------------

ADMISSION = [
    # principal, interaction, type, expected status (None: admitted)
    (None, Do.READ, "Observation", 401),
    (CLINICIAN, Do.READ, "Observation", None),
    (CLINICIAN, Do.DELETE, "Observation", None),
    (SYSTEM, Do.SEARCH, "Observation", None),
    (PATIENT, Do.READ, "Observation", None),
    (PATIENT, Do.CREATE, "Observation", None),
    (PATIENT, Do.CREATE, "Consent", None),
    (PATIENT, Do.UPDATE, "Consent", None),
    (PATIENT, Do.CREATE, "Condition", 403),
    (PATIENT, Do.UPDATE, "Observation", 403),
    (PATIENT, Do.DELETE, "Consent", 403),
    (REVIEWER, Do.READ, "Observation", 403),
    (REVIEWER, Do.SEARCH, "Patient", 403),
    (REVIEWER, Do.READ, "Organization", None),
    (REVIEWER, Do.CREATE, "Organization", 403),
    (ADMIN, Do.READ, "Patient", 403),
    (ADMIN, Do.SEARCH, "Practitioner", None),
    (ADMIN, Do.TRANSACTION, None, None),  # entries are admitted one by one
    (OPERATOR, Do.DELETE, "Patient", None),
    # scopes narrow roles
    (who("clinician", "user/Observation.rs"), Do.READ, "Observation", None),
    (who("clinician", "user/Observation.rs"), Do.READ, "Patient", 403),
    (who("clinician", "user/Observation.s"), Do.READ, "Observation", 403),
    (who("clinician", "user/Observation.r"), Do.SEARCH, "Observation", 403),
    (who("clinician", "user/Observation.read"), Do.SEARCH, "Observation", None),  # v1
    (who("clinician", "user/*.read"), Do.CREATE, "Observation", 403),
    (who("clinician", "user/*.write"), Do.UPDATE, "Observation", None),
    (who("clinician", "user/Observation.c"), Do.UPDATE, "Observation", 403),
    (who("clinician", "user/Observation.rs"), Do.HISTORY_INSTANCE, "Observation", None),
    (who("clinician", "user/Observation.r"), Do.HISTORY_TYPE, "Observation", 403),
    (who("clinician", "user/Observation.s"), Do.HISTORY_SYSTEM, None, None),
    (who("clinician", "user/Observation.r"), Do.HISTORY_SYSTEM, None, 403),
    # the scope context must fit the role
    (who("clinician", "system/*.cruds"), Do.READ, "Observation", 403),
    (who("system", "user/*.cruds"), Do.READ, "Observation", 403),
    (who("patient", "patient/*.rs"), Do.READ, "Observation", None),
    (who("patient", "user/*.rs"), Do.READ, "Observation", None),
    (who("clinician", "patient/*.rs"), Do.READ, "Observation", 403),
    (who("clinician", "openid fhirUser"), Do.TRANSACTION, None, 403),
    (CLINICIAN, Do.CAPABILITIES, None, None),
]


@pytest.mark.parametrize(("principal", "interaction", "resource_type", "status"), ADMISSION)
def test_admission(principal, interaction, resource_type, status):
    refusal = admit(principal, interaction, resource_type)
    assert (refusal.status if refusal else None) == status


def test_refusals_name_rules_not_resources():
    refusal = admit(REVIEWER, Do.READ, "Observation")
    assert isinstance(refusal, Refusal)
    assert "reviewer" in refusal.reason and "Observation" in refusal.reason


# --- what may be seen --------------------------------------------------------------------------


def test_clinician_sees_own_org_relationships_break_glass_and_directory():
    view = sight(CLINICIAN, Do.READ, "Observation", CONFIG)
    assert view.scope is None  # user/*.cruds does not narrow
    assert view.own_organisation == "AAA01"
    assert view.care_of == CareParty("AAA01", "Practitioner/p1", 30)
    assert view.break_glass_holder == holder_key(CLINICIAN) == "AAA01|clinician-1"
    assert view.own_patient is None
    assert view.shared_types == DIRECTORY_TYPES


def test_system_has_no_practitioner_and_no_break_glass():
    view = sight(SYSTEM, Do.SEARCH, "Observation", CONFIG)
    assert view.care_of == CareParty("AAA01", None, 30)
    assert view.break_glass_holder is None and view.own_organisation == "AAA01"


def test_patient_sees_only_their_own_record_and_directory():
    view = sight(PATIENT, Do.READ, "Observation", CONFIG)
    assert view.own_patient == "pat1"
    assert view.own_organisation is None and view.care_of is None
    assert view.break_glass_holder is None


@pytest.mark.parametrize("principal", [REVIEWER, ADMIN])
def test_reviewer_and_admin_see_no_patient_data(principal):
    view = sight(principal, Do.SEARCH, "Organization", CONFIG)
    assert view.own_organisation is None and view.care_of is None and view.own_patient is None
    assert view.shared_types == DIRECTORY_TYPES
    assert "Patient" not in view.shared_types and "Observation" not in view.shared_types


def test_nobody_sees_nothing_and_the_operator_everything():
    assert sight(None, Do.READ, "Patient", CONFIG).scope == ()
    assert sight(OPERATOR, Do.READ, "Patient", CONFIG).everything


SCOPE_GRANTS = [
    # scopes, interaction, type, expected Sight.scope
    ("user/*.rs", Do.SEARCH, "Observation", None),
    ("user/*.cruds", Do.HISTORY_SYSTEM, None, None),
    ("user/Observation.rs", Do.READ, "Observation", None),
    ("user/Observation.rs user/Patient.r", Do.SEARCH, "Observation",
     (ScopeGrant("Observation"), ScopeGrant("Patient"))),
    # a search: matches need s on the searched type, includes r on theirs
    ("user/Observation.s user/*.r", Do.SEARCH, "Observation",
     None),
    ("user/Observation.r user/Patient.s", Do.SEARCH, "Patient",
     (ScopeGrant("Patient"), ScopeGrant("Observation"))),
    ("user/*.s", Do.SEARCH, "Observation",
     (ScopeGrant("Observation"),)),
    ("user/Patient.s", Do.HISTORY_SYSTEM, None, (ScopeGrant("Patient"),)),
    # writes are not narrowed by read scopes (admission and may_write decide)
    ("user/Observation.c", Do.CREATE, "Observation", None),
]  # fmt: skip


@pytest.mark.parametrize(("scope", "interaction", "resource_type", "expected"), SCOPE_GRANTS)
def test_scope_grants(scope, interaction, resource_type, expected):
    view = sight(who("clinician", scope), interaction, resource_type, CONFIG)
    assert view.scope == expected


def test_constrained_scopes_carry_their_filters():
    principal = who("patient", "patient/Observation.rs?category=laboratory")
    view = sight(principal, Do.READ, "Observation", CONFIG)
    assert view.scope is not None and len(view.scope) == 1
    (grant,) = view.scope
    assert grant.resource_type == "Observation"
    assert [c.name for group in grant.filters for c in group] == ["category"]


def test_read_of_a_type_without_read_scope_sees_nothing():
    view = sight(who("clinician", "user/Patient.rs"), Do.READ, "Observation", CONFIG)
    assert view.scope == ()


# --- writes ------------------------------------------------------------------------------------


def facts(**kw: object) -> WriteFacts:
    base: dict[str, object] = {"interaction": Do.CREATE, "resource_type": "Observation"}
    return WriteFacts(**{**base, **kw})  # type: ignore[arg-type]


WRITES = [
    # principal, facts, expected status (None: allowed)
    (CLINICIAN, facts(patient_id="x"), 403),
    (CLINICIAN, facts(patient_id="x", patient_reachable=True), None),
    (CLINICIAN, facts(patient_id="x", patient_registered_by_writer=True), None),
    (CLINICIAN, facts(patient_id=None), None),  # belongs to no patient
    (CLINICIAN, facts(resource_type="Patient", patient_id="x"), None),  # registering a patient
    (CLINICIAN, facts(interaction=Do.UPDATE, resource_type="Patient", patient_id="x",
                      previous_patient_id="x"), 403),
    # an Encounter at one's own organisation opens the record; elsewhere it does not
    (SYSTEM, facts(resource_type="Encounter", patient_id="x", service_organisation="AAA01"), None),
    (SYSTEM, facts(resource_type="Encounter", patient_id="x", service_organisation="BBB02"), 403),
    # correcting what one's organisation recorded
    (SYSTEM, facts(interaction=Do.UPDATE, patient_id="x", previous_patient_id="x",
                   previous_author_org="AAA01"), None),
    (SYSTEM, facts(interaction=Do.UPDATE, patient_id="y", previous_patient_id="x",
                   previous_author_org="AAA01"), 403),
    # deleting: only the recording organisation
    (SYSTEM, facts(interaction=Do.DELETE, patient_id="x", previous_author_org="AAA01"), None),
    (SYSTEM, facts(interaction=Do.DELETE, patient_id="x", previous_author_org="BBB02",
                   patient_reachable=True), 403),
    (SYSTEM, facts(interaction=Do.DELETE, patient_id=None, previous_author_org=None), 403),
    # patients: their own record, reports and consent only
    (PATIENT, facts(patient_id="pat1"), None),
    (PATIENT, facts(patient_id="pat2"), 403),
    (PATIENT, facts(resource_type="Consent", patient_id="pat1"), None),
    (PATIENT, facts(interaction=Do.UPDATE, resource_type="Consent", patient_id="pat1",
                    previous_patient_id="pat1"), None),
    (PATIENT, facts(interaction=Do.UPDATE, resource_type="Consent", patient_id="pat1",
                    previous_patient_id="pat2"), 403),
    (PATIENT, facts(resource_type="Condition", patient_id="pat1"), 403),
    (REVIEWER, facts(resource_type="Organization"), 403),
    (ADMIN, facts(resource_type="Organization"), 403),
    (OPERATOR, facts(patient_id="anyone"), None),
    (None, facts(), 401),
]  # fmt: skip


@pytest.mark.parametrize(("principal", "write", "status"), WRITES)
def test_writes(principal, write, status):
    refusal = may_write(principal, write)
    assert (refusal.status if refusal else None) == status


def test_relationship_refusals_are_marked_so_transactions_can_recheck_them():
    refusal = may_write(CLINICIAN, facts(patient_id="x"))
    assert refusal is not None and refusal.for_relationship
    other = may_write(PATIENT, facts(patient_id="pat2"))
    assert other is not None and not other.for_relationship


def test_scope_constraints_apply_to_written_content():
    principal = who("clinician", "user/Observation.c?category=vital-signs user/Patient.cruds")
    vital = {"category": [(None, "vital-signs")]}
    lab = {"category": [(None, "laboratory")]}
    assert may_write(principal, facts(patient_id=None, token_values=vital)) is None
    refused = may_write(principal, facts(patient_id=None, token_values=lab))
    assert refused is not None and refused.status == 403
    assert may_write(principal, facts(patient_id=None, token_values=None)) is not None


# --- break-glass -------------------------------------------------------------------------------


def test_a_clinician_declares_break_glass_with_a_reason():
    claim = break_glass_claim(CLINICIAN, "  Unconscious in ED  ", CONFIG)
    assert claim == BreakGlassClaim("Unconscious in ED", PurposeOfUse.BTG, 240, "AAA01|clinician-1")


def test_a_token_with_purpose_btg_is_a_claim():
    principal = who(
        "clinician",
        "user/*.rs",
        purpose_of_use=PurposeOfUse.ETREAT,
        break_glass_reason="Cardiac arrest",
    )
    claim = break_glass_claim(principal, None, CONFIG)
    assert isinstance(claim, BreakGlassClaim) and claim.purpose is PurposeOfUse.ETREAT


@pytest.mark.parametrize("principal", [SYSTEM, PATIENT, REVIEWER, ADMIN])
def test_only_clinicians_break_glass(principal):
    claim = break_glass_claim(principal, "emergency", CONFIG)
    assert isinstance(claim, Refusal) and claim.status == 403


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501, "line\nbreak", "tab\there"])
def test_a_reason_is_typed_printable_text(reason):
    claim = break_glass_claim(CLINICIAN, reason, CONFIG)
    assert isinstance(claim, Refusal) and claim.status == 400


def test_no_claim_without_header_or_token_reason():
    assert break_glass_claim(CLINICIAN, None, CONFIG) is None
    assert break_glass_claim(None, "x", CONFIG) is None


CLAIM = BreakGlassClaim("r", PurposeOfUse.BTG, 240, "h")


@pytest.mark.parametrize(
    ("claim", "patient", "related", "running", "expected"),
    [
        (CLAIM, "p", False, False, True),
        (CLAIM, "p", True, False, False),  # no override needed
        (CLAIM, "p", False, True, False),  # already running: not extended
        (CLAIM, None, False, False, False),  # no patient in question
        (None, "p", False, False, False),
    ],
)
def test_when_a_grant_is_recorded(claim, patient, related, running, expected):
    assert (
        should_record_grant(claim, patient, has_relationship=related, has_active_grant=running)
        is expected
    )
