"""SDC ``$populate``: a QuestionnaireResponse pre-filled from the shared record.

Structured Data Capture (http://hl7.org/fhir/uv/sdc/populate.html) offers two ways to find an
answer, and this module does both:

- observation-based: an item with ``sdc-questionnaire-observationLinkPeriod`` and ``code`` is
  answered by the newest Observation with one of the item's codes;
- expression-based: ``variable`` extensions (``application/x-fhir-query`` with ``{{...}}``
  FHIRPath substitutions, or ``text/fhirpath``) build a launch context around ``%patient``, and
  each item's ``sdc-questionnaire-initialExpression`` (answers) or
  ``sdc-questionnaire-candidateExpression`` (choices offered, never filled) is FHIRPath
  evaluated with fhirpathpy over it.

What the register adds, so that a clinician confirms rather than asks again:

- every filled answer carries the ``prefill-source`` extension: ``source`` (the record it came
  from), ``digest`` (:func:`answer_digest` of the answer, which the duplicate rules compare to
  tell a confirmed answer from one asked afresh), ``date`` (when the fact held), ``author``
  (the organisation that recorded it) and ``recorded`` (when the register received it);
- an answer older than the item's freshness period (``observationLinkPeriod`` for
  observation items, the ``prefill-freshness`` extension for the others) is not filled: it is
  offered on the item as a ``prefill-last-known`` extension (``value``, ``source``, ``date``,
  ``author``, ``freshness``);
- candidate answers are offered as ``prefill-candidate`` extensions of the same shape.

Nothing here reads the database: ``fetch`` (see :mod:`fhir_adapters.sourced`) runs the
register's search under the requester's access rules, so a withheld record cannot be used.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

import fhirpathpy
import orjson
from fhirpathpy.models import models

from fhir_adapters.sourced import (
    Fetch,
    Sourced,
    fhir_datetime,
    organisation_reference,
    parse_instant,
)

SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"
LINK_PERIOD_URL = SDC + "sdc-questionnaire-observationLinkPeriod"
INITIAL_URL = SDC + "sdc-questionnaire-initialExpression"
CANDIDATE_URL = SDC + "sdc-questionnaire-candidateExpression"
LAUNCH_CONTEXT_URL = SDC + "sdc-questionnaire-launchContext"
VARIABLE_URL = "http://hl7.org/fhir/StructureDefinition/variable"

REGISTER = "https://fhir.shared-care-register.nhs.uk/StructureDefinition/"
# The same URL as register.duplicates.actions.PREFILL_SOURCE_URL (a test holds them together).
PREFILL_SOURCE_URL = REGISTER + "prefill-source"
LAST_KNOWN_URL = REGISTER + "prefill-last-known"
PREFILL_CANDIDATE_URL = REGISTER + "prefill-candidate"
FRESHNESS_URL = REGISTER + "prefill-freshness"

FILLED = "filled"
LAST_KNOWN = "last-known"
CANDIDATES = "candidates"
NOT_ANSWERABLE = "not-answerable"

_USABLE_OBSERVATION = frozenset({"final", "amended", "corrected", "preliminary", "registered"})
_MODEL = models["r4"]
_VARIABLE_NAME = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)")
_SUBSTITUTION = re.compile(r"\{\{(.+?)\}\}")
_UCUM_DAYS = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1, "wk": 7, "mo": 30.4375}
_UCUM_DAYS["a"] = 365.25


def answer_digest(answer: Mapping[str, Any]) -> str:
    """The digest of an answer's value[x] that marks it as pre-filled.

    The same algorithm as ``register.duplicates.actions.answer_digest``: a returned answer whose
    value still matches its digest was confirmed, not asked afresh (a test holds them together).
    """
    value = {k: v for k, v in answer.items() if k.startswith("value")}
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """What $populate could do for one question item."""

    link_id: str
    text: str
    status: str  # filled | last-known | candidates | not-answerable
    sources: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


@dataclass
class PopulateReport:
    """Per question item: filled, offered as last known, offered as candidates, or not answerable.

    Groups and display items are not counted; every question item is, answered or not.
    """

    items: list[ItemOutcome] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        """How many question items ended with ``status``."""
        return sum(1 for item in self.items if item.status == status)

    @property
    def share_filled(self) -> float:
        """Filled question items as a share of all question items (0 for an empty form)."""
        return self.count(FILLED) / len(self.items) if self.items else 0.0

    def by_link_id(self) -> dict[str, ItemOutcome]:
        """The outcomes keyed by linkId."""
        return {item.link_id: item for item in self.items}


@dataclass(frozen=True, slots=True)
class _Found:
    """One value found for an item, with the record it came from."""

    value: Any
    source: Sourced | None


class _Context:
    """The launch context and variables of one $populate, and the records behind them."""

    def __init__(
        self,
        questionnaire: Mapping[str, Any],
        patient: Sourced,
        fetch: Fetch,
        now: datetime,
        organisations: Mapping[str, str],
    ) -> None:
        self.patient = patient
        self.fetch = fetch
        self.now = now
        self.organisations = organisations
        self.values: dict[str, Any] = {
            "patient": dict(patient.resource),
            "questionnaire": questionnaire,
            "resource": {"resourceType": "QuestionnaireResponse"},
        }
        self.records: dict[str, list[Sourced]] = {"patient": [patient]}
        self.issues: list[str] = []

    def child(self) -> _Context:
        """A copy for an item's own variables (they do not leak to siblings)."""
        copy = object.__new__(_Context)
        copy.__dict__.update(self.__dict__)
        copy.values = dict(self.values)
        copy.records = dict(self.records)
        return copy

    def define(self, extension: Mapping[str, Any]) -> None:
        """Evaluate one ``variable`` extension into the context."""
        expression = extension.get("valueExpression") or {}
        name = expression.get("name")
        text = expression.get("expression")
        language = expression.get("language")
        if not isinstance(name, str) or not isinstance(text, str):
            self.issues.append("a variable has no name or expression")
            return
        try:
            if language == "application/x-fhir-query":
                records = self.query(text)
                self.records[name] = records
                self.values[name] = _bundle(records)
            elif language == "text/fhirpath":
                self.values[name] = self.evaluate(text)
            else:
                self.issues.append(f"variable {name}: language {language!r} is not supported")
        except Exception as exc:  # a bad expression must not stop the rest of the form
            self.issues.append(f"variable {name}: {exc}")
            self.values[name] = []

    def query(self, text: str) -> list[Sourced]:
        """Run an x-fhir-query (after ``{{expr}}`` substitution) through ``fetch``."""
        resolved = _SUBSTITUTION.sub(lambda m: self._substitute(m.group(1)), text.strip())
        resource_type, _, query = resolved.partition("?")
        params = []
        for part in query.split("&"):
            if part:
                name, _, value = part.partition("=")
                params.append((unquote(name), unquote(value)))
        return _sorted_as_asked(list(self.fetch(resource_type, params)), params)

    def _substitute(self, expression: str) -> str:
        values = self.evaluate(expression)
        if not values:
            raise ValueError(f"{{{{{expression}}}}} is empty")
        return str(values[0])

    def evaluate(self, expression: str, values: Mapping[str, Any] | None = None) -> list[Any]:
        """FHIRPath over the context (``values`` replaces some variables)."""
        env = self.values if values is None else {**self.values, **values}
        return list(_compiled(expression)(env["resource"], env))


