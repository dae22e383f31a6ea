"""SMART scopes by example: parsing, v1/v2 equivalence, checks, constraints and narrowing."""

from __future__ import annotations

import pytest

from auth.scopes import (
    Constraint,
    Interaction,
    ScopeContext,
    ScopeError,
    access,
    narrow,
    parse_scope,
    parse_scopes,
    permits,
    simplify,
)

C, R, U, D, S = (
    Interaction.CREATE,
    Interaction.READ,
    Interaction.UPDATE,
    Interaction.DELETE,
    Interaction.SEARCH,
)
PATIENT, USER, SYSTEM = ScopeContext.PATIENT, ScopeContext.USER, ScopeContext.SYSTEM
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
LAB = f"category={OBS_CATEGORY}|laboratory"


@pytest.mark.parametrize(
    ("text", "context", "resource_type", "interactions"),
    [
        ("patient/Observation.rs", PATIENT, "Observation", {R, S}),
        ("user/*.cruds", USER, "*", {C, R, U, D, S}),
        ("system/Patient.r", SYSTEM, "Patient", {R}),
        ("user/Observation.cu", USER, "Observation", {C, U}),
        ("patient/*.read", PATIENT, "*", {R, S}),
        ("user/Observation.write", USER, "Observation", {C, U, D}),
        ("system/*.*", SYSTEM, "*", {C, R, U, D, S}),
    ],
)
def test_parse_v1_and_v2(text, context, resource_type, interactions) -> None:
    scope = parse_scope(text)
    assert scope is not None
    assert (scope.context, scope.resource_type, set(scope.interactions)) == (
        context,
        resource_type,
        interactions,
    )
    assert str(scope) == text  # written back the way it came


def test_v1_and_v2_spellings_are_equal() -> None:
    assert parse_scope("patient/*.read") == parse_scope("patient/*.rs")
    assert parse_scope("user/Observation.write") == parse_scope("user/Observation.cud")
    assert parse_scope("system/*.*") == parse_scope("system/*.cruds")


@pytest.mark.parametrize(
    "text",
    [
        "openid",
        "fhirUser",
        "launch",
        "launch/patient",
        "offline_access",
        "online_access",
        "__custom.scope",
        "https://ehr.example.org/scopes/photo.manage",
    ],
)
def test_non_clinical_scopes_are_not_resource_scopes(text: str) -> None:
    assert parse_scope(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "patient/Observation.dus",  # out of order
        "patient/Observation.rr",
        "patient/Observation.",
        "patient/Observation.x",
        "patient/Observation.Read",
        "patient/observation.rs",  # resource types start upper case
        "patient/Observation",
        "patient/.rs",
        "doctor/Observation.rs",  # not a context -> not clinical at all (see below)
        "patient/Observation.read?category=x",  # v1 takes no constraints
        "patient/Observation.rs?",
        "patient/Observation.rs?category",
        "patient/Observation.rs?category=",
        "patient/Observation.rs?=x",
        "patient/Observation.rs?category=a,,b",
    ],
)
def test_malformed_clinical_scopes(text: str) -> None:
    if text.startswith("doctor/"):
        assert parse_scope(text) is None
        return
    with pytest.raises(ScopeError):
        parse_scope(text)


def test_parse_scopes_sorts_into_resource_other_and_invalid() -> None:
    scopes = parse_scopes("patient/*.rs openid patient/Observation.dus fhirUser patient/*.read")
    assert [str(s) for s in scopes.resource] == ["patient/*.rs"]  # duplicates folded
    assert scopes.other == {"openid", "fhirUser"}
    assert scopes.invalid == ("patient/Observation.dus",)
    assert str(scopes) == "patient/*.rs fhirUser openid"


def test_query_constraints_are_parsed() -> None:
    scope = parse_scope(f"patient/Observation.rs?{LAB}")
    assert scope is not None
    assert scope.constraints == (Constraint("category", (f"{OBS_CATEGORY}|laboratory",)),)
    assert str(scope) == f"patient/Observation.rs?{LAB}"


def test_percent_encoding_and_alternatives() -> None:
    scope = parse_scope(
        "user/Observation.rs?code=http%3A%2F%2Floinc.org%7C4548-4,"
        "http://loinc.org|59261-8&status=final"
    )
    assert scope is not None
    assert scope.constraints == (
        Constraint("code", ("http://loinc.org|4548-4", "http://loinc.org|59261-8")),
        Constraint("status", ("final",)),
    )
    assert parse_scope(str(scope)) == scope


# -- checks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scopes", "interaction", "expected"),
    [
        ("patient/*.read", "read", True),
        ("patient/*.read", "search", True),
        ("patient/*.read", "create", False),
        ("patient/*.write", "create", True),
        ("patient/*.write", "update", True),
        ("patient/*.write", "delete", True),
        ("patient/*.write", "read", False),
        ("patient/Observation.r", "search", False),
        ("patient/Observation.s", "read", False),
        ("patient/Condition.rs", "read", False),
        ("patient/Observation.r patient/Observation.s", "search", True),
    ],
)
def test_permits(scopes: str, interaction: str, expected: bool) -> None:
    assert permits(parse_scopes(scopes), PATIENT, "Observation", interaction) is expected


