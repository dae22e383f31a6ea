"""Properties of scopes, checked with hypothesis over generated scopes and resources."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from auth.scopes import (
    Constraint,
    Interaction,
    ResourceScope,
    ScopeContext,
    ScopeSet,
    access,
    narrow,
    parse_scope,
    parse_scopes,
    simplify,
)

TYPES = ["Observation", "Condition", "Patient"]
SYSTEMS = ["http://a.example", "http://b.example"]
CODES = ["x", "y"]
PARAMS = ["category", "status"]

interaction_sets = st.frozensets(st.sampled_from(list(Interaction)), min_size=1)


@st.composite
def constraint_values(draw) -> str:
    kind = draw(st.sampled_from(["code", "system|code", "|code", "system|"]))
    system, code = draw(st.sampled_from(SYSTEMS)), draw(st.sampled_from(CODES))
    return {
        "code": code,
        "system|code": f"{system}|{code}",
        "|code": f"|{code}",
        "system|": f"{system}|",
    }[kind]


constraints = st.builds(
    Constraint,
    st.sampled_from(PARAMS),
    st.lists(constraint_values(), min_size=1, max_size=2).map(tuple),
)

resource_scopes = st.builds(
    lambda ctx, rt, inter, cons, v1: ResourceScope(ctx, rt, inter, tuple(sorted(set(cons))), v1=v1),
    st.sampled_from(list(ScopeContext)),
    st.sampled_from([*TYPES, "*"]),
    interaction_sets,
    st.lists(constraints, max_size=2),
    st.booleans(),
)

scope_sets = st.builds(
    lambda res, other: ScopeSet(tuple(res), frozenset(other)),
    st.lists(resource_scopes, max_size=4),
    st.sets(st.sampled_from(["openid", "fhirUser", "launch/patient", "offline_access"])),
)

token_values = st.dictionaries(
    st.sampled_from(PARAMS),
    st.lists(st.tuples(st.sampled_from([None, *SYSTEMS]), st.sampled_from(CODES)), max_size=2),
)

requests = st.tuples(
    st.sampled_from(list(ScopeContext)),
    st.sampled_from(TYPES),
    st.sampled_from(list(Interaction)),
    token_values,
)


@settings(max_examples=400)
@given(scope_sets, scope_sets, requests)
def test_narrowing_never_grants_more_than_either_side(requested, registered, request) -> None:
    context, resource_type, interaction, values = request
    granted = narrow(requested, registered)
    g = access(granted, context, resource_type, interaction)
    a = access(requested, context, resource_type, interaction)
    b = access(registered, context, resource_type, interaction)
    if g.matches(values):
        assert a.matches(values) and b.matches(values)
    if g.allowed:
        assert a.allowed and b.allowed
    assert granted.other <= requested.other & registered.other


@settings(max_examples=400)
@given(scope_sets, scope_sets, requests)
def test_narrowing_keeps_everything_both_sides_allow(requested, registered, request) -> None:
    context, resource_type, interaction, values = request
    granted = narrow(requested, registered)
    both = access(requested, context, resource_type, interaction).matches(values) and access(
        registered, context, resource_type, interaction
    ).matches(values)
    assert access(granted, context, resource_type, interaction).matches(values) == both


@given(scope_sets, scope_sets)
def test_narrowing_is_symmetric_in_what_it_grants(a, b) -> None:
    assert set(narrow(a, b).resource) == set(narrow(b, a).resource)


@given(scope_sets)
def test_narrowing_by_itself_changes_nothing_granted(scopes) -> None:
    assert set(narrow(scopes, scopes).resource) == set(simplify(scopes.resource))


@settings(max_examples=300)
@given(st.lists(resource_scopes, max_size=5), requests)
def test_simplify_grants_exactly_the_same(scopes, request) -> None:
    context, resource_type, interaction, values = request
    before = access(scopes, context, resource_type, interaction)
    after = access(simplify(scopes), context, resource_type, interaction)
    assert before.matches(values) == after.matches(values)
    assert before.allowed == after.allowed


@given(resource_scopes)
def test_written_scopes_parse_back_to_themselves(scope) -> None:
    assert parse_scope(str(scope)) == scope


@given(scope_sets)
def test_scope_strings_round_trip(scopes) -> None:
    again = parse_scopes(str(scopes))
    assert set(again.resource) == set(scopes.resource)
    assert again.other == scopes.other
    assert again.invalid == ()


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12))
def test_constraint_values_with_any_characters_round_trip(text) -> None:
    escaped = text.replace("\\", "\\\\").replace(",", "\\,")
    scope = ResourceScope(
        ScopeContext.USER,
        "Observation",
        frozenset({Interaction.READ}),
        (Constraint("code", (escaped,)),),
    )
    rendered = str(scope)
    assert " " not in rendered
    assert parse_scope(rendered) == scope


@given(st.text(max_size=60))
def test_parse_scopes_never_raises(text) -> None:
    parsed = parse_scopes(text)
    assert len(parsed.resource) + len(parsed.other) + len(parsed.invalid) <= len(text.split())
