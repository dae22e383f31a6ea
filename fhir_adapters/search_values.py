"""Value rules shared by index extraction and query parsing.

Both sides of a search must read a value the same way: a date's implicit range, a decimal's
precision range, a normalised string, the parts of a reference. Keeping the rules in one module
means an indexed value and a query value can never disagree on what ``2013-01`` or ``5.40`` means.

Ranges are half-open everywhere: ``low <= x < high``. ``2013`` is
``[2013-01-01T00:00:00Z, 2014-01-01T00:00:00Z)`` and ``5.4`` is ``[5.35, 5.45)``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Literal

DATE_MIN = datetime(1, 1, 1, tzinfo=UTC)
"""Lower bound used for an open start (e.g. a Period without ``start``)."""
DATE_MAX = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
"""Upper bound used for an open end (e.g. a Period without ``end``)."""

DatePrecision = Literal["year", "month", "day", "minute", "second", "fraction"]

_DATE_RE = re.compile(
    r"^(?P<year>\d{4})"
    r"(?:-(?P<month>\d{2})"
    r"(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?"
    r")?)?)?$"
)
_DECIMAL_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?$")


@dataclass(frozen=True, slots=True)
class DateRange:
    """The implicit range of a FHIR date/dateTime/instant, in UTC, half-open."""

    low: datetime
    high: datetime
    precision: DatePrecision


@lru_cache(maxsize=65536)
def normalise_string(value: str) -> str:
    """Fold a string for FHIR string search: case-folded, accents removed, whitespace collapsed.

    The R4 search page asks for case- and accent-insensitive matching; NFKD decomposition
    followed by dropping combining marks turns ``José`` into ``jose`` and ``ﬁ`` into ``fi``.
    The result is a fixed point: normalising it again changes nothing.
    """
    previous = None
    text = value
    while text != previous:  # casefold can re-introduce combining marks (e.g. "İ"); iterate
        previous = text
        text = unicodedata.normalize("NFKD", text.casefold())
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(text.split())


def _add_months_clamped(moment: datetime, months: int) -> datetime | None:
    index = moment.year * 12 + (moment.month - 1) + months
    if index // 12 > 9999:
        return None
    return moment.replace(year=index // 12, month=index % 12 + 1)


def _add_clamped(moment: datetime, step: timedelta) -> datetime | None:
    try:
        return moment + step
    except OverflowError:
        return None


def _to_utc(naive: datetime, offset: timedelta) -> datetime:
    """Turn a naive local time with a UTC offset into an aware UTC datetime, clamped to range."""
    try:
        return (naive - offset).replace(tzinfo=UTC)
    except OverflowError:
        return DATE_MIN if offset > timedelta(0) else DATE_MAX


def parse_date_range(text: str) -> DateRange:
    """Parse a FHIR date, dateTime or instant (or a search date) into its implicit UTC range.

    Precision follows the digits given: ``2013`` covers the year, ``2013-01-14T10:00`` the minute,
    ``...:00.12`` a hundredth of a second. A value without a timezone is read as UTC (the
    register runs in UTC; FHIR leaves the zone of such values to the server). Raises
    ``ValueError`` on anything that is not a valid date.
    """
    match = _DATE_RE.match(text.strip())
    if match is None:
        raise ValueError(f"not a FHIR date/dateTime: {text!r}")
    parts = match.groupdict()
    if parts["tz"] and parts["hour"] is None:
        raise ValueError(f"timezone without time: {text!r}")
    year = int(parts["year"])
    month = int(parts["month"] or 1)
    day = int(parts["day"] or 1)
    hour = int(parts["hour"] or 0)
    minute = int(parts["minute"] or 0)
    second = int(parts["second"] or 0)
    fraction = parts["fraction"] or ""
    micro = int((fraction + "000000")[:6]) if fraction else 0
    offset = timedelta(0)
    if parts["tz"] and parts["tz"] != "Z":
        sign = 1 if parts["tz"][0] == "+" else -1
        hours, minutes = int(parts["tz"][1:3]), int(parts["tz"][4:6])
        if hours > 14 or minutes > 59:
            raise ValueError(f"bad timezone offset: {text!r}")
        offset = sign * timedelta(hours=hours, minutes=minutes)
    if year == 0:
        raise ValueError(f"year 0000 is not a valid date: {text!r}")
    local = datetime(year, month, day, hour, minute, second, micro)

    precision: DatePrecision
    if parts["month"] is None:
        precision, high_local = "year", _add_months_clamped(local, 12)
    elif parts["day"] is None:
        precision, high_local = "month", _add_months_clamped(local, 1)
    elif parts["hour"] is None:
        precision, high_local = "day", _add_clamped(local, timedelta(days=1))
    elif parts["second"] is None:
        precision, high_local = "minute", _add_clamped(local, timedelta(minutes=1))
    elif not fraction:
        precision, high_local = "second", _add_clamped(local, timedelta(seconds=1))
    else:
        digits = min(len(fraction), 6)
        step = timedelta(microseconds=10 ** (6 - digits))
        precision, high_local = "fraction", _add_clamped(local, step)
    low = _to_utc(local, offset)
    high = DATE_MAX if high_local is None else _to_utc(high_local, offset)
    return DateRange(low=low, high=high, precision=precision)


def parse_decimal(text: str) -> Decimal:
    """Parse a FHIR decimal as written (no NaN, no infinity, no spaces); ``ValueError`` if bad."""
    if not _DECIMAL_RE.match(text):
        raise ValueError(f"not a decimal number: {text!r}")
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid input
        raise ValueError(f"not a decimal number: {text!r}") from exc


def to_decimal(value: object) -> Decimal | None:
    """Turn a JSON number (int, float or Decimal) into a Decimal, keeping its written digits.

    A float becomes the Decimal of its shortest repr (``5.4`` -> ``Decimal('5.4')``), so the
    precision range follows what was written, except that trailing zeros are lost unless the JSON
    was parsed with ``parse_float=Decimal``. Booleans and anything else give ``None``.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            return parse_decimal(value)
        except ValueError:
            return None
    return None


