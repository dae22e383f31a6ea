"""FHIR search over resources held in memory: a ``fetch`` for tests, benchmarks and documents.

The register's own search runs as SQL over index tables. This evaluates the same parsed query
(:func:`fhir_adapters.search_query.parse_query`) against the same index rows
(:func:`fhir_adapters.search_extraction.extract`), for a handful of resources at a time: a
patient's record loaded from a file, or the resources already gathered for a summary.

Supported: token, reference and date parameters (with ``:not`` on tokens), ``_id``, and the
``_sort`` / ``_count`` result parameters. Anything else raises ``ValueError``, so a
Questionnaire that needs more than this is caught in the tests rather than answered wrongly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from fhir_adapters.search_extraction import (
    DateEntry,
    IndexEntry,
    ReferenceEntry,
    TokenEntry,
    extract_parameter,
)
from fhir_adapters.search_parameters import SearchParameter
from fhir_adapters.search_query import (
    DateValue,
    ParameterTest,
    ReferenceValue,
    SearchValue,
    TokenForm,
    TokenValue,
    parse_query,
)
from fhir_adapters.search_values import DATE_MIN, range_matches
from fhir_adapters.sourced import Sourced


class MemoryFetch:
    """A ``fetch`` over a fixed set of :class:`Sourced` records (see :data:`sourced.Fetch`)."""

    def __init__(self, records: Iterable[Sourced], *, now: datetime | None = None) -> None:
        self._by_type: dict[str, list[Sourced]] = defaultdict(list)
        for record in records:
            self._by_type[str(record.resource.get("resourceType"))].append(record)
        # Index rows per (record, parameter), extracted when a query first needs them: a fetch
        # asks about a few parameters (patient, code, status, date), and extracting every
        # parameter of every Observation cost most of a $summary (measured).
        self._rows: dict[tuple[int, str], list[IndexEntry]] = {}
        self._now = now
        self.calls: list[tuple[str, tuple[tuple[str, str], ...]]] = []

    def __call__(self, resource_type: str, params: Sequence[tuple[str, str]]) -> list[Sourced]:
        """The records of ``resource_type`` matching every parameter, sorted as asked."""
        self.calls.append((resource_type, tuple(params)))
        query = parse_query(resource_type, params, now=self._now)
        if query.unknown:
            raise ValueError(f"unknown search parameters {', '.join(query.unknown)}")
        tests = []
        for criterion in query.criteria:
            if not isinstance(criterion, ParameterTest) or criterion.modifier not in (None, "not"):
                raise ValueError(f"unsupported search criterion {criterion!r}")
            tests.append(criterion)
        found = [r for r in self._by_type.get(resource_type, []) if self._matches(r, tests)]
        for key in reversed(query.result.sort):
            found.sort(
                key=lambda r, parameter=key.parameter: self._sort_key(r, parameter),
                reverse=key.descending,
            )
        if query.result.count is not None:
            found = found[: query.result.count]
        return found

    def _entries(self, record: Sourced, parameter: SearchParameter) -> list[IndexEntry]:
        key = (id(record), parameter.name)
        rows = self._rows.get(key)
        if rows is None:
            rows = list(dict.fromkeys(extract_parameter(parameter, record.resource)))
            self._rows[key] = rows
        return rows

    def _matches(self, record: Sourced, tests: list[ParameterTest]) -> bool:
        for test in tests:
            entries = self._entries(record, test.parameter)
            hit = any(_value_matches(value, entries) for value in test.values)
            if test.modifier == "not":
                hit = not hit
            if not hit:
                return False
        return True

    def _sort_key(self, record: Sourced, parameter: SearchParameter) -> datetime:
        entries = self._entries(record, parameter)
        dates = [e.low for e in entries if isinstance(e, DateEntry)]
        if dates:
            return min(dates)
        return record.when or DATE_MIN


def _value_matches(value: SearchValue, entries: list[IndexEntry]) -> bool:
    if isinstance(value, TokenValue):
        return any(_token_matches(value, e) for e in entries if isinstance(e, TokenEntry))
    if isinstance(value, ReferenceValue):
        return any(_reference_matches(value, e) for e in entries if isinstance(e, ReferenceEntry))
    if isinstance(value, DateValue):
        return any(
            range_matches(value.prefix, value.low, value.high, e.low, e.high)
            for e in entries
            if isinstance(e, DateEntry)
        )
    raise ValueError(f"unsupported search value {value!r}")


def _token_matches(value: TokenValue, entry: TokenEntry) -> bool:
    if entry.code is None:
        return False
    if value.form is TokenForm.SYSTEM_ONLY:
        return entry.system == value.system
    if entry.code != value.code:
        return False
    if value.form is TokenForm.SYSTEM_CODE:
        return entry.system == value.system
    if value.form is TokenForm.NO_SYSTEM:
        return entry.system is None
    return True


def _reference_matches(value: ReferenceValue, entry: ReferenceEntry) -> bool:
    if value.target_id is not None:
        return entry.target_id == value.target_id and (
            value.target_type is None or entry.target_type == value.target_type
        )
    return value.url is not None and entry.url == value.url