def test_context_must_match() -> None:
    scopes = parse_scopes("user/*.rs")
    assert permits(scopes, USER, "Observation", R)
    assert not permits(scopes, PATIENT, "Observation", R)
    assert not permits(scopes, SYSTEM, "Observation", R)
    assert permits(scopes, [PATIENT, USER], "Observation", R)


def test_invalid_scopes_grant_nothing() -> None:
    assert not permits(parse_scopes("patient/Observation.dus"), PATIENT, "Observation", D)


def test_constrained_scope_gives_filters_and_matches_resources() -> None:
    scopes = parse_scopes(f"patient/Observation.rs?{LAB}")
    result = access(scopes, PATIENT, "Observation", S)
    assert result.allowed and not result.unrestricted
    assert result.filters == ((Constraint("category", (f"{OBS_CATEGORY}|laboratory",)),),)
    lab = {"category": [(OBS_CATEGORY, "laboratory")]}
    vitals = {"category": [(OBS_CATEGORY, "vital-signs")]}
    assert result.matches(lab)
    assert not result.matches(vitals)
    assert not result.matches({})


def test_an_unconstrained_scope_lifts_the_constraint() -> None:
    scopes = parse_scopes(f"patient/Observation.rs?{LAB} patient/Observation.r")
    assert access(scopes, PATIENT, "Observation", R).unrestricted
    assert not access(scopes, PATIENT, "Observation", S).unrestricted


def test_constraint_groups_are_or_and_params_within_a_scope_are_and() -> None:
    scopes = parse_scopes(
        "user/Observation.rs?category=laboratory&status=final user/Observation.rs?code=4548-4"
    )
    result = access(scopes, USER, "Observation", R)
    assert len(result.filters) == 2
    assert result.matches({"category": [(OBS_CATEGORY, "laboratory")], "status": [(None, "final")]})
    assert not result.matches({"category": [(OBS_CATEGORY, "laboratory")]})
    assert result.matches({"code": [("http://loinc.org", "4548-4")]})


@pytest.mark.parametrize(
    ("value", "resource_token", "expected"),
    [
        ("laboratory", (OBS_CATEGORY, "laboratory"), True),  # code alone: any system
        (f"{OBS_CATEGORY}|laboratory", (OBS_CATEGORY, "laboratory"), True),
        (f"{OBS_CATEGORY}|laboratory", ("http://other", "laboratory"), False),
        ("|laboratory", (OBS_CATEGORY, "laboratory"), False),  # explicitly no system
        ("|laboratory", (None, "laboratory"), True),
        (f"{OBS_CATEGORY}|", (OBS_CATEGORY, "vital-signs"), True),  # any code in the system
        (f"{OBS_CATEGORY}|", ("http://other", "vital-signs"), False),
        ("a\\,b", (None, "a,b"), True),  # escaped comma is part of the code
    ],
)
def test_token_matching(value: str, resource_token, expected: bool) -> None:
    constraint = Constraint("category", (value,))
    assert constraint.matches({"category": [resource_token]}) is expected


def test_modifiers_and_chains_fail_closed() -> None:
    for text in (
        "user/Observation.rs?code:in=http://vs.example/diabetes",
        "user/Observation.rs?patient.birthdate=1990",
    ):
        scope = parse_scope(text)
        assert scope is not None and not scope.supported
        result = access([scope], USER, "Observation", R)
        assert result.allowed
        assert not result.matches(
            {
                "code": [("http://loinc.org", "4548-4")],
                "patient.birthdate": [(None, "1990")],
                "code:in": [(None, "http://vs.example/diabetes")],
            }
        )


# -- narrowing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "registered", "granted"),
    [
        ("patient/*.read", "patient/Observation.rs", "patient/Observation.read"),
        ("patient/*.cruds", "patient/*.read", "patient/*.rs"),
        ("patient/*.write", "patient/*.cu", "patient/*.cu"),
        ("patient/Observation.rs", "user/*.rs", ""),
        ("user/*.rs", "user/Observation.r user/Condition.s", "user/Condition.s user/Observation.r"),
        ("system/*.rs", f"system/Observation.rs?{LAB}", f"system/Observation.rs?{LAB}"),
        (f"system/Observation.r?{LAB}", "system/*.cruds", f"system/Observation.r?{LAB}"),
        (
            "system/*.rs?status=final",
            f"system/Observation.rs?{LAB}",
            f"system/Observation.rs?{LAB}&status=final",
        ),
        ("openid fhirUser patient/*.rs", "openid patient/*.rs", "patient/*.rs openid"),
        ("patient/Observation.dus patient/*.rs", "patient/*.cruds", "patient/*.rs"),
    ],
)
def test_narrowing_examples(requested: str, registered: str, granted: str) -> None:
    assert str(narrow(parse_scopes(requested), parse_scopes(registered))) == granted


def test_simplify_merges_and_drops_implied_scopes() -> None:
    scopes = parse_scopes(
        f"user/Observation.r user/Observation.s user/*.r user/Observation.rs?{LAB}"
    ).resource
    assert [str(s) for s in simplify(scopes)] == ["user/*.r", "user/Observation.rs"]