@lru_cache(maxsize=512)
def _compiled(expression: str) -> Callable[[Any, Any], list[Any]]:
    return fhirpathpy.compile(expression, _MODEL)


def _bundle(records: Sequence[Sourced]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": dict(r.resource)} for r in records],
    }


def _sorted_as_asked(records: list[Sourced], params: list[tuple[str, str]]) -> list[Sourced]:
    """Apply ``_sort=date`` / ``-date`` by clinical date here too, so answers never depend on
    whether the server's search honoured it (expressions take ``.first()`` as the newest)."""
    for name, value in params:
        if name == "_sort" and value.lstrip("-") in ("date", "_lastUpdated"):
            newest_first = value.startswith("-")
            dated = [r for r in records if r.when is not None]
            undated = [r for r in records if r.when is None]
            dated.sort(key=lambda r: r.when, reverse=newest_first)  # type: ignore[arg-type,return-value]
            return dated + undated
    return records


def populate(
    questionnaire: Mapping[str, Any],
    *,
    patient: Sourced | Mapping[str, Any],
    fetch: Fetch,
    now: datetime,
    organisations: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], PopulateReport]:
    """Pre-fill ``questionnaire`` for ``patient`` from what ``fetch`` lets the requester see.

    Returns the QuestionnaireResponse (status ``in-progress``, every item of the Questionnaire,
    answers where the register holds a current one) and a per-item report. ``now`` anchors the
    freshness periods; ``organisations`` maps ODS codes to names for display.
    """
    subject = patient if isinstance(patient, Sourced) else Sourced(patient)
    context = _Context(questionnaire, subject, fetch, now, organisations or {})
    report = PopulateReport()
    for extension in _extensions(questionnaire, LAUNCH_CONTEXT_URL):
        names = [
            part.get("valueCoding", {}).get("code") or part.get("valueId")
            for part in extension.get("extension", [])
            if part.get("url") == "name"
        ]
        for name in names:
            if name not in ("patient", None):
                report.issues.append(f"launch context {name!r} is not supplied by the register")
    for extension in _extensions(questionnaire, VARIABLE_URL):
        context.define(extension)
    observations = _linked_observations(questionnaire.get("item") or [], context)
    items = [
        built
        for item in questionnaire.get("item") or []
        if (built := _build_item(item, context, observations, report)) is not None
    ]
    report.issues.extend(context.issues)
    response: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "status": "in-progress",
        "subject": {"reference": subject.reference},
        "authored": fhir_datetime(now),
    }
    url = questionnaire.get("url")
    if isinstance(url, str):
        version = questionnaire.get("version")
        response["questionnaire"] = f"{url}|{version}" if isinstance(version, str) else url
    if items:
        response["item"] = items
    return response, report


