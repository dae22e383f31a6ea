"""Property: for random resources and random queries the server returns exactly what a
plain-Python reference filter returns, in the requested order, across pages.

The reference works on the index rows ``fhir_adapters.search_extraction.extract`` gives (what a
resource *says*), and applies the R4 rules directly: ``range_matches`` for prefixes, string
folding, the token forms. It shares no code with the SQL translation in ``register/search_sql``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from fhir_adapters.search_extraction import (
    DateEntry,
    QuantityEntry,
    ReferenceEntry,
    StringEntry,
    TokenEntry,
    extract,
)
from fhir_adapters.search_query import DateValue, QuantityValue, parse_query
from fhir_adapters.search_values import normalise_string, range_matches
from register import interactions, search, storage
from register.context import RequestContext
from register.db import read_transaction, write_transaction

BASE = "http://model/fhir"
LOINC, SNOMED = "http://loinc.org", "http://snomed.info/sct"
CODES = [(LOINC, "a"), (LOINC, "b"), (SNOMED, "a"), (None, "c")]
FAMILIES = ["Smith", "Smyth", "Núñez", "smithson", "O'Neil"]
UNITS = ["mmol/mol", "%"]
PRIMITIVE = {"status"}

# -- resources -----------------------------------------------------------------------------

dates = st.one_of(
    st.integers(2018, 2021).map(str),
    st.tuples(st.integers(2018, 2021), st.integers(1, 12)).map(lambda t: f"{t[0]}-{t[1]:02d}"),
    st.tuples(st.integers(2018, 2021), st.integers(1, 12), st.integers(1, 28)).map(
        lambda t: f"{t[0]}-{t[1]:02d}-{t[2]:02d}"
    ),
    st.tuples(
        st.integers(2018, 2021),
        st.integers(1, 12),
        st.integers(1, 28),
        st.integers(0, 23),
        st.sampled_from(["Z", "+01:00", "-05:00"]),
    ).map(lambda t: f"{t[0]}-{t[1]:02d}-{t[2]:02d}T{t[3]:02d}:30:00{t[4]}"),
)
numbers = st.sampled_from(["1", "1.5", "2", "2.25", "10", "48", "48.4", "0.5"])


@st.composite
def observation(draw: Callable[..., Any], patients: int) -> dict[str, Any]:
    codings = draw(st.lists(st.sampled_from(CODES), min_size=1, max_size=2, unique=True))
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "status": draw(st.sampled_from(["final", "amended", "preliminary"])),
        "code": {
            "coding": [{"code": c} if s is None else {"system": s, "code": c} for s, c in codings]
        },
    }
    if patients and draw(st.booleans()):
        body["subject"] = {"reference": f"Patient/p{draw(st.integers(0, patients - 1))}"}
    shape = draw(st.sampled_from(["none", "datetime", "period"]))
    if shape == "datetime":
        body["effectiveDateTime"] = draw(dates)
    elif shape == "period":
        start, end = sorted([draw(dates), draw(dates)], key=lambda d: d[:10])
        period = {}
        if draw(st.booleans()):
            period["start"] = start
        if draw(st.booleans()) or not period:
            period["end"] = end
        body["effectivePeriod"] = period
    if draw(st.booleans()):
        unit = draw(st.sampled_from(UNITS))
        value = float(draw(numbers))
        body["valueQuantity"] = {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        }
    return body


@st.composite
def dataset(draw: Callable[..., Any]) -> list[dict[str, Any]]:
    patients = draw(st.integers(0, 3))
    found: list[dict[str, Any]] = []
    for index in range(patients):
        found.append(
            {
                "resourceType": "Patient",
                "id": f"p{index}",
                "name": [
                    {
                        "family": draw(st.sampled_from(FAMILIES)),
                        "given": [draw(st.sampled_from(["Ann", "Anne", "Bob"]))],
                    }
                ],
                "birthDate": draw(dates)[:10] if draw(st.booleans()) else None,
            }
        )
        if found[-1]["birthDate"] is None:
            del found[-1]["birthDate"]
    found += draw(st.lists(observation(patients), min_size=1, max_size=12))
    return found


# -- queries -------------------------------------------------------------------------------

prefixes = st.sampled_from(["eq", "ne", "lt", "gt", "le", "ge", "sa", "eb", ""])


def _token_text(draw: Callable[..., Any]) -> str:
    system, code = draw(st.sampled_from([*CODES, (LOINC, "zz")]))
    form = draw(st.sampled_from(["code", "system|code", "|code", "system|"]))
    if form == "code":
        return code
    if form == "|code":
        return f"|{code}"
    if system is None:
        return code
    return f"{system}|{code}" if form == "system|code" else f"{system}|"


@st.composite
def observation_criterion(draw: Callable[..., Any]) -> tuple[str, str]:
    kind = draw(st.sampled_from(["code", "status", "date", "value", "subject", "missing", "chain"]))
    if kind == "code":
        values = [_token_text(draw) for _ in range(draw(st.integers(1, 2)))]
        return ("code:not" if draw(st.booleans()) and len(values) == 1 else "code"), ",".join(
            values
        )
    if kind == "status":
        value = draw(
            st.sampled_from(["final", "amended", "http://hl7.org/fhir/observation-status|final"])
        )
        return ("status:not" if draw(st.booleans()) else "status"), value
    if kind == "date":
        return "date", draw(prefixes) + draw(dates).replace("+", "%2B")
    if kind == "value":
        unit = draw(st.sampled_from(["", "|http://unitsofmeasure.org|mmol/mol", "||%"]))
        return "value-quantity", draw(prefixes) + draw(numbers) + unit
    if kind == "subject":
        target = draw(st.integers(0, 3))
        return "subject", draw(st.sampled_from([f"Patient/p{target}", f"p{target}"]))
    if kind == "missing":
        name = draw(st.sampled_from(["subject", "date", "value-quantity"]))
        return f"{name}:missing", draw(st.sampled_from(["true", "false"]))
    return "patient.family", draw(st.sampled_from(["smi", "sm", "nun", "o'", "x"]))


sort_keys = st.sampled_from(
    [
        "date",
        "-date",
        "code",
        "-code",
        "status",
        "-status",
        "value-quantity",
        "-value-quantity",
        "_id",
        "-_lastUpdated",
        "subject",
    ]
)


@st.composite
def observation_query(draw: Callable[..., Any]) -> list[tuple[str, str]]:
    pairs = draw(st.lists(observation_criterion(), max_size=3))
    if draw(st.booleans()):
        keys = draw(st.lists(sort_keys, min_size=1, max_size=2, unique_by=lambda k: k.lstrip("-")))
        pairs.append(("_sort", ",".join(keys)))
    pairs.append(("_count", str(draw(st.integers(1, 4)))))
    return pairs


@st.composite
def patient_query(draw: Callable[..., Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(
            st.sampled_from(
                ["family", "name", "family:exact", "family:contains", "has", "birthdate"]
            )
        )
        if kind == "has":
            pairs.append(("_has:Observation:patient:code", _token_text(draw)))
        elif kind == "birthdate":
            pairs.append(("birthdate", draw(prefixes) + draw(dates)[:10]))
        elif kind == "family:exact":
            pairs.append((kind, draw(st.sampled_from([*FAMILIES, "smith"]))))
        else:
            pairs.append((kind, draw(st.sampled_from(["smi", "SMY", "nu", "an", "ith", "o'n"]))))
    if draw(st.booleans()):
        pairs.append(
            (
                "_sort",
                draw(st.sampled_from(["family", "-family", "birthdate", "-birthdate", "name"])),
            )
        )
    pairs.append(("_count", str(draw(st.integers(1, 3)))))
    return pairs


# -- the reference filter ------------------------------------------------------------------


@dataclass
class Stored:
    """A stored resource as the reference sees it: its order, body and index rows."""

    order: int
    resource: dict[str, Any]
    rows: list[Any]

    @property
    def key(self) -> str:
        return f"{self.resource['resourceType']}/{self.resource['id']}"

    def param(self, name: str) -> list[Any]:
        return [row for row in self.rows if row.param == name]


def _token_matches(row: TokenEntry, text: str, primitive: bool) -> bool:
    if "|" not in text:
        return row.code == text
    system, code = text.split("|", 1)
    if not system:
        return row.code == code and row.system is None
    if not code:
        return row.system == system
    return row.code == code and (row.system == system or (primitive and row.system is None))


def _test(item: Stored, name: str, value: str, world: dict[str, Stored]) -> bool:
    base, _, modifier = name.partition(":")
    if base.startswith("_has"):
        source_type, ref, inner = name.split(":")[1:4]
        return any(
            other.resource["resourceType"] == source_type
            and any(
                isinstance(r, ReferenceEntry)
                and r.target_id == item.resource["id"]
                and r.target_type == item.resource["resourceType"]
                for r in other.param(ref)
            )
            and _test(other, inner, value, world)
            for other in world.values()
        )
    if "." in base:
        ref, inner = base.split(".", 1)
        targets = [world.get(f"{r.target_type}/{r.target_id}") for r in item.param(ref)]
        return any(t is not None and _test(t, inner, value, world) for t in targets)
    rows = item.param(base)
    if modifier == "missing":
        return (not rows) == (value == "true")
    values = value.split(",")
    kind = item.resource["resourceType"]
    if base in ("code", "status"):
        hit = any(_token_matches(r, v, base in PRIMITIVE) for r in rows for v in values)
        return not hit if modifier == "not" else hit
    if base in ("date", "birthdate"):
        parsed = parse_query(kind, [(base, value)]).criteria[0].values[0]
        assert isinstance(parsed, DateValue)
        return any(
            range_matches(parsed.prefix, parsed.low, parsed.high, r.low, r.high) for r in rows
        )
    if base == "value-quantity":
        parsed = parse_query(kind, [(base, value)]).criteria[0].values[0]
        assert isinstance(parsed, QuantityValue)
        return any(
            range_matches(parsed.prefix, parsed.low, parsed.high, r.low, r.high)
            and (
                (r.system == parsed.system and r.code == parsed.code)
                if parsed.system is not None
                else parsed.code is None or parsed.code in (r.code, r.unit)
            )
            for r in rows
        )
    if base == "subject":
        wanted = value.split("/")[-1]
        return any(r.target_id == wanted for r in rows)
    if base in ("family", "name"):
        folded = normalise_string(value)
        if modifier == "exact":
            return any(r.value_exact == value for r in rows)
        if modifier == "contains":
            return any(folded in r.value_norm for r in rows)
        return any(r.value_norm.startswith(folded) for r in rows)
    raise AssertionError(f"no reference rule for {name}")


def _sort_value(item: Stored, key: str) -> Any:
    descending = key.startswith("-")
    name = key.lstrip("-")
    if name == "_id":
        return item.resource["id"]
    if name == "_lastUpdated":
        return item.resource["meta"]["lastUpdated"]
    values: list[Any] = []
    for row in item.param(name):
        if isinstance(row, DateEntry):
            values.append(row.high if descending else row.low)
        elif isinstance(row, TokenEntry) and row.code is not None:
            values.append(row.code)
        elif isinstance(row, StringEntry):
            values.append(row.value_norm)
        elif isinstance(row, QuantityEntry):
            bound = row.value if row.value is not None else (row.high if descending else row.low)
            if bound is not None:
                values.append(Decimal(bound))
        elif isinstance(row, ReferenceEntry):
            values.append(
                row.url if row.target_id is None else f"{row.target_type}/{row.target_id}"
            )
    values = [v for v in values if v is not None]
    if not values:
        return None
    return max(values) if descending else min(values)


def _expected(
    world: dict[str, Stored], resource_type: str, pairs: list[tuple[str, str]]
) -> list[str]:
    criteria = [(k, v) for k, v in pairs if not k.startswith("_") or k.startswith("_has")]
    found = [
        item
        for item in world.values()
        if item.resource["resourceType"] == resource_type
        and all(_test(item, k, v, world) for k, v in criteria)
    ]
    found.sort(key=lambda item: item.order)
    sort = next((v for k, v in pairs if k == "_sort"), None)
    for key in reversed((sort or "").split(",") if sort else []):
        present = [i for i in found if _sort_value(i, key) is not None]
        missing = [i for i in found if _sort_value(i, key) is None]
        present.sort(key=lambda i, k=key: _sort_value(i, k), reverse=key.startswith("-"))
        found = present + missing
    # stable sorts applied last key first give the lexicographic order; ties keep creation order
    return [item.resource["id"] for item in found]


# -- running -------------------------------------------------------------------------------


def _load(engine: Engine, resources: list[dict[str, Any]]) -> dict[str, Stored]:
    ctx = RequestContext(request_id="model", base_url=BASE)
    world: dict[str, Stored] = {}
    with write_transaction(engine) as conn:
        storage.erase_everything(conn)
        for order, resource in enumerate(resources):
            if "id" in resource:
                result = interactions.update(
                    conn, ctx, resource["resourceType"], resource["id"], resource
                )
            else:
                result = interactions.create(conn, ctx, resource)
            stored = orjson.loads(result.version.content or b"{}")
            item = Stored(order, stored, extract(stored))
            world[item.key] = item
    return world


def _run(
    engine: Engine, resource_type: str, pairs: list[tuple[str, str]]
) -> tuple[list[str], int | None]:
    ctx = RequestContext(request_id="model", base_url=BASE)
    found: list[str] = []
    total = None
    params = list(pairs)
    pages = 0
    with read_transaction(engine) as conn:
        while True:
            bundle = orjson.loads(search.search_bundle(conn, ctx, resource_type, params))
            if total is None:
                total = bundle.get("total")
            found += [
                e["resource"]["id"]
                for e in bundle.get("entry", [])
                if e["search"]["mode"] == "match"
            ]
            nxt = [link["url"] for link in bundle.get("link", []) if link["relation"] == "next"]
            pages += 1
            assert pages < 50
            if not nxt:
                return found, total
            assert nxt[0].startswith(f"{BASE}/{resource_type}?")
            params = parse_qsl(urlsplit(nxt[0]).query)


SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(data=dataset(), queries=st.lists(observation_query(), min_size=1, max_size=4))
def test_observation_search_equals_reference(
    engine: Engine, data: list[dict[str, Any]], queries: list[list[tuple[str, str]]]
) -> None:
    world = _load(engine, data)
    for pairs in queries:
        decoded = [(k, v.replace("%2B", "+")) for k, v in pairs]
        expected = _expected(world, "Observation", decoded)
        found, total = _run(engine, "Observation", decoded)
        assert found == expected, decoded
        assert total == len(expected), decoded


@SETTINGS
@given(data=dataset(), queries=st.lists(patient_query(), min_size=1, max_size=4))
def test_patient_search_equals_reference(
    engine: Engine, data: list[dict[str, Any]], queries: list[list[tuple[str, str]]]
) -> None:
    world = _load(engine, data)
    for pairs in queries:
        expected = _expected(world, "Patient", pairs)
        found, total = _run(engine, "Patient", pairs)
        assert found == expected, pairs
        assert total == len(expected), pairs


def test_reference_sees_datetimes_as_aware() -> None:
    rows = extract(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "effectiveDateTime": "2020-01-01",
        }
    )
    dated = [r for r in rows if isinstance(r, DateEntry)]
    assert dated and isinstance(dated[0].low, datetime) and dated[0].low.tzinfo is not None
