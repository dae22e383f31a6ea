"""Each audience's main journey over HTTP, without JavaScript, on SQLite and PostgreSQL.

What a page shows comes from the FHIR API as the signed-in person, so these tests also check that
a page never shows more than the policy allows (a hospital clinician sees nothing of a patient
until the attendance is recorded or break-glass is declared).
"""

from __future__ import annotations

import re

from sqlalchemy import select

from register.access_schema import break_glass_table
from tests.web.helpers import csrf_token, sign_in, text_of


def test_sign_in_page_lists_the_demo_users(browser_client) -> None:
    words = text_of(browser_client.get("/sign-in").text)
    for username in ("margaret", "dr.okafor", "reviewer", "privacy"):
        assert username in words


def test_each_person_lands_on_their_audience_page(browser_client) -> None:
    assert sign_in(browser_client, "margaret") == "/my"
    assert sign_in(browser_client, "dr.patel") == "/clinician"
    assert sign_in(browser_client, "reviewer") == "/reviewer"
    assert sign_in(browser_client, "privacy") == "/privacy"


def test_pages_of_another_audience_send_you_to_sign_in(browser_client) -> None:
    sign_in(browser_client, "margaret")
    for path in ("/clinician", "/clinician/patients/demo-david-hughes", "/reviewer", "/privacy"):
        answer = browser_client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/sign-in", path


def test_patient_summary_reads_without_javascript(browser_client) -> None:
    sign_in(browser_client, "margaret")
    page = browser_client.get("/my")
    assert page.status_code == 200
    words = text_of(page.text)
    assert "Type 2 diabetes" in words and "Metformin" in words
    # the HbA1c trend is a table as well as a chart: every value readable with no script
    for value in ("62 mmol/mol", "58 mmol/mol", "55 mmol/mol", "53 mmol/mol"):
        assert value in words
    assert "HbA1c over time" in words
    assert "recorded by Riverside Medical Practice" in words
    assert "recorded by Community Diabetes Team" in words
    assert "not recorded" not in words  # every item has its organisation
    # appointments (her encounters) and the care team that looks after her
    assert "Recent and upcoming appointments" in words and "Your care team" in words


def test_patient_summary_shows_only_the_patients_own_record(browser_client) -> None:
    sign_in(browser_client, "margaret")
    words = text_of(browser_client.get("/my").text)
    assert "Margaret Thompson" in words
    for other in ("David Hughes", "Priya Sharma", "Graham Wilson"):
        assert other not in words


def test_clinician_finds_by_nhs_number_only_with_a_valid_check_digit(browser_client) -> None:
    sign_in(browser_client, "dr.patel")
    bad = browser_client.get("/clinician?nhs=9990000019")
    assert bad.status_code == 400 and "valid 10-digit NHS number" in bad.text
    good = text_of(browser_client.get("/clinician?nhs=999 000 0018").text)
    assert "Margaret Thompson" in good  # the GP practice cares for her


def test_clinician_finds_by_name_and_birth_date(browser_client) -> None:
    sign_in(browser_client, "dr.patel")
    words = text_of(browser_client.get("/clinician?family=thompson&birthdate=1954-03-12").text)
    assert "Margaret Thompson" in words and "999 000 0018" in words
    wrong = browser_client.get("/clinician?family=thompson&birthdate=12/03/1954")
    assert wrong.status_code == 400