# -- observation-based population -----------------------------------------------------------


def _item_codes(item: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [
        (str(c.get("system", "")), str(c["code"]))
        for c in item.get("code") or []
        if isinstance(c, dict) and c.get("code")
    ]


def _walk(items: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for item in items:
        yield item
        yield from _walk(item.get("item") or [])


def _linked_observations(
    items: Sequence[Mapping[str, Any]], context: _Context
) -> dict[tuple[str, str], list[Sourced]]:
    """One search for every code of every observation-linked item; newest first per code."""
    wanted: set[tuple[str, str]] = set()
    for item in _walk(items):
        if _extension(item, LINK_PERIOD_URL) is not None:
            wanted.update(_item_codes(item))
    if not wanted:
        return {}
    tokens = ",".join(sorted(f"{system}|{code}" if system else code for system, code in wanted))
    params = [("patient", str(context.patient.resource.get("id"))), ("code", tokens)]
    try:
        found = context.fetch("Observation", params)
    except Exception as exc:
        context.issues.append(f"observation search failed: {exc}")
        return {}
    by_code: dict[tuple[str, str], list[Sourced]] = {}
    for record in found:
        if record.resource.get("status") not in _USABLE_OBSERVATION:
            continue
        for coding in (record.resource.get("code") or {}).get("coding") or []:
            key = (str(coding.get("system", "")), str(coding.get("code")))
            if key in wanted:
                by_code.setdefault(key, []).append(record)
    for records in by_code.values():
        records.sort(key=lambda r: r.when or datetime.min.replace(tzinfo=context.now.tzinfo))
        records.reverse()
    return by_code


def _observation_value(resource: Mapping[str, Any]) -> Any:
    for key, value in resource.items():
        if key.startswith("value") and key != "value":
            return value
    return None


# -- items --------------------------------------------------------------------------------


def _build_item(
    item: Mapping[str, Any],
    context: _Context,
    observations: Mapping[tuple[str, str], list[Sourced]],
    report: PopulateReport,
) -> dict[str, Any] | None:
    link_id = item.get("linkId")
    if not isinstance(link_id, str):
        report.issues.append("an item has no linkId")
        return None
    kind = item.get("type")
    out: dict[str, Any] = {"linkId": link_id}
    if isinstance(item.get("text"), str):
        out["text"] = item["text"]
    if isinstance(item.get("definition"), str):
        out["definition"] = item["definition"]
    if kind == "display":
        return out
    scope = context
    variables = list(_extensions(item, VARIABLE_URL))
    if variables:
        scope = context.child()
        for extension in variables:
            scope.define(extension)
    if kind == "group":
        children = [
            built
            for child in item.get("item") or []
            if (built := _build_item(child, scope, observations, report)) is not None
        ]
        if children:
            out["item"] = children
        return out
    _answer_item(item, out, scope, observations, report)
    return out


def _answer_item(
    item: Mapping[str, Any],
    out: dict[str, Any],
    context: _Context,
    observations: Mapping[tuple[str, str], list[Sourced]],
    report: PopulateReport,
) -> None:
    kind = str(item.get("type"))
    repeats = item.get("repeats") is True
    problems: list[str] = []
    freshness: dict[str, Any] | None = None
    found: list[_Found] = []
    initial = _extension(item, INITIAL_URL)
    link_period = _extension(item, LINK_PERIOD_URL)
    if initial is not None:
        found = _expression_values(initial, context, problems)
        freshness = (_extension(item, FRESHNESS_URL) or {}).get("valueDuration")
    elif link_period is not None:
        freshness = link_period.get("valueDuration")
        found = _observation_found(item, observations)
    fresh: list[tuple[dict[str, Any], _Found]] = []
    stale: list[tuple[dict[str, Any], _Found]] = []
    seen: set[str] = set()
    for candidate in found:
        answer = _answer_for(kind, candidate.value)
        if answer is None:
            problems.append(f"a value does not fit an item of type {kind}")
            continue
        digest = answer_digest(answer)
        if digest in seen:
            continue  # the same answer from an older record: the newest one speaks for it
        seen.add(digest)
        bucket = fresh if _is_fresh(candidate.source, freshness, context.now) else stale
        bucket.append((answer, candidate))
    if not repeats:
        fresh, stale = fresh[:1], ([] if fresh else stale[:1])
    answers = [_marked(answer, f.source, context) for answer, f in fresh]
    extensions = [
        _offer(LAST_KNOWN_URL, answer, f.source, context, freshness) for answer, f in stale
    ]
    status = FILLED if answers else LAST_KNOWN if stale else NOT_ANSWERABLE
    if not answers:
        offered = _candidate_offers(item, kind, context, problems)
        extensions.extend(offered)
        if offered and not stale:
            status = CANDIDATES
    if extensions:
        out["extension"] = extensions
    if answers:
        out["answer"] = answers
    sources = tuple(f.source.reference for _, f in fresh + stale if f.source is not None)
    report.items.append(
        ItemOutcome(
            str(item["linkId"]), str(item.get("text", "")), status, sources, tuple(problems)
        )
    )


def _observation_found(
    item: Mapping[str, Any], observations: Mapping[tuple[str, str], list[Sourced]]
) -> list[_Found]:
    records: dict[str, Sourced] = {}
    for code in _item_codes(item):
        for record in observations.get(code, []):
            records.setdefault(record.reference, record)
    ordered = sorted(records.values(), key=lambda r: (r.when is not None, r.when), reverse=True)
    found = []
    for record in ordered:
        value = _observation_value(record.resource)
        if value is not None:
            found.append(_Found(value, record))
    return found


def _expression_values(
    extension: Mapping[str, Any], context: _Context, problems: list[str]
) -> list[_Found]:
    """Evaluate an initial/candidate expression and find the record behind each value."""
    expression = (extension.get("valueExpression") or {}).get("expression")
    if not isinstance(expression, str):
        problems.append("an expression extension has no expression")
        return []
    try:
        values = [_plain(v) for v in context.evaluate(expression)]
    except Exception as exc:
        problems.append(f"expression failed: {exc}")
        return []
    if not values:
        return []
    return [
        _Found(v, s) for v, s in zip(values, _attribute(expression, context, values), strict=True)
    ]


def _attribute(expression: str, context: _Context, values: list[Any]) -> list[Sourced | None]:
    """Which record each value came from: evaluate again with each variable narrowed to one
    record at a time; a value is attributed to the newest record that yields it alone."""
    wanted: dict[bytes, list[int]] = {}
    for index, value in enumerate(values):
        wanted.setdefault(_key(value), []).append(index)
    best: list[Sourced | None] = [None] * len(values)
    names = {m.group(1) for m in _VARIABLE_NAME.finditer(expression)} & set(context.records)
    for name in sorted(names):
        # Newest first (stable, undated last): the first record of this variable that yields a
        # value is the newest of them that does, so once every value has been found through
        # this variable, its older records cannot change the answer and are not evaluated.
        records = sorted(
            context.records[name],
            key=lambda r: (r.when is None, -(r.when.timestamp()) if r.when else 0.0),
        )
        found: set[int] = set()
        for record in records:
            narrowed = dict(record.resource) if name == "patient" else _bundle([record])
            try:
                yielded = context.evaluate(expression, {name: narrowed})
            except Exception:
                continue
            for value in yielded:
                for index in wanted.get(_key(_plain(value)), []):
                    if index in found:
                        continue
                    found.add(index)
                    current = best[index]
                    if current is None or _newer(record, current):
                        best[index] = record
            if len(found) == len(values):
                break
    return best


def _newer(a: Sourced, b: Sourced) -> bool:
    if a.when is None:
        return False
    return b.when is None or a.when > b.when


def _key(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)


def _plain(value: Any) -> Any:
    """fhirpathpy results as plain JSON values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, str | bool | int | float) or value is None:
        return value
    return str(value)  # FHIRPath date/time/quantity objects


def _candidate_offers(
    item: Mapping[str, Any], kind: str, context: _Context, problems: list[str]
) -> list[dict[str, Any]]:
    extension = _extension(item, CANDIDATE_URL)
    if extension is None:
        return []
    offers = []
    seen: set[str] = set()
    for found in _expression_values(extension, context, problems):
        answer = _answer_for(kind, found.value)
        if answer is None:
            continue
        digest = answer_digest(answer)
        if digest not in seen:
            seen.add(digest)
            offers.append(_offer(PREFILL_CANDIDATE_URL, answer, found.source, context, None))
    return offers


# -- freshness ------------------------------------------------------------------------------


def duration_days(duration: Mapping[str, Any] | None) -> float | None:
    """A FHIR Duration (UCUM s, min, h, d, wk, mo, a) in days; None when absent or unknown."""
    if not isinstance(duration, Mapping):
        return None
    value = duration.get("value")
    code = duration.get("code") or duration.get("unit")
    if not isinstance(value, int | float) or code not in _UCUM_DAYS:
        return None
    return float(value) * _UCUM_DAYS[str(code)]


def _is_fresh(source: Sourced | None, freshness: Mapping[str, Any] | None, now: datetime) -> bool:
    days = duration_days(freshness)
    if days is None:
        return True  # no freshness period: a recorded fact does not go stale
    when = source.when if source is not None else None
    if when is None:
        return False  # cannot show it is current: offer it, do not fill it
    return now - when <= timedelta(days=days)


# -- answers and marks ----------------------------------------------------------------------


def _answer_for(kind: str, value: Any) -> dict[str, Any] | None:
    """An answer of the item's type from a found value, or None when it does not fit."""
    if isinstance(value, dict):
        if kind in ("choice", "open-choice"):
            coding = _coding_of(value)
            return {"valueCoding": coding} if coding else None
        if kind == "quantity" and "value" in value:
            quantity = {
                k: value[k] for k in ("value", "comparator", "unit", "system", "code") if k in value
            }
            return {"valueQuantity": quantity}
        if kind in ("decimal", "integer") and isinstance(value.get("value"), int | float):
            number = value["value"]
            return {"valueInteger": int(number)} if kind == "integer" else {"valueDecimal": number}
        if kind == "reference" and ("reference" in value or "identifier" in value):
            return {"valueReference": value}
        if kind in ("string", "text"):
            text = value.get("text") or value.get("display")
            return {"valueString": text} if isinstance(text, str) else None
        if kind == "date" and isinstance(value.get("start"), str):
            return {"valueDate": value["start"][:10]}
        return None
    if isinstance(value, bool):
        return {"valueBoolean": value} if kind == "boolean" else None
    if isinstance(value, int | float):
        if kind == "decimal":
            return {"valueDecimal": value}
        if kind == "integer" and float(value).is_integer():
            return {"valueInteger": int(value)}
        return None
    if isinstance(value, str) and value:
        if kind == "date" and parse_instant(value) is not None:
            return {"valueDate": value[:10]}
        if kind == "dateTime" and parse_instant(value) is not None:
            return {"valueDateTime": value}
        if kind in ("string", "text", "open-choice"):
            return {"valueString": value}
        if kind == "url":
            return {"valueUri": value}
    return None


def _coding_of(value: Mapping[str, Any]) -> dict[str, Any] | None:
    if "coding" in value:  # CodeableConcept: its first coding, text as display if missing
        codings = [c for c in value.get("coding") or [] if isinstance(c, dict) and c.get("code")]
        if not codings:
            return None
        coding = dict(codings[0])
        if "display" not in coding and isinstance(value.get("text"), str):
            coding["display"] = value["text"]
        return _clean_coding(coding)
    if value.get("code"):
        return _clean_coding(dict(value))
    return None


def _clean_coding(coding: dict[str, Any]) -> dict[str, Any]:
    return {k: coding[k] for k in ("system", "version", "code", "display") if k in coding}


def _provenance_parts(source: Sourced | None, context: _Context) -> list[dict[str, Any]]:
    if source is None:
        return []
    parts: list[dict[str, Any]] = [
        {"url": "source", "valueReference": {"reference": source.reference}}
    ]
    when = source.when
    if when is not None:
        parts.append({"url": "date", "valueDateTime": fhir_datetime(when)})
    parts.append(
        {
            "url": "author",
            "valueReference": organisation_reference(source.org, context.organisations),
        }
    )
    if source.recorded is not None:
        parts.append({"url": "recorded", "valueDateTime": fhir_datetime(source.recorded)})
    return parts


def _marked(answer: dict[str, Any], source: Sourced | None, context: _Context) -> dict[str, Any]:
    """The answer with its prefill-source mark (source, digest, date, author, recorded)."""
    parts = _provenance_parts(source, context)
    parts.insert(1 if parts else 0, {"url": "digest", "valueString": answer_digest(answer)})
    return {"extension": [{"url": PREFILL_SOURCE_URL, "extension": parts}], **answer}


def _offer(
    url: str,
    answer: dict[str, Any],
    source: Sourced | None,
    context: _Context,
    freshness: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """An item extension offering a value not filled in (last known, or a candidate)."""
    value_key, value = next(iter(answer.items()))
    parts: list[dict[str, Any]] = [{"url": "value", value_key: value}]
    parts.extend(_provenance_parts(source, context))
    if freshness:
        parts.append({"url": "freshness", "valueDuration": dict(freshness)})
    return {"url": url, "extension": parts}


# -- extension helpers ----------------------------------------------------------------------


def _extensions(element: Mapping[str, Any], url: str) -> Iterator[Mapping[str, Any]]:
    for extension in element.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == url:
            yield extension


def _extension(element: Mapping[str, Any], url: str) -> Mapping[str, Any] | None:
    return next(_extensions(element, url), None)


def prefill_marks(response: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every pre-filled answer of a QuestionnaireResponse, with its linkId (for tests and UIs)."""
    stack = list(response.get("item") or [])
    while stack:
        item = stack.pop(0)
        for answer in item.get("answer") or []:
            if any(e.get("url") == PREFILL_SOURCE_URL for e in answer.get("extension") or []):
                yield str(item.get("linkId")), answer
            stack.extend(answer.get("item") or [])
        stack.extend(item.get("item") or [])
