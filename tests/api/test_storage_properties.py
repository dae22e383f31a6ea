"""Properties of versioned storage, checked on random operation sequences over HTTP.

The reference model is a plain dict of id -> list of versions (None for a deletion).
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from register import storage
from register.db import write_transaction

NAMES = st.text(alphabet=st.characters(categories=["L"]), min_size=1, max_size=12)
PATIENT = st.fixed_dictionaries(
    {
        "resourceType": st.just("Patient"),
        "name": st.lists(
            st.fixed_dictionaries(
                {"family": NAMES, "given": st.lists(NAMES, min_size=1, max_size=2)}
            ),
            min_size=1,
            max_size=2,
        ),
    },
    optional={
        "gender": st.sampled_from(["male", "female", "other", "unknown"]),
        "active": st.booleans(),
        "birthDate": st.dates().map(lambda d: d.isoformat()),
    },
)
IDS = st.sampled_from(["a", "b", "c", "d"])
OPERATION = st.one_of(
    st.tuples(st.just("create"), PATIENT),
    st.tuples(st.just("put"), IDS, PATIENT),
    st.tuples(st.just("delete"), IDS),
    st.tuples(st.just("patch"), IDS, st.sampled_from(["male", "female"])),
)
RELAXED = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _reset(engine: Engine) -> None:
    with write_transaction(engine) as conn:
        storage.erase_everything(conn)


def _content(resource: dict) -> dict:
    return {k: v for k, v in resource.items() if k not in ("meta", "id")}


@RELAXED
@given(operations=st.lists(OPERATION, min_size=1, max_size=12))
def test_history_is_complete_and_reads_return_what_was_stored(client, engine, operations):
    _reset(engine)
    model: dict[str, list[dict | None]] = {}
    stored_bytes: dict[str, bytes] = {}
    for op in operations:
        kind = op[0]
        if kind == "create":
            response = client.post("/fhir/Patient", json=op[1])
            assert response.status_code == 201
            rid = response.json()["id"]
            model[rid] = [op[1]]
            stored_bytes[rid] = response.content
        elif kind == "put":
            rid, resource = op[1], {**op[2], "id": op[1]}
            response = client.put(f"/fhir/Patient/{rid}", json=resource)
            existed = bool(model.get(rid)) and model[rid][-1] is not None
            assert response.status_code == (200 if existed else 201)
            model.setdefault(rid, []).append(resource)
            stored_bytes[rid] = response.content
        elif kind == "delete":
            rid = op[1]
            response = client.delete(f"/fhir/Patient/{rid}")
            assert response.status_code == 204
            if model.get(rid) and model[rid][-1] is not None:
                model[rid].append(None)
        else:
            rid, gender = op[1], op[2]
            response = client.patch(
                f"/fhir/Patient/{rid}",
                content=json.dumps([{"op": "add", "path": "/gender", "value": gender}]),
                headers={"Content-Type": "application/json-patch+json"},
            )
            if not model.get(rid):
                assert response.status_code == 404
                continue
            if model[rid][-1] is None:
                assert response.status_code == 410
                continue
            assert response.status_code == 200
            model[rid].append({**model[rid][-1], "gender": gender})
            stored_bytes[rid] = response.content

        for rid, versions in model.items():
            read = client.get(f"/fhir/Patient/{rid}")
            if versions[-1] is None:
                assert read.status_code == 410
            else:
                assert read.status_code == 200
                assert read.content == stored_bytes[rid]
                assert _content(read.json()) == _content(versions[-1])
            history = client.get(f"/fhir/Patient/{rid}/_history", params={"_count": 100}).json()
            version_ids = [int(e["response"]["etag"][3:-1]) for e in history["entry"]]
            assert version_ids == list(range(len(versions), 0, -1))  # strictly increasing, no gaps
            for entry, expected in zip(history["entry"], reversed(versions), strict=True):
                if expected is None:
                    assert entry["request"]["method"] == "DELETE" and "resource" not in entry
                else:
                    assert _content(entry["resource"]) == _content(expected)


BAD_RESOURCES = st.sampled_from(
    [
        {"resourceType": "Observation", "code": {"text": "x"}},  # status missing
        {"resourceType": "Patient", "gender": "sometimes"},
        {"resourceType": "Patient", "birthDate": "31/12/1999"},
        {"resourceType": "Patient", "unknownElement": True},
    ]
)


@RELAXED
@given(
    good=st.lists(PATIENT, min_size=1, max_size=6),
    bad=BAD_RESOURCES,
    position=st.integers(min_value=0, max_value=6),
)
def test_transaction_with_one_bad_entry_changes_nothing(client, engine, good, bad, position):
    _reset(engine)
    client.put("/fhir/Patient/existing", json={"resourceType": "Patient", "id": "existing"})
    before = client.get("/fhir/_history").content
    entries = [{"resource": r, "request": {"method": "POST", "url": "Patient"}} for r in good]
    entries.append(
        {
            "resource": {"resourceType": "Patient", "id": "existing", "active": False},
            "request": {"method": "PUT", "url": "Patient/existing"},
        }
    )
    entries.insert(
        min(position, len(entries)),
        {"resource": bad, "request": {"method": "POST", "url": bad["resourceType"]}},
    )
    response = client.post(
        "/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": entries}
    )
    assert response.status_code in (400, 422)
    after = client.get("/fhir/_history")
    assert [e["fullUrl"] for e in after.json().get("entry", [])] == [
        e["fullUrl"] for e in json.loads(before).get("entry", [])
    ]
    assert client.get("/fhir/Patient/existing").json()["meta"]["versionId"] == "1"
