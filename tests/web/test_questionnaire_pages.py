"""The clinician's pre-filled questionnaire: confirm or change each answer, submit it."""

from __future__ import annotations

import orjson
from sqlalchemy import select

from fhir_adapters.sdc import PREFILL_SOURCE_URL
from register.schema import resource_table as R
from tests.web.helpers import csrf_token, sign_in, text_of

PATH = "/clinician/patients/demo-margaret-thompson/questionnaires/diabetes-annual-review"


def _responses(engine) -> list[dict]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        rows = conn.execute(
            select(R.c.content).where(R.c.resource_type == "QuestionnaireResponse")
        ).scalars()
        return [orjson.loads(row) for row in rows]


def test_prefilled_answers_say_where_they_came_from(browser_client) -> None:
    sign_in(browser_client, "dr.patel")
    words = text_of(browser_client.get(PATH).text)
    assert "Type 2 diabetes mellitus (recorded by Riverside Medical Practice, 3 May 2016)" in words
    # an HbA1c older than the item's link period is offered, not filled
    assert "Last known: 53 mmol/mol (recorded by Riverside Medical Practice, 17 June 2025)" in words


def test_confirmed_answers_keep_their_source_and_new_ones_do_not(browser_client, engine) -> None:
    sign_in(browser_client, "dr.patel")
    form = browser_client.get(PATH)
    answer = browser_client.post(
        PATH,
        data={
            "csrf_token": csrf_token(form.text),
            "q-diagnosis-keep": "keep",
            "q-hba1c": "50",
            "q-foot-examination": "2026-11-20",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303
    [response] = _responses(engine)
    assert response["status"] == "completed"
    assert response["subject"] == {"reference": "Patient/demo-margaret-thompson"}
    items = {i["linkId"]: i for i in response["item"]}
    diagnosis = items["diagnosis"]["answer"][0]
    assert diagnosis["valueCoding"]["code"] == "44054006"
    assert [e["url"] for e in diagnosis["extension"]] == [PREFILL_SOURCE_URL]
    hba1c = items["hba1c"]["answer"][0]
    assert hba1c["valueQuantity"]["value"] == 50 and "extension" not in hba1c
    assert items["foot-examination"]["answer"] == [{"valueDate": "2026-11-20"}]
    assert "bmi" not in items  # left blank: not answered


def test_a_changed_answer_replaces_the_prefill(browser_client, engine) -> None:
    sign_in(browser_client, "dr.patel")
    form = browser_client.get(PATH)
    browser_client.post(
        PATH,
        data={
            "csrf_token": csrf_token(form.text),
            "q-diagnosis-keep": "change",
            "q-diagnosis": "Type 1 diabetes",
        },
    )
    [response] = _responses(engine)
    [item] = [i for i in response["item"] if i["linkId"] == "diagnosis"]
    assert item["answer"] == [{"valueString": "Type 1 diabetes"}]


def test_bad_answers_are_named_and_nothing_is_written(browser_client, engine) -> None:
    sign_in(browser_client, "dr.patel")
    form = browser_client.get(PATH)
    answer = browser_client.post(
        PATH,
        data={"csrf_token": csrf_token(form.text), "q-diagnosis-keep": "keep", "q-hba1c": "high"},
    )
    assert answer.status_code == 400
    assert 'href="#q-hba1c"' in answer.text and "There is a problem" in answer.text
    assert _responses(engine) == []


def test_no_prefill_from_a_record_the_clinician_cannot_see(browser_client) -> None:
    sign_in(browser_client, "dr.okafor")  # the hospital: no relationship yet
    answer = browser_client.get(PATH)
    assert answer.status_code == 404
    assert "Type 2 diabetes" not in answer.text and "53 mmol/mol" not in answer.text