def test_hospital_attendance_opens_the_record(browser_client) -> None:
    sign_in(browser_client, "dr.okafor")
    before = browser_client.get("/clinician/patients/demo-margaret-thompson")
    assert before.status_code == 404  # no relationship yet: nothing shown
    assert "Type 2 diabetes" not in before.text
    found = browser_client.get("/clinician?nhs=9990000018")
    assert "Margaret Thompson" not in text_of(found.text)
    answer = browser_client.post(
        "/clinician/attendance",
        data={"csrf_token": csrf_token(found.text), "nhs": "9990000018", "class": "EMER"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    timeline = browser_client.get(answer.headers["location"])
    assert timeline.status_code == 200
    words = text_of(timeline.text)
    assert "The attendance is recorded" in words
    assert "Emergency department" in words and "Type 2 diabetes" in words
    assert "recorded by Riverside Medical Practice" in words
    assert "recorded by Community Diabetes Team" in words
    assert "recorded by Northbridge General Hospital" in words


def test_timeline_filters_by_type(browser_client) -> None:
    sign_in(browser_client, "dr.patel")
    path = "/clinician/patients/demo-margaret-thompson?type=Condition"
    only = text_of(browser_client.get(path).text)
    assert "Type 2 diabetes" in only and "HbA1c" not in only.split("Timeline", 1)[1]


def test_break_glass_opens_the_record_marks_the_session_and_joins_the_queue(
    browser_client, other_browser, engine
) -> None:
    sign_in(browser_client, "dr.okafor")
    found = browser_client.get("/clinician?nhs=9990000026")
    short = browser_client.post(
        "/clinician/break-glass",
        data={"csrf_token": csrf_token(found.text), "nhs": "9990000026", "reason": "urgent"},
        follow_redirects=False,
    )
    assert short.status_code == 400  # a reason must be typed out
    reason = "Unconscious on arrival by ambulance, no history available"
    answer = browser_client.post(
        "/clinician/break-glass",
        data={"csrf_token": csrf_token(found.text), "nhs": "9990000026", "reason": reason},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    timeline = text_of(browser_client.get(answer.headers["location"]).text)
    assert "David Hughes" in timeline and "Emergency access" in timeline and reason in timeline
    # marked on every later page of the session
    assert "Emergency (break-glass) access in use" in text_of(browser_client.get("/clinician").text)
    with engine.connect() as conn:
        grants = conn.execute(select(break_glass_table.c.reason)).scalars().all()
    assert grants == [reason]
    # and the privacy officer sees it in the audit log's review queue, and marks it
    sign_in(other_browser, "privacy")
    queue = other_browser.get("/privacy")
    assert reason in text_of(queue.text)
    action = re.search(r'action="(/privacy/[^"]+)"', queue.text)
    assert action is not None
    marked = other_browser.post(
        action.group(1),
        data={"csrf_token": csrf_token(queue.text), "verdict": "appropriate", "note": "ED, fine"},
        follow_redirects=False,
    )
    assert marked.status_code == 303
    assert reason not in text_of(other_browser.get("/privacy").text)
    everything = text_of(other_browser.get("/privacy?show=all").text)
    assert reason in everything and "Appropriate by privacy" in everything
    assert "ED, fine" in everything


def _repeat_hba1c_tests(app, token_for, count: int) -> None:  # type: ignore[no-untyped-def]
    """The diabetes team repeats Margaret's HbA1c every few days (each one a finding)."""
    from fastapi.testclient import TestClient

    token = token_for("system", org="Y02002")
    with TestClient(app, base_url="http://testserver") as api:
        for n in range(count):
            observation = {
                "resourceType": "Observation",
                "status": "final",
                "code": {
                    "coding": [{"system": "http://loinc.org", "code": "59261-8"}],
                    "text": "HbA1c",
                },
                "subject": {"reference": "Patient/demo-margaret-thompson"},
                "effectiveDateTime": f"2025-07-{2 + 3 * n:02d}T09:00:00Z",
                "valueQuantity": {"value": 50 + n, "unit": "mmol/mol"},
            }
            answer = api.post(
                "/fhir/Observation", json=observation, headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status_code == 201, answer.text


def test_review_dashboard_csv_and_actions(browser_client, demo_app, token_for) -> None:
    _repeat_hba1c_tests(demo_app, token_for, 6)
    sign_in(browser_client, "reviewer")
    page = browser_client.get("/reviewer")
    assert page.status_code == 200
    words = text_of(page.text)
    assert "By rule" in words and "Improvement actions" in words
    assert "Repeat investigation inside its minimum retesting interval" in words
    assert "Community Diabetes Team (Y02002)" in words  # organisations named, not just coded
    assert "XmR chart" in page.text and "Special cause" in words
    csv = browser_client.get("/reviewer/counts.csv?by=rule,month")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0].startswith("rule,month,findings")
    drill = text_of(browser_client.get("/reviewer/findings?rule=repeat-test").text)
    assert "Patient (pseudonym)" in drill
    assert "Margaret" not in drill and "9990000018" not in drill and "demo-margaret" not in drill
    rows = browser_client.get("/reviewer/findings.csv?rule=repeat-test").text.splitlines()
    assert len(rows) >= 6 and "pseudonym" in rows[0]
    assert not any("demo-margaret" in row for row in rows)
    answer = browser_client.post(
        "/reviewer/actions",
        data={
            "csrf_token": csrf_token(page.text),
            "rule": "repeat-test",
            "date": "2026-10-01",
            "note": "HbA1c results shared with the hospital lab system",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303
    logged = browser_client.get("/reviewer").text
    assert "HbA1c results shared with the hospital lab system" in logged


def test_duplicate_findings_are_shown_beside_the_entries_they_concern(
    browser_client, demo_app, token_for
) -> None:
    _repeat_hba1c_tests(demo_app, token_for, 1)
    sign_in(browser_client, "dr.patel")
    page = browser_client.get("/clinician/patients/demo-margaret-thompson?type=Observation").text
    cards = page.split('<li class="nhsuk-card')[1:]
    flagged = [c for c in cards if "Duplicate" in c]
    assert len(flagged) >= 1
    # the finding sits in the card of the repeated HbA1c (2 July 2025), saying what it repeated
    assert all("HbA1c" in c for c in flagged)
    assert any("2 July 2025" in c and "HbA1c was measured" in text_of(c) for c in flagged)


def test_one_hba1c_trend_across_organisations_coding_it_differently(
    browser_client, demo_app, token_for
) -> None:
    _repeat_hba1c_tests(demo_app, token_for, 2)  # the diabetes team codes it by LOINC only
    sign_in(browser_client, "margaret")
    page = browser_client.get("/my").text
    assert page.count("HbA1c over time</caption>") == 1
    words = text_of(page)
    assert "50 mmol/mol Community Diabetes Team" in words
    assert "62 mmol/mol Riverside Medical Practice" in words


def test_disagreements_between_organisations_are_shown_not_resolved(
    browser_client, demo_app, token_for
) -> None:
    from fastapi.testclient import TestClient

    headers = {"Authorization": f"Bearer {token_for('system', org='Y03003')}"}
    with TestClient(demo_app, base_url="http://testserver") as api:
        attendance = {
            "resourceType": "Encounter",
            "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
            "subject": {
                "identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}
            },
            "serviceProvider": {
                "identifier": {
                    "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                    "value": "Y03003",
                }
            },
        }
        assert api.post("/fhir/Encounter", json=attendance, headers=headers).status_code == 201
        allergy = {
            "resourceType": "AllergyIntolerance",
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                        "code": "active",
                    }
                ]
            },
            "verificationStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                        "code": "confirmed",
                    }
                ]
            },
            "code": {
                "coding": [{"system": "http://snomed.info/sct", "code": "764146007"}],
                "text": "Penicillin",
            },
            "patient": {"reference": "Patient/demo-margaret-thompson"},
            "recordedDate": "2026-11-20",
        }
        answer = api.post("/fhir/AllergyIntolerance", json=allergy, headers=headers)
        assert answer.status_code == 201, answer.text
    sign_in(browser_client, "margaret")
    words = text_of(browser_client.get("/my").text)
    assert "Your records do not agree" in words
    assert "Penicillin" in words.split("Your records do not agree", 1)[1]


