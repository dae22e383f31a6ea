"""Tell us what went wrong: a patient's report through the page becomes a patient-reported
finding counted by the review; the form needs CSRF and a patient reports only for themselves."""

from __future__ import annotations

import html

import orjson
from sqlalchemy import select

from register.schema import resource_table as R
from tests.web.helpers import csrf_token, sign_in, text_of


def _issues(engine) -> list[dict]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        rows = conn.execute(
            select(R.c.content).where(R.c.resource_type == "DetectedIssue")
        ).scalars()
        return [orjson.loads(r) for r in rows]


def _patient_reported(issues: list[dict]) -> list[dict]:
    return [
        i
        for i in issues
        if any(t.get("code") == "patient-reported" for t in (i.get("meta") or {}).get("tag", []))
    ]


def test_a_report_becomes_a_patient_reported_finding_in_the_review(
    browser_client, other_browser, engine
) -> None:
    sign_in(browser_client, "margaret")
    form = browser_client.get("/my/report")
    assert form.status_code == 200 and "Tell us what went wrong" in form.text
    assert 'href="/my/report"' in browser_client.get("/my").text  # in the navigation
    before = _patient_reported(_issues(engine))
    sent = browser_client.post(
        "/my/report",
        data={
            "csrf_token": csrf_token(form.text),
            "kind": "asked-again",
            "question": "allergies",
            "date": "2026-01-05",
            "organisation": "Y01001",
            "note": "Asked about my penicillin allergy again",
            "patient": "someone-else",  # the page reports for the signed-in patient only
        },
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    assert "your report was sent" in text_of(browser_client.get(sent.headers["location"]).text)
    [issue] = [i for i in _patient_reported(_issues(engine)) if i not in before]
    assert issue["patient"] == {"reference": "Patient/demo-margaret-thompson"}
    assert "penicillin" in issue["detail"]
    sign_in(other_browser, "reviewer")
    review = other_browser.get("/reviewer/counts.csv", params={"by": "source"})
    assert review.status_code == 200
    assert "patient-reported" in review.text
    assert "penicillin" not in review.text


def test_the_form_needs_its_csrf_token(browser_client, engine) -> None:
    sign_in(browser_client, "margaret")
    before = len(_issues(engine))
    answer = browser_client.post("/my/report", data={"kind": "test-repeated"})
    assert answer.status_code == 403
    assert len(_issues(engine)) == before


def test_errors_are_summarised_and_nothing_is_sent(browser_client, engine) -> None:
    sign_in(browser_client, "margaret")
    form = browser_client.get("/my/report")
    before = len(_issues(engine))
    answer = browser_client.post(
        "/my/report",
        data={"csrf_token": csrf_token(form.text), "date": "2999-01-01", "question": "x"},
    )
    assert answer.status_code == 400
    assert "nhsuk-error-summary" in answer.text
    assert 'href="#kind-asked-again"' in answer.text and 'href="#date"' in answer.text
    assert len(_issues(engine)) == before


def test_a_clinician_cannot_use_the_patient_form(other_browser) -> None:
    sign_in(other_browser, "dr.patel")
    answer = other_browser.get("/my/report", follow_redirects=False)
    assert answer.status_code in (303, 403)


def _feedback(client, theme: str, comment: str = ""):  # type: ignore[no-untyped-def]
    form = client.get("/my/report")
    return client.post(
        "/my/feedback",
        data={"csrf_token": csrf_token(form.text), "theme": theme, "comment": comment},
        follow_redirects=False,
    )


def test_feedback_themes_are_counted_small_numbers_suppressed_words_never_shown(
    browser_client, other_browser, engine
) -> None:
    sign_in(browser_client, "margaret")
    secret = "Dr Smith at the walk-in centre lost my notes"
    for _ in range(5):
        assert _feedback(browser_client, "waiting", secret).status_code == 303
    assert _feedback(browser_client, "communication").status_code == 303
    with engine.connect() as conn:
        rows = conn.execute(
            select(R.c.content).where(R.c.resource_type == "QuestionnaireResponse")
        ).scalars()
        stored = [orjson.loads(r) for r in rows]
    assert sum(secret in orjson.dumps(r).decode() for r in stored) == 5  # in the patient's record
    sign_in(other_browser, "reviewer")
    page = other_browser.get("/reviewer/feedback")
    assert page.status_code == 200
    words = html.unescape(text_of(page.text))
    assert "Waiting 5" in words  # five or more: the number
    assert "Communication <5" in words  # fewer than five: suppressed
    assert secret not in page.text and "walk-in" not in page.text
    assert "Margaret" not in words and "demo-margaret-thompson" not in page.text


def test_feedback_needs_a_theme_and_its_csrf_token(browser_client, engine) -> None:
    sign_in(browser_client, "margaret")
    answer = _feedback(browser_client, "")
    assert answer.status_code == 400 and 'href="#theme-0"' in answer.text
    refused = browser_client.post("/my/feedback", data={"theme": "waiting"})
    assert refused.status_code == 403
    with engine.connect() as conn:
        count = conn.execute(
            select(R.c.pk).where(R.c.resource_type == "QuestionnaireResponse")
        ).all()
    assert count == []


def test_the_feedback_page_is_for_reviewers_only(browser_client) -> None:
    sign_in(browser_client, "margaret")
    answer = browser_client.get("/reviewer/feedback", follow_redirects=False)
    assert answer.status_code in (303, 403)
