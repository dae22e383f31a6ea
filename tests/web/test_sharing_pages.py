"""My sharing choices: confirmed, saved as the patient's Consent, in force on the next request."""

from __future__ import annotations

import orjson
from sqlalchemy import select

from register.schema import resource_table as R
from tests.web.helpers import csrf_token, sign_in, text_of

TIMELINE = "/clinician/patients/demo-margaret-thompson"


def _choose(client, choice: str, organisations=(), share=()) -> str:  # type: ignore[no-untyped-def]
    form = client.get("/my/sharing")
    data = {
        "csrf_token": csrf_token(form.text),
        "choice": choice,
        "organisation": list(organisations),
        "share": list(share),
    }
    check = client.post("/my/sharing", data=data)
    assert check.status_code == 200 and "Check your sharing choices" in check.text
    saved = client.post("/my/sharing", data={**data, "confirm": "yes"}, follow_redirects=False)
    assert saved.status_code == 303
    return text_of(client.get(saved.headers["location"]).text)


def _consents(engine) -> list[dict]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        rows = conn.execute(select(R.c.content).where(R.c.resource_type == "Consent")).scalars()
        return [orjson.loads(r) for r in rows]


def test_nothing_is_saved_before_it_is_confirmed(browser_client, engine) -> None:
    sign_in(browser_client, "margaret")
    form = browser_client.get("/my/sharing")
    answer = browser_client.post(
        "/my/sharing", data={"csrf_token": csrf_token(form.text), "choice": "none"}
    )
    assert "Confirm and save" in answer.text
    assert _consents(engine) == []


def test_opting_out_applies_to_the_next_request(browser_client, other_browser, engine) -> None:
    sign_in(other_browser, "dr.patel")
    before = text_of(other_browser.get(TIMELINE).text)
    assert "Urine ACR" in before  # recorded by the diabetes team, shared with the GP
    sign_in(browser_client, "margaret")
    words = _choose(browser_client, "none")
    assert "Your choices are saved" in words
    [consent] = _consents(engine)
    assert consent["provision"] == {"type": "deny"}
    assert consent["patient"] == {"reference": "Patient/demo-margaret-thompson"}
    after = text_of(other_browser.get(TIMELINE).text)
    assert "Urine ACR" not in after  # the diabetes team's record is no longer shared
    assert "Type 2 diabetes" in after  # what the GP recorded itself stays visible to it
    assert "Items excluded" in after  # and the GP is told that something was withheld


def test_sharing_with_some_organisations(browser_client, other_browser, engine) -> None:
    sign_in(browser_client, "margaret")
    words = _choose(browser_client, "some", organisations=["Y01001"], share=["mental-health"])
    assert "Your choices are saved" in words
    sign_in(other_browser, "dr.patel")
    assert "Urine ACR" in text_of(other_browser.get(TIMELINE).text)  # the GP was chosen
    [consent] = _consents(engine)
    [permit] = consent["provision"]["provision"]
    assert permit["actor"][0]["reference"]["identifier"]["value"] == "Y01001"
    assert permit["provision"][0]["securityLabel"][0]["code"]
    # the page reads the choice back from the Consent
    page = browser_client.get("/my/sharing").text
    assert 'value="some" checked' in page and 'value="Y01001" checked' in page
    # a second change is a new version of the same Consent
    _choose(browser_client, "all")
    [consent] = _consents(engine)
    assert consent["provision"]["type"] == "permit" and consent["meta"]["versionId"] == "2"


def test_some_without_an_organisation_is_refused(browser_client) -> None:
    sign_in(browser_client, "margaret")
    form = browser_client.get("/my/sharing")
    answer = browser_client.post(
        "/my/sharing", data={"csrf_token": csrf_token(form.text), "choice": "some"}
    )
    assert answer.status_code == 400 and "Choose at least one organisation" in answer.text
