"""The shipped Questionnaires' FHIRPath evaluated by the register on real (Synthea) records.

Two Synthea patients (one with prediabetes) are loaded over HTTP as transaction Bundles, their
dates shifted so that they attend today. ``$populate`` of both Questionnaires and ``$summary``
then run through the register (SQL, visibility, stored bytes); the reference is the pure engine
over the same records read straight from the file. Every item must end the same way with the
same values, and no expression may fail.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from fhir_adapters.sdc import (
    CANDIDATES,
    FILLED,
    LAST_KNOWN,
    LAST_KNOWN_URL,
    NOT_ANSWERABLE,
    PREFILL_CANDIDATE_URL,
    populate,
)
from tests.ask_once.conftest import questionnaire
from tests.ask_once.synthea import attending_now, load_patient
from tests.conftest import shared_data

PATIENTS = (
    "Alfreda_Wyman_3287b938-4670-47eb-91e5-e0ce3df71405.json",  # prediabetes
    "Tom_Goodwin_e20de9eb-6f2d-4871-a43f-bbede53293ed.json",
)
NAMES = ("admission-clerking", "diabetes-annual-review")


def _status(item: dict[str, Any]) -> str:
    urls = {e["url"] for e in item.get("extension", [])}
    if item.get("answer"):
        return FILLED
    if LAST_KNOWN_URL in urls:
        return LAST_KNOWN
    if PREFILL_CANDIDATE_URL in urls:
        return CANDIDATES
    return NOT_ANSWERABLE


def _leaves(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    stack = list(response.get("item", []))
    while stack:
        item = stack.pop()
        if item.get("item"):
            stack.extend(item["item"])
        else:
            found[item["linkId"]] = item
    return found


def _values(item: dict[str, Any]) -> list[str]:
    """The answer values, references left out (the register gives records new ids)."""
    return sorted(
        orjson.dumps(
            {k: v for k, v in a.items() if k.startswith("value") and k != "valueReference"},
            option=orjson.OPT_SORT_KEYS,
        ).decode()
        for a in item.get("answer", [])
    )


@pytest.mark.parametrize("name", PATIENTS)
def test_questionnaire_expressions_on_synthea_records_through_the_register(
    client: TestClient, name: str
) -> None:
    path = shared_data("synthea") / name
    raw, _ = attending_now(path)
    loaded = client.post("/fhir", content=raw, headers={"Content-Type": "application/fhir+json"})
    assert loaded.status_code == 200, loaded.text[:500]
    patient_id = next(
        e["response"]["location"].split("/")[1]
        for e in loaded.json()["entry"]
        if e["response"]["location"].startswith("Patient/")
    )
    reference = load_patient(path, raw)
    filled = 0
    for form in NAMES:
        shipped = questionnaire(form)
        response = client.get(
            "/fhir/Questionnaire/$populate",
            params={"subject": f"Patient/{patient_id}", "questionnaire": shipped["url"]},
        )
        assert response.status_code == 200, response.text[:500]
        parameters = response.json()["parameter"]
        assert [p["name"] for p in parameters] == ["response"], parameters[1:]  # no issues
        served = _leaves(parameters[0]["resource"])
        expected, report = populate(
            shipped,
            patient=reference.patient,
            fetch=reference.fetch(),
            now=datetime.now(UTC),
        )
        assert not report.issues and not any(i.problems for i in report.items)
        wanted = _leaves(expected)
        assert served.keys() == wanted.keys()
        for link_id, item in wanted.items():
            assert _status(served[link_id]) == _status(item), (form, link_id)
            assert _values(served[link_id]) == _values(item), (form, link_id)
        filled += report.count(FILLED)
    assert filled > 0
    summary = client.get(f"/fhir/Patient/{patient_id}/$summary")
    assert summary.status_code == 200
    bundle = summary.json()
    assert bundle["type"] == "document" and len(bundle["entry"]) > 2
