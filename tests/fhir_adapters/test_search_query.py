"""Query parsing: every R4 search form becomes the right node, and misuse names the parameter."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_adapters.search_query import (
    Chain,
    CompositeValue,
    Criterion,
    DateValue,
    MissingValue,
    NumberValue,
    OfTypeValue,
    ParameterTest,
    QuantityValue,
    ReferenceValue,
    ReverseChain,
    SearchParameterError,
    SearchQuery,
    StringValue,
    TextValue,
    TokenForm,
    TokenValue,
    UriValue,
    escape,
    parse_query,
    split_escaped,
    unescape,
)


def parse(resource_type: str, *pairs: tuple[str, str]) -> SearchQuery:
    return parse_query(resource_type, list(pairs), now=datetime(2024, 1, 1, tzinfo=UTC))


def only(query: SearchQuery) -> Criterion:
    [criterion] = query.criteria
    return criterion


def single_test(query: SearchQuery) -> ParameterTest:
    criterion = only(query)
    assert isinstance(criterion, ParameterTest)
    return criterion


def error_for(resource_type: str, *pairs: tuple[str, str]) -> SearchParameterError:
    with pytest.raises(SearchParameterError) as caught:
        parse(resource_type, *pairs)
    return caught.value


# -- tokens ----------------------------------------------------------------------------------


def test_token_forms() -> None:
    test = single_test(parse("Observation", ("code", "http://loinc.org|4548-4,|x,4548-4,urn:s|")))
    assert test.values == (
        TokenValue(TokenForm.SYSTEM_CODE, "http://loinc.org", "4548-4"),
        TokenValue(TokenForm.NO_SYSTEM, None, "x"),
        TokenValue(TokenForm.CODE, None, "4548-4"),
        TokenValue(TokenForm.SYSTEM_ONLY, "urn:s", None),
    )


def test_commas_are_or_and_repeats_are_and() -> None:
    query = parse("Patient", ("gender", "male,female"), ("gender", "other"))
    assert [len(c.values) for c in query.criteria if isinstance(c, ParameterTest)] == [2, 1]


def test_escapes() -> None:
    test = single_test(parse("Observation", ("code", r"a\,b,c\|d,urn:x|e\$f\\")))
    assert test.values == (
        TokenValue(TokenForm.CODE, None, "a,b"),
        TokenValue(TokenForm.CODE, None, "c|d"),
        TokenValue(TokenForm.SYSTEM_CODE, "urn:x", "e$f\\"),
    )
    assert single_test(parse("Patient", ("family", r"Smith\,Jones"))).values == (
        StringValue("Smith,Jones", "smith,jones"),
    )


def test_token_modifiers() -> None:
    text = single_test(parse("Condition", ("code:text", "Héart  Attack")))
    assert (text.modifier, text.values) == ("text", (TextValue("Héart  Attack", "heart attack"),))
    of_type = single_test(
        parse(
            "Patient",
            ("identifier:of-type", "http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345"),
        )
    )
    assert of_type.values == (
        OfTypeValue("http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "12345"),
    )
    value_set = single_test(parse("Condition", ("code:in", "http://example.org/ValueSet/x")))
    assert value_set.values == (UriValue("http://example.org/ValueSet/x"),)
    negated = single_test(parse("Condition", ("clinical-status:not", "resolved")))
    assert negated.modifier == "not"
    assert error_for("Patient", ("identifier:of-type", "MR|12345")).param_name == (
        "identifier:of-type"
    )
    assert error_for("Observation", ("code", "a|b|c")).param_name == "code"


def test_missing() -> None:
    test = single_test(parse("Observation", ("performer:missing", "true")))
    assert test.values == (MissingValue(True),)
    assert error_for("Observation", ("performer:missing", "yes")).param_name == (
        "performer:missing"
    )


def test_modifier_must_suit_the_parameter_type() -> None:
    error = error_for("Patient", ("birthdate:exact", "2000"))
    assert error.param_name == "birthdate:exact" and "date" in error.message
    assert error_for("Patient", ("name:below", "x")).param_name == "name:below"
    assert error_for("Patient", ("gender:bogus", "x")).param_name == "gender:bogus"


# -- strings, uris -----------------------------------------------------------------------------


def test_string_modifiers() -> None:
    assert single_test(parse("Patient", ("name", "Pét"))).values == (StringValue("Pét", "pet"),)
    assert single_test(parse("Patient", ("name:exact", "Peter"))).modifier == "exact"
    assert single_test(parse("Patient", ("name:contains", "ete"))).modifier == "contains"
    uri = single_test(parse("Questionnaire", ("url:below", "http://example.org/q")))
    assert (uri.modifier, uri.values) == ("below", (UriValue("http://example.org/q"),))


# -- dates, numbers, quantities ----------------------------------------------------------------


def test_date_values_with_prefixes() -> None:
    test = single_test(parse("Observation", ("date", "ge2013-01,lt2013-01-14T10:00:00+10:00")))
    first, second = test.values
    assert isinstance(first, DateValue) and isinstance(second, DateValue)
    assert (first.prefix, first.low, first.high, first.precision) == (
        "ge",
        datetime(2013, 1, 1, tzinfo=UTC),
        datetime(2013, 2, 1, tzinfo=UTC),
        "month",
    )
    assert (second.prefix, second.low) == ("lt", datetime(2013, 1, 14, 0, tzinfo=UTC))


def test_unencoded_plus_in_a_timezone_is_read_as_plus() -> None:
    test = single_test(parse("Observation", ("date", "2013-01-14T10:00:00 10:00")))
    [value] = test.values
    assert isinstance(value, DateValue) and value.low == datetime(2013, 1, 14, tzinfo=UTC)


def test_ap_widens_the_range() -> None:
    [value] = single_test(parse("Observation", ("date", "ap2014-01-01"))).values
    assert isinstance(value, DateValue)
    # ten years before "now" (2024-01-01): a tenth of the gap is about a year each side
    assert value.low < datetime(2013, 2, 1, tzinfo=UTC)
    assert value.high > datetime(2014, 12, 1, tzinfo=UTC)
    [length] = single_test(parse("Encounter", ("length", "ap100"))).values
    assert isinstance(length, QuantityValue)
    assert (length.low, length.high) == (Decimal("90"), Decimal("110"))  # within 10%


@pytest.mark.parametrize(
    ("pairs", "name"),
    [
        (("date", "xx2013"), "date"),
        (("date", "2013-13-01"), "date"),
        (("date", "ge"), "date"),
        (("value-quantity", "abc"), "value-quantity"),
        (("value-quantity", "5.4|http://unitsofmeasure.org|"), "value-quantity"),
        (("value-quantity", "5.4|mg"), "value-quantity"),
        (("date", "2013-01-14T10:00:00+25:00"), "date"),
    ],
)
def test_malformed_values_name_their_parameter(pairs: tuple[str, str], name: str) -> None:
    assert error_for("Observation", pairs).param_name == name


def test_quantity_forms() -> None:
    values = single_test(
        parse(
            "Observation", ("value-quantity", "5.4|http://unitsofmeasure.org|mmol/L,le5.4||mg,5.40")
        )
    ).values
    full, unit_only, bare = values
    assert full == QuantityValue(
        "eq",
        "5.4",
        Decimal("5.4"),
        Decimal("5.35"),
        Decimal("5.45"),
        "http://unitsofmeasure.org",
        "mmol/L",
    )
    assert isinstance(unit_only, QuantityValue)
    assert (unit_only.prefix, unit_only.system, unit_only.code) == ("le", None, "mg")
    assert isinstance(bare, QuantityValue)
    assert (bare.low, bare.high, bare.system) == (Decimal("5.395"), Decimal("5.405"), None)


def test_number_values() -> None:
    test = single_test(parse("RiskAssessment", ("probability", "gt0.8,1e-1")))
    assert test.values == (
        NumberValue("gt", "0.8", Decimal("0.8"), Decimal("0.75"), Decimal("0.85")),
        NumberValue("eq", "1e-1", Decimal("0.1"), Decimal("0.05"), Decimal("0.15")),
    )
    assert error_for("RiskAssessment", ("probability", "high")).param_name == "probability"


def test_composite_values() -> None:
    [value] = single_test(
        parse("Observation", ("code-value-quantity", "http://loinc.org|8480-6$gt100"))
    ).values
    assert isinstance(value, CompositeValue)
    code, quantity = value.components
    assert code == TokenValue(TokenForm.SYSTEM_CODE, "http://loinc.org", "8480-6")
    assert isinstance(quantity, QuantityValue) and quantity.prefix == "gt"
    assert error_for("Observation", ("code-value-quantity", "8480-6")).param_name == (
        "code-value-quantity"
    )


# -- references and chains ---------------------------------------------------------------------


def test_reference_values() -> None:
    test = single_test(
        parse("Observation", ("subject", "Patient/1,2,https://x.example/fhir/Group/g"))
    )
    assert test.values == (
        ReferenceValue("Patient/1", "Patient", "1", "Patient/1"),
        ReferenceValue("2", None, "2", None),
        ReferenceValue(
            "https://x.example/fhir/Group/g", "Group", None, "https://x.example/fhir/Group/g"
        ),
    )
    typed = single_test(parse("Observation", ("subject:Patient", "23")))
    assert typed.target_type == "Patient" and typed.values == (
        ReferenceValue("23", "Patient", "23", None),
    )
    local = parse_query(
        "Observation",
        [("subject", "https://r.example/fhir/Patient/5")],
        local_bases=("https://r.example/fhir",),
    )
    assert single_test(local).values == (
        ReferenceValue("https://r.example/fhir/Patient/5", "Patient", "5", "Patient/5"),
    )
    by_identifier = single_test(
        parse("Observation", ("subject:identifier", "https://fhir.nhs.uk/Id/nhs-number|9000000009"))
    )
    assert by_identifier.values == (
        TokenValue(TokenForm.SYSTEM_CODE, "https://fhir.nhs.uk/Id/nhs-number", "9000000009"),
    )


def test_reference_misuse() -> None:
    assert error_for("Observation", ("subject:Medication", "1")).param_name == (
        "subject:Medication"
    )
    assert error_for("Observation", ("subject", "Medication/1")).param_name == "subject"
    assert error_for("Observation", ("subject:Patient", "Group/1")).param_name == (
        "subject:Patient"
    )
    assert error_for("Observation", ("subject", "not a/reference")).param_name == "subject"


def test_chain_of_one_level() -> None:
    chain = only(parse("Observation", ("patient.name", "peter")))
    assert isinstance(chain, Chain) and chain.parameter.name == "patient"
    [inner] = chain.alternatives
    assert isinstance(inner, ParameterTest)
    assert (inner.resource_type, inner.parameter.name, inner.values) == (
        "Patient",
        "name",
        (StringValue("peter", "peter"),),
    )


def test_chain_with_type_and_nested_levels() -> None:
    chain = only(
        parse(
            "Observation",
            (
                "subject:Patient.organization.identifier",
                "https://fhir.nhs.uk/Id/ods-organization-code|A1",
            ),
        )
    )
    assert isinstance(chain, Chain)
    [middle] = chain.alternatives
    assert isinstance(middle, Chain) and middle.resource_type == "Patient"
    [inner] = middle.alternatives
    assert isinstance(inner, ParameterTest) and inner.resource_type == "Organization"
    assert inner.values == (
        TokenValue(TokenForm.SYSTEM_CODE, "https://fhir.nhs.uk/Id/ods-organization-code", "A1"),
    )


def test_chain_without_type_tries_each_target_that_has_the_parameter() -> None:
    chain = only(parse("Observation", ("subject.name", "x")))
    assert isinstance(chain, Chain)
    assert sorted(alt.resource_type for alt in chain.alternatives) == ["Location", "Patient"]


def test_chain_misuse() -> None:
    assert error_for("Observation", ("code.name", "x")).param_name == "code.name"
    assert error_for("Observation", ("patient.nosuch", "x")).param_name == "patient.nosuch"
    assert error_for("Observation", ("patient.birthdate", "never")).param_name == (
        "patient.birthdate"
    )


def test_reverse_chain() -> None:
    has = only(parse("Patient", ("_has:Observation:patient:code", "1234-5")))
    assert isinstance(has, ReverseChain)
    assert (has.source_type, has.reference.name) == ("Observation", "patient")
    assert isinstance(has.inner, ParameterTest) and has.inner.resource_type == "Observation"


def test_nested_reverse_chain() -> None:
    has = only(
        parse(
            "Patient", ("_has:Observation:patient:_has:Provenance:target:agent", "Practitioner/1")
        )
    )
    assert isinstance(has, ReverseChain) and isinstance(has.inner, ReverseChain)
    assert has.inner.source_type == "Provenance"
    inner = has.inner.inner
    assert isinstance(inner, ParameterTest)
    assert inner.values == (
        ReferenceValue("Practitioner/1", "Practitioner", "1", "Practitioner/1"),
    )


def test_reverse_chain_misuse() -> None:
    assert error_for("Patient", ("_has:Observation:code:status", "final")).param_name == (
        "_has:Observation:code:status"
    )
    assert error_for("Organization", ("_has:Observation:patient:code", "x")).param_name == (
        "_has:Observation:patient:code"
    )
    assert error_for("Patient", ("_has:Nope:patient:code", "x")).param_name == (
        "_has:Nope:patient:code"
    )
    assert error_for("Patient", ("_has:Observation:patient", "x")).param_name == (
        "_has:Observation:patient"
    )


# -- result parameters, unknowns ---------------------------------------------------------------


def test_result_parameters() -> None:
    query = parse(
        "Observation",
        ("_count", "20"),
        ("_offset", "40"),
        ("_sort", "-date,code,_lastUpdated"),
        ("_total", "accurate"),
        ("_summary", "count"),
        ("_elements", "id,code,subject"),
        ("_include", "Observation:patient,Observation:performer:Practitioner"),
        ("_include:iterate", "Patient:general-practitioner"),
        ("_revinclude", "Provenance:target"),
        ("_contained", "both"),
        ("_containedType", "contained"),
        ("_format", "json"),
        ("_pretty", "true"),
    )
    result = query.result
    assert (result.count, result.offset, result.total, result.summary) == (
        20,
        40,
        "accurate",
        "count",
    )
    assert [(key.parameter.name, key.descending) for key in result.sort] == [
        ("date", True),
        ("code", False),
        ("_lastUpdated", False),
    ]
    assert result.elements == ("id", "code", "subject")
    assert [
        (i.source_type, i.parameter and i.parameter.name, i.target_type, i.iterate)
        for i in result.include
    ] == [
        ("Observation", "patient", None, False),
        ("Observation", "performer", "Practitioner", False),
        ("Patient", "general-practitioner", None, True),
    ]
    [rev] = result.revinclude
    assert (rev.source_type, rev.parameter and rev.parameter.name) == ("Provenance", "target")
    assert (result.contained, result.contained_type, result.format, result.pretty) == (
        "both",
        "contained",
        "json",
        True,
    )
    assert query.criteria == ()


def test_wildcard_includes() -> None:
    result = parse("Observation", ("_include", "*"), ("_revinclude", "Provenance:*")).result
    assert result.include[0].source_type is None and result.include[0].parameter is None
    assert result.revinclude[0].source_type == "Provenance"


@pytest.mark.parametrize(
    ("pairs", "name"),
    [
        ((("_count", "-1"),), "_count"),
        ((("_count", "ten"),), "_count"),
        ((("_count", "1"), ("_count", "2")), "_count"),
        ((("_sort", "-nosuch"),), "_sort"),
        ((("_sort", "code-value-quantity"),), "_sort"),
        ((("_total", "maybe"),), "_total"),
        ((("_summary", "yes"),), "_summary"),
        ((("_pretty", "yes"),), "_pretty"),
        ((("_elements", "a b"),), "_elements"),
        ((("_include", "Patient:organization"),), "_include"),
        ((("_include", "Observation:code"),), "_include"),
        ((("_include", "Observation:subject:Medication"),), "_include"),
        ((("_include:deep", "Observation:subject"),), "_include:deep"),
        ((("_revinclude", "Observation:patient"),), "_revinclude"),
    ],
)
def test_result_parameter_misuse(pairs: tuple[tuple[str, str], ...], name: str) -> None:
    assert error_for("Encounter", *pairs).param_name == name


def test_unknown_parameters_are_reported_not_raised() -> None:
    query = parse("Patient", ("nosuch", "1"), ("_text", "x"), ("name", "a"), ("nosuch:exact", "2"))
    assert query.unknown == ("nosuch", "_text", "nosuch:exact")
    assert len(query.criteria) == 1


def test_empty_values_are_ignored() -> None:
    assert single_test(parse("Patient", ("name", ""), ("gender", "male,"))).values == (
        TokenValue(TokenForm.CODE, None, "male"),
    )


def test_resource_level_parameters_on_any_type() -> None:
    query = parse(
        "Basic",
        ("_id", "a,b"),
        ("_lastUpdated", "gt2024-01-01"),
        ("_tag", "urn:t|x"),
        ("_profile", "http://p"),
        ("_security", "R"),
    )
    assert [c.parameter.name for c in query.criteria if isinstance(c, ParameterTest)] == [
        "_id",
        "_lastUpdated",
        "_tag",
        "_profile",
        "_security",
    ]


def test_unknown_resource_type() -> None:
    with pytest.raises(ValueError):
        parse_query("Nope", [])


# -- round trips -------------------------------------------------------------------------------


@given(st.lists(st.text(min_size=1), min_size=1, max_size=5))
def test_escape_split_unescape_round_trip(items: list[str]) -> None:
    joined = ",".join(escape(item) for item in items)
    assert [unescape(piece) for piece in split_escaped(joined, ",")] == items


@given(system=st.text(min_size=1), code=st.text(min_size=1))
def test_token_round_trip(system: str, code: str) -> None:
    test = single_test(parse("Observation", ("code", f"{escape(system)}|{escape(code)}")))
    assert test.values == (TokenValue(TokenForm.SYSTEM_CODE, system, code),)


@given(text=st.text(min_size=1).filter(lambda t: t.strip() != ""))
def test_string_round_trip(text: str) -> None:
    [value] = single_test(parse("Patient", ("family", escape(text)))).values
    assert isinstance(value, StringValue) and value.value == text
