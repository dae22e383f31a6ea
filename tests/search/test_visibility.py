"""The access policy inside every search statement: hidden resources never show or count.

A fake Visibility stands in for the access-control engine: it hides resources by id, by the
patient whose record they are (``resource.patient_id``) and by a security label (an EXISTS on
the token index, as the real policy may). Whatever the route into the data (match, chain,
``_has``, include, total, paging, compartment, ``$everything``, conditional match), nothing
hidden is returned or makes something else match.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, Table, and_, exists, or_
from sqlalchemy.sql.expression import ColumnElement

from register import interactions, search
from register.context import RequestContext
from register.db import read_transaction, write_transaction
from register.errors import FhirError
from register.everything import everything_bundle
from register.search_schema import token_table
from tests.search.conftest import next_link

V3 = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
BASE = "http://test/fhir"


class HideSome:
    """Hides resources by id, by owning patient, and those labelled restricted (R)."""

    def __init__(self, ids: set[str], patients: set[str]) -> None:
        self.ids = sorted(ids)
        self.patients = sorted(patients)

    def resource_clause(self, resource: Table) -> ColumnElement[bool]:
        labelled = exists().where(
            token_table.c.resource_pk == resource.c.pk,
            token_table.c.param == "_security",
            token_table.c.code == "R",
        )
        return and_(
            resource.c.resource_id.not_in(self.ids),
            or_(resource.c.patient_id.is_(None), resource.c.patient_id.not_in(self.patients)),
            ~labelled,
        )


def _put(conn: Any, resource: dict[str, Any]) -> None:
    ctx = RequestContext(request_id="seed", base_url=BASE)
    interactions.update(conn, ctx, resource["resourceType"], resource["id"], resource)


def _obs(rid: str, subject: str, code: str, performer: str | None = None, **extra: Any) -> dict:
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": subject},
        **extra,
    }
    if performer:
        body["performer"] = [{"reference": performer}]
    return body


@pytest.fixture
def seeded(engine: Engine) -> Iterator[Engine]:
    with write_transaction(engine) as conn:
        for rid, family in (("ann", "Smith"), ("hal", "Hidden")):
            _put(conn, {"resourceType": "Patient", "id": rid, "name": [{"family": family}]})
        _put(conn, {"resourceType": "Practitioner", "id": "spy", "name": [{"family": "Secret"}]})
        _put(conn, {"resourceType": "Practitioner", "id": "doc", "name": [{"family": "Open"}]})
        _put(
            conn,
            {"resourceType": "Practitioner", "id": "only-secret", "name": [{"family": "Quiet"}]},
        )
        _put(conn, _obs("o1", "Patient/ann", "4548-4", "Practitioner/spy"))
        _put(conn, _obs("o2", "Patient/ann", "4548-4", "Practitioner/doc"))
        _put(conn, _obs("o3", "Patient/ann", "4548-4", "Practitioner/doc"))
        _put(
            conn,
            _obs(
                "secret",
                "Patient/ann",
                "hiv-test",
                "Practitioner/only-secret",
                meta={"security": [{"system": V3, "code": "R"}]},
            ),
        )
        _put(conn, _obs("hal-obs", "Patient/hal", "4548-4", "Practitioner/doc"))
    yield engine


@pytest.fixture
def ctx() -> RequestContext:
    return RequestContext(
        request_id="t", base_url=BASE, visibility=HideSome({"hal", "spy"}, {"hal"})
    )


def _search(engine: Engine, ctx: RequestContext, url: str, **kw: Any) -> dict[str, Any]:
    path, _, query = url.partition("?")
    from urllib.parse import parse_qsl

    with read_transaction(engine) as conn:
        body = search.search_bundle(conn, ctx, path, parse_qsl(query), **kw)
    return dict(orjson.loads(body))


def _ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def test_matches_totals_and_paging(seeded: Engine, ctx: RequestContext) -> None:
    assert _ids(_search(seeded, ctx, "Patient")) == ["ann"]
    bundle = _search(seeded, ctx, "Observation?code=4548-4&_count=1&_total=accurate")
    assert bundle["total"] == 3
    seen = _ids(bundle)
    while (link := next_link(bundle)) is not None:
        bundle = _search(seeded, ctx, link.removeprefix(f"{BASE}/"))
        seen += _ids(bundle)
    assert seen == ["o1", "o2", "o3"]  # o1 is visible; only its performer is hidden
    assert _search(seeded, ctx, "Observation?_summary=count")["total"] == 3
    assert _ids(_search(seeded, ctx, "Observation?_sort=-code,-_id")) == ["o3", "o2", "o1"]
    assert _ids(_search(seeded, ctx, "Observation?code=hiv-test")) == []
    assert _ids(_search(seeded, ctx, "Observation?code:not=4548-4")) == []


def test_chains_do_not_match_through_hidden_targets(seeded: Engine, ctx: RequestContext) -> None:
    assert _ids(_search(seeded, ctx, "Observation?performer:Practitioner.name=secret")) == []
    assert _ids(_search(seeded, ctx, "Observation?performer.name=secret&_id=o1")) == []
    assert _ids(_search(seeded, ctx, "Observation?performer.name=open")) == ["o2", "o3"]
    assert _ids(_search(seeded, ctx, "Observation?subject.name=hidden")) == []


def test_has_does_not_match_through_hidden_sources(seeded: Engine, ctx: RequestContext) -> None:
    assert _ids(_search(seeded, ctx, "Patient?_has:Observation:patient:code=hiv-test")) == []
    assert (
        _ids(_search(seeded, ctx, "Patient?_has:Observation:patient:code=hiv-test&_id=ann")) == []
    )
    assert _ids(_search(seeded, ctx, "Practitioner?_has:Observation:performer:code=hiv-test")) == []
    assert _ids(_search(seeded, ctx, "Practitioner?_has:Observation:performer:code=4548-4")) == [
        "doc"
    ]


def test_includes_leave_hidden_resources_out(seeded: Engine, ctx: RequestContext) -> None:
    bundle = _search(seeded, ctx, "Observation?_include=Observation:performer")
    assert _ids(bundle, "include") == ["doc"]
    bundle = _search(
        seeded, ctx, "Patient?_revinclude=Observation:patient&_revinclude=Observation:subject"
    )
    assert sorted(_ids(bundle, "include")) == ["o1", "o2", "o3"]
    bundle = _search(seeded, ctx, "Observation?_include=*&_include:iterate=*")
    assert sorted(_ids(bundle, "include")) == ["ann", "doc"]


def test_compartment_and_everything(seeded: Engine, ctx: RequestContext) -> None:
    assert _ids(_search(seeded, ctx, "Observation", compartment="ann")) == ["o1", "o2", "o3"]
    assert _ids(_search(seeded, ctx, "Observation", compartment="hal")) == []
    with read_transaction(seeded) as conn:
        body = orjson.loads(everything_bundle(conn, ctx, "ann", []))
        found = [e["resource"]["id"] for e in body["entry"]]
        assert found == ["ann", "o1", "o2", "o3", "doc"]  # not spy, not only-secret
        with pytest.raises(FhirError) as hidden:
            everything_bundle(conn, ctx, "hal", [])
        assert hidden.value.status == 404


def test_conditional_matches_see_only_visible(seeded: Engine, ctx: RequestContext) -> None:
    with read_transaction(seeded) as conn:
        assert search.find_matches(conn, ctx, "Patient", [("name", "hidden")]) == []
        assert search.find_matches(conn, ctx, "Observation", [("_id", "secret")]) == []
        found = search.find_matches(conn, ctx, "Observation", [("code", "4548-4")])
        assert [v.resource_id for v in found] == ["o1", "o2", "o3"]


def test_everything_visible_without_the_policy(seeded: Engine) -> None:
    """The same data with no policy: the hidden resources are really there."""
    open_ctx = RequestContext(request_id="t", base_url=BASE)
    assert len(_ids(_search(seeded, open_ctx, "Observation?code=4548-4"))) == 4
    assert _ids(_search(seeded, open_ctx, "Observation?performer.name=secret")) == ["o1"]
    assert _ids(_search(seeded, open_ctx, "Patient?_has:Observation:patient:code=hiv-test")) == [
        "ann"
    ]