def decimal_range(value: Decimal) -> tuple[Decimal, Decimal]:
    """The implicit range of a decimal from its precision: ``100`` -> ``[99.5, 100.5)``.

    Half a unit of the last written digit either side, as the R4 search page describes for
    number and quantity values (``1e2`` has one significant figure, so ``[50, 150)``).
    """
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5).scaleb(exponent - 1)
    return value - half, value + half


Prefix = Literal["eq", "ne", "lt", "gt", "le", "ge", "sa", "eb", "ap"]
PREFIXES: frozenset[str] = frozenset({"eq", "ne", "lt", "gt", "le", "ge", "sa", "eb", "ap"})


def range_matches(
    prefix: str, search_low: Any, search_high: Any, target_low: Any, target_high: Any
) -> bool:
    """Whether a target range satisfies a prefixed search range (R4 search page, prefix table).

    All ranges are half-open ``[low, high)``; ``None`` means unbounded on that side. This is the
    reference semantics the SQL translation must reproduce (``ap`` expects the search range
    already widened by the parser). Works for datetimes and Decimals alike.
    """

    def lt(a: Any, b: Any) -> bool:
        return bool(a < b)

    s_lo, s_hi, t_lo, t_hi = search_low, search_high, target_low, target_high
    contains = (s_lo is None or (t_lo is not None and not lt(t_lo, s_lo))) and (
        s_hi is None or (t_hi is not None and not lt(s_hi, t_hi))
    )
    # the part of the line at or above the search range's upper end intersects the target
    above = s_hi is not None and (t_hi is None or lt(s_hi, t_hi))
    below = s_lo is not None and (t_lo is None or lt(t_lo, s_lo))
    overlaps = (s_hi is None or t_lo is None or lt(t_lo, s_hi)) and (
        s_lo is None or t_hi is None or lt(s_lo, t_hi)
    )
    if prefix == "eq":
        return contains
    if prefix == "ne":
        return not contains
    if prefix == "gt":
        return above
    if prefix == "lt":
        return below
    if prefix == "ge":
        return above or contains
    if prefix == "le":
        return below or contains
    if prefix == "sa":
        return above and not overlaps
    if prefix == "eb":
        return below and not overlaps
    if prefix == "ap":
        return overlaps
    raise ValueError(f"unknown prefix {prefix!r}")


# ---------------------------------------------------------------------------------------------
# References

_RESOURCE_TAIL_RE = re.compile(
    r"(?:^|/)(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/(?P<version>[A-Za-z0-9\-.]{1,64}))?$"
)
_ABSOLUTE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")

ReferenceKind = Literal["relative", "absolute", "contained", "urn", "conditional", "canonical"]


@dataclass(frozen=True, slots=True)
class ParsedReference:
    """The parts of a reference string: what kind it is and, where known, the target's type/id.

    ``target_id`` is set only when the target is a resource on this server (a relative
    reference, or an absolute one under one of the server's own base URLs); ``url`` is the
    reference as written, except that local absolute URLs are shortened to ``Type/id``.
    """

    kind: ReferenceKind
    url: str
    target_type: str | None
    target_id: str | None
    version: str | None = None


def parse_reference(text: str, local_bases: tuple[str, ...] = ()) -> ParsedReference:
    """Split a FHIR reference (relative, absolute, ``#id``, ``urn:``, conditional) into parts.

    ``local_bases`` are this server's base URLs: an absolute reference under one of them is a
    local resource and is read like ``Type/id``; any other absolute reference keeps its type (read
    from the URL) but no id, so it can only match by URL.
    """
    text = text.strip()
    if text.startswith("#"):
        return ParsedReference("contained", text, None, None)
    if text.startswith(("urn:uuid:", "urn:oid:")):
        return ParsedReference("urn", text, None, None)
    if "?" in text and not _ABSOLUTE_RE.match(text):
        type_part = text.split("?", 1)[0]
        is_type = re.fullmatch(r"[A-Z][A-Za-z]+", type_part) is not None
        return ParsedReference("conditional", text, type_part if is_type else None, None)
    if _ABSOLUTE_RE.match(text):
        for base in local_bases:
            prefix = base.rstrip("/") + "/"
            if text.startswith(prefix):
                local = parse_reference(text[len(prefix) :])
                if local.kind == "relative":
                    return local
        match = _RESOURCE_TAIL_RE.search(text)
        if match:
            return ParsedReference("absolute", text, match["type"], None, match["version"])
        return ParsedReference("absolute", text, None, None)
    match = _RESOURCE_TAIL_RE.fullmatch(text) if "/" in text else None
    if match and match.start() == 0:
        url = f"{match['type']}/{match['id']}"
        return ParsedReference("relative", url, match["type"], match["id"], match["version"])
    return ParsedReference("relative", text, None, None)


def parse_canonical(text: str) -> ParsedReference:
    """Split a canonical URL (``http://x/Questionnaire/q1|2.0``) into URL, version and type."""
    url, _, version = text.partition("|")
    match = _RESOURCE_TAIL_RE.search(url)
    return ParsedReference(
        "canonical", url, match["type"] if match else None, None, version or None
    )


def type_from_reference_type(uri: str | None) -> str | None:
    """Read a resource type from ``Reference.type`` (``Patient`` or a StructureDefinition URL)."""
    if not uri:
        return None
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    return name if re.fullmatch(r"[A-Z][A-Za-z]+", name) else None