def test_a_finding_beside_its_entry_is_not_listed_again(
    browser_client, demo_app, token_for
) -> None:
    _repeat_hba1c_tests(demo_app, token_for, 1)
    sign_in(browser_client, "dr.patel")
    words = text_of(browser_client.get("/clinician/patients/demo-margaret-thompson").text)
    assert "Duplicate" in words and "· DetectedIssue ·" not in words


def test_a_malformed_patient_id_reads_as_not_available(browser_client) -> None:
    sign_in(browser_client, "dr.patel")
    for bad in ("x%3F_id=demo-margaret-thompson", "a%20b", "x" * 65):
        assert browser_client.get(f"/clinician/patients/{bad}").status_code == 404


def test_who_looked_at_my_record_shows_the_hospital_and_break_glass(
    browser_client, other_browser
) -> None:
    sign_in(other_browser, "dr.okafor")
    found = other_browser.get("/clinician?nhs=9990000018")
    reason = "Chest pain in the emergency department, history needed"
    answer = other_browser.post(
        "/clinician/break-glass",
        data={"csrf_token": csrf_token(found.text), "nhs": "9990000018", "reason": reason},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert other_browser.get(answer.headers["location"]).status_code == 200
    sign_in(browser_client, "margaret")
    browser_client.get("/my")  # her own looks are not listed
    page = browser_client.get("/my/access")
    assert page.status_code == 200
    words = text_of(page.text)
    assert "Emergency access" in words and reason in words
    assert "Northbridge General Hospital" in words
    assert "Margaret Thompson looked" not in words


def test_reviewer_pages_ask_the_review_policy(browser_client, monkeypatch) -> None:
    """The reviewer pages are admitted by auth.policy.review_access, as the review API is: when
    the policy refuses the session's principal, every reviewer page sends them to sign in."""
    from auth.policy import Refusal
    from register.web import review_pages

    asked: list[str] = []

    def refuse(principal, use):  # type: ignore[no-untyped-def]
        asked.append(principal.role.value)
        return Refusal(403, "refused for the test")

    sign_in(browser_client, "reviewer")
    assert browser_client.get("/reviewer").status_code == 200
    monkeypatch.setattr(review_pages, "review_access", refuse)
    for path in ("/reviewer", "/reviewer/findings?rule=repeat-test", "/reviewer/counts.csv"):
        answer = browser_client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/sign-in", path
    assert asked == ["reviewer"] * 3
