"""Value rules shared by indexing and querying: implicit ranges, prefixes, normalisation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_adapters.search_extraction import DateEntry, extract
from fhir_adapters.search_query import DateValue, ParameterTest, parse_query
from fhir_adapters.search_values import (
    DATE_MAX,
    decimal_range,
    normalise_string,
    parse_date_range,
    parse_decimal,
    parse_reference,
    range_matches,
)


def span(text: str) -> tuple[datetime, datetime]:
    parsed = parse_date_range(text)
    return parsed.low, parsed.high


def utc(
    year: int,
    month: int = 1,
    day: int = 1,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    micro: int = 0,
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


# -- dates: the R4 search page's prefix rules, applied to implicit ranges ----------------------

DATE_CASES = [
    # eq: the search range fully contains the target range
    ("eq", "2013-01-14", "2013-01-14T00:00:00Z", True),
    ("eq", "2013-01-14", "2013-01-14T10:00:00Z", True),
    ("eq", "2013-01-14", "2013-01-14T23:59:59.999Z", True),
    ("eq", "2013-01-14", "2013-01-13T23:59:59Z", False),
    ("eq", "2013-01-14", "2013-01-15T00:00:00Z", False),
    ("eq", "2013-01-14", "2013-01", False),  # a month is wider than the day searched
    ("eq", "2013", "2013-01-14", True),
    ("ne", "2013-01-14", "2013-01-15T00:00:00Z", True),
    ("ne", "2013-01-14", "2013-01-14T10:00:00Z", False),
    # lt / gt: the range below / above the search value intersects the target range
    ("lt", "2013-01-14T10:00", "2013-01-14", True),  # the day may have been before 10:00
    ("lt", "2013-01-14T10:00", "2013-01-14T09:59:00Z", True),
    ("lt", "2013-01-14T10:00", "2013-01-14T10:00:30Z", False),
    ("lt", "2013-01-14T10:00", "2013-01-14T10:01:00Z", False),
    ("gt", "2013-01-14T10:00", "2013-01-14T10:01:00Z", True),
    ("gt", "2013-01-14T10:00", "2013-01-14", True),
    ("gt", "2013-01-14T10:00", "2013-01-14T10:00:30Z", False),
    ("gt", "2013-01-14T10:00", "2013-01-14T09:00:00Z", False),
    # ge / le: as gt / lt, or equal
    ("ge", "2013-01-14T10:00", "2013-01-14T10:00:30Z", True),
    ("ge", "2013-01-14T10:00", "2013-01-14T09:59:59Z", False),
    ("le", "2013-01-14T10:00", "2013-01-14T10:00:30Z", True),
    ("le", "2013-01-14T10:00", "2013-01-14T10:01:00Z", False),
    # sa / eb: wholly after / before, no overlap
    ("sa", "2013-01-14", "2013-01-15T00:00:00Z", True),
    ("sa", "2013-01-14", "2013-01-15", True),
    ("sa", "2013-01-14", "2013-01-14T23:00:00Z", False),
    ("sa", "2013-01-14", "2013-01", False),
    ("eb", "2013-01-14", "2013-01-13", True),
    ("eb", "2013-01-14", "2013-01-14T00:00:00Z", False),
    # time zones: 10:00+10:00 is midnight UTC
    ("eq", "2013-01-14T10:00:00+10:00", "2013-01-14T00:00:00Z", True),
    ("eq", "2013-01-14", "2013-01-14T10:00:00+10:00", True),
    ("eq", "2013-01-14", "2013-01-15T09:00:00+10:00", True),  # 23:00 UTC on the 14th
    ("eq", "2013-01-14", "2013-01-15T11:00:00+10:00", False),  # 01:00 UTC on the 15th
]


@pytest.mark.parametrize(("prefix", "search", "target", "expected"), DATE_CASES)
def test_date_prefixes_follow_the_r4_table(
    prefix: str, search: str, target: str, expected: bool
) -> None:
    s_low, s_high = span(search)
    t_low, t_high = span(target)
    assert range_matches(prefix, s_low, s_high, t_low, t_high) is expected


def test_open_periods() -> None:
    start = span("2013-01-10")[0]
    open_end = (start, DATE_MAX)
    assert range_matches("gt", *span("2013-01-14"), *open_end)
    assert not range_matches("lt", *span("2013-01-01"), *open_end)
    assert not range_matches("eq", *span("2013"), *open_end)  # not contained: no end
    assert range_matches("ap", *span("2013-06"), *open_end)


def test_date_precisions() -> None:
    assert span("2013") == (utc(2013, 1, 1), utc(2014, 1, 1))
    assert span("2012-02") == (utc(2012, 2, 1), utc(2012, 3, 1))
    assert span("2012-12") == (utc(2012, 12, 1), utc(2013, 1, 1))
    assert span("2013-01-14T10:00") == (utc(2013, 1, 14, 10), utc(2013, 1, 14, 10, 1))
    assert span("2013-01-14T10:00:05Z") == (utc(2013, 1, 14, 10, 0, 5), utc(2013, 1, 14, 10, 0, 6))
    assert span("2013-01-14T10:00:05.5Z")[1] - span("2013-01-14T10:00:05.5Z")[0] == timedelta(
        milliseconds=100
    )
    assert parse_date_range("2013-01-14").precision == "day"


@pytest.mark.parametrize(
    "bad",
    [
        "2013-13",
        "2013-02-30",
        "13-01-01",
        "2013-01-14T25:00",
        "2013-01-14Z",
        "2013/01/14",
        "",
        "2013-01-14T10:00:00+15:00",
        "0000",
    ],
)
def test_invalid_dates_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_date_range(bad)


PRECISIONS = {
    "year": "%Y",
    "month": "%Y-%m",
    "day": "%Y-%m-%d",
    "minute": "%Y-%m-%dT%H:%MZ",
    "second": "%Y-%m-%dT%H:%M:%SZ",
}


@given(
    moment=st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2100, 12, 31), timezones=st.just(UTC)
    ),
    precision=st.sampled_from(sorted(PRECISIONS)),
)
def test_a_date_range_holds_the_instant_it_was_written_from(
    moment: datetime, precision: str
) -> None:
    text = moment.strftime(PRECISIONS[precision])
    parsed = parse_date_range(text)
    assert parsed.precision == precision
    assert parsed.low <= moment < parsed.high
    assert parsed.low.tzinfo is UTC
    # the same text indexed from a resource and searched with eq gives the same range
    [entry] = [
        e
        for e in extract({"resourceType": "Patient", "birthDate": text[:10]})
        if e.param == "birthdate"
    ]
    assert isinstance(entry, DateEntry)
    query = parse_query("Patient", [("birthdate", text[:10])])
    test = query.criteria[0]
    assert isinstance(test, ParameterTest)
    value = test.values[0]
    assert isinstance(value, DateValue)
    assert (value.low, value.high) == (entry.low, entry.high)
    assert range_matches("eq", value.low, value.high, entry.low, entry.high)


@given(
    s_low=st.integers(0, 50),
    s_len=st.integers(1, 20),
    t_low=st.integers(0, 50),
    t_len=st.integers(1, 20),
)
def test_prefix_relations(s_low: int, s_len: int, t_low: int, t_len: int) -> None:
    """eq implies ge and le; sa implies gt; eb implies lt; ne is not eq."""
    args = (Decimal(s_low), Decimal(s_low + s_len), Decimal(t_low), Decimal(t_low + t_len))
    result = {
        prefix: range_matches(prefix, *args)
        for prefix in ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
    }
    assert result["ne"] is not result["eq"]
    if result["eq"]:
        assert result["ge"] and result["le"] and result["ap"]
    if result["sa"]:
        assert result["gt"] and not result["eq"] and not result["ap"]
    if result["eb"]:
        assert result["lt"] and not result["eq"] and not result["ap"]
    assert result["ap"] or result["sa"] or result["eb"]


# -- numbers ---------------------------------------------------------------------------------


def test_number_precision_ranges_from_the_r4_search_page() -> None:
    assert decimal_range(Decimal("100")) == (Decimal("99.5"), Decimal("100.5"))
    assert decimal_range(Decimal("100.00")) == (Decimal("99.995"), Decimal("100.005"))
    assert decimal_range(Decimal("1e2")) == (Decimal("50"), Decimal("150"))
    search = decimal_range(Decimal("100"))
    assert range_matches("eq", *search, *decimal_range(Decimal("100.4")))
    assert not range_matches("eq", *search, *decimal_range(Decimal("101")))
    assert range_matches("lt", *search, *decimal_range(Decimal("99")))
    assert not range_matches("lt", *search, *decimal_range(Decimal("100")))
    assert range_matches("gt", *search, *decimal_range(Decimal("101")))
    assert range_matches("eq", *decimal_range(Decimal("1e2")), *decimal_range(Decimal("120")))


@given(
    st.decimals(
        allow_nan=False,
        allow_infinity=False,
        places=4,
        min_value=Decimal("-1e6"),
        max_value=Decimal("1e6"),
    )
)
def test_decimal_range_is_one_unit_of_the_last_digit(value: Decimal) -> None:
    low, high = decimal_range(value)
    assert low < value < high
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    assert high - low == Decimal(1).scaleb(exponent)


@pytest.mark.parametrize("bad", ["", "abc", "1,5", "NaN", "Infinity", " 1", "1.", "--1"])
def test_bad_decimals(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_decimal(bad)


# -- strings ---------------------------------------------------------------------------------


def test_normalisation_examples() -> None:
    assert normalise_string("José") == "jose"
    assert normalise_string("  Ñúñez\t  O'Brien ") == "nunez o'brien"
    assert normalise_string("STRASSE") == normalise_string("straße")
    assert normalise_string("ﬁle") == "file"


@given(st.text())
def test_normalisation_is_idempotent(text: str) -> None:
    once = normalise_string(text)
    assert normalise_string(once) == once
    assert once == once.strip() and "  " not in once


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzàéîõüçñåø ", max_size=30))
def test_normalisation_ignores_case_and_accents(text: str) -> None:
    assert normalise_string(text.upper()) == normalise_string(text)
    assert not any(ch in normalise_string(text) for ch in "àéîõüçñå")


# -- references ------------------------------------------------------------------------------


def test_reference_parsing() -> None:
    relative = parse_reference("Patient/123/_history/4")
    assert (
        relative.kind,
        relative.target_type,
        relative.target_id,
        relative.url,
        relative.version,
    ) == ("relative", "Patient", "123", "Patient/123", "4")
    assert parse_reference("#p1").kind == "contained"
    conditional = parse_reference("Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|1")
    assert (conditional.kind, conditional.target_type) == ("conditional", "Patient")
    local = parse_reference("https://r.example/fhir/Patient/9", ("https://r.example/fhir",))
    assert (local.kind, local.target_id, local.url) == ("relative", "9", "Patient/9")
    external = parse_reference("https://x.example/fhir/Patient/9", ("https://r.example/fhir",))
    assert (external.kind, external.target_type, external.target_id) == (
        "absolute",
        "Patient",
        None,
    )


NAME_PART = st.text(alphabet="abcdefghijklmnopqrstuvwxyzéèöüñçåßÀÉÖ'-", min_size=1, max_size=12)


@given(family=NAME_PART, given_names=st.lists(NAME_PART, min_size=1, max_size=3), data=st.data())
def test_any_prefix_of_any_name_part_finds_the_patient(
    family: str, given_names: list[str], data: st.DataObject
) -> None:
    """Indexed ``value_norm`` starts with the normalised query value, whatever case/accents."""
    patient = {"resourceType": "Patient", "name": [{"family": family, "given": given_names}]}
    indexed = [
        e.value_norm for e in extract(patient) if e.param == "name" and hasattr(e, "value_norm")
    ]
    part = data.draw(st.sampled_from([family, *given_names]))
    cut = data.draw(st.integers(1, len(part)))
    typed = data.draw(st.sampled_from([str.upper, str.lower, str.title]))(part[:cut])
    test = parse_query("Patient", [("name", typed)]).criteria[0]
    assert isinstance(test, ParameterTest)
    [value] = test.values
    assert hasattr(value, "normalised")
    query = value.normalised
    if query:  # a query of only marks/spaces normalises to nothing and matches everything
        assert any(norm.startswith(query) for norm in indexed)
