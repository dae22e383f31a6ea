"""The improvement review over HTTP with real tokens, and patients' own reports of duplication.

Findings are made the way they happen: organisations write repeats through the FHIR API; the
reviewer then reads counts, rates, trends and de-identified drill-downs (JSON and CSV), and
records an improvement action that splits the trend into before and after.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tests.duplicates.scenario import (
    ORGS,
    Scenario,
    bearer,
    lab,
    nhs_number,
    person,
)

MONTHS = 6
PATIENTS_PER_MONTH = (6, 6, 6, 1, 1, 1)  # high before the action (April), low after


def _put(client, token: str, resource: dict[str, Any]) -> Any:
    response = client.put(
        f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=bearer(token)
    )
    assert response.status_code in (200, 201), response.text
    return response


@pytest.fixture
def world(client, token_for) -> dict[str, Any]:
    """Patients registered by the GP, each with a GP HbA1c repeated by the hospital 20 days
    later (a finding each), plus one repeat by the diabetes team (a group under 5)."""
    scenario = Scenario(client, token_for)
    scenario.directory()
    gp, hosp, dt = scenario.tokens["gp"], scenario.tokens["hosp"], scenario.tokens["dt"]
    secrets: list[str] = []
    n = 0
    for month, count in enumerate(PATIENTS_PER_MONTH, start=1):
        for _ in range(count):
            n += 1
            pid = f"pt{n}"
            nhs = nhs_number(1000 + 10 * n)
            family = f"Surname{n}x"
            secrets += [pid, nhs, family]
            _put(client, gp, person(pid, nhs, family, "Given", f"1950-01-{n:02d}", "female"))
            _put(
                client,
                gp,
                {
                    "resourceType": "CareTeam",
                    "id": f"team-{pid}",
                    "status": "active",
                    "subject": {"reference": f"Patient/{pid}"},
                    "participant": [{"member": {"reference": f"Organization/{o}"}} for o in ORGS],
                },
            )
            _put(
                client,
                gp,
                lab(f"{pid}-gp", pid, "59261-8", f"2026-{month:02d}-01T09:00:00Z", 40, "mmol/mol"),
            )
            repeat = lab(
                f"{pid}-hosp", pid, "59261-8", f"2026-{month:02d}-21T09:00:00Z", 41, "mmol/mol"
            )
            if month == 1:  # January's repeats were taken in the emergency department
                _put(
                    client,
                    hosp,
                    {
                        "resourceType": "Encounter",
                        "id": f"{pid}-ed",
                        "status": "finished",
                        "class": {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                            "code": "EMER",
                        },
                        "serviceType": {"text": "Emergency department"},
                        "subject": {"reference": f"Patient/{pid}"},
                        "serviceProvider": {"reference": "Organization/hosp"},
                    },
                )
                repeat["encounter"] = {"reference": f"Encounter/{pid}-ed"}
            _put(
                client,
                hosp,
                repeat,
            )
    _put(client, dt, lab("pt1-dt", "pt1", "59261-8", "2026-01-25T09:00:00Z", 41, "mmol/mol"))
    return {"scenario": scenario, "secrets": secrets, "patients": n}


def test_counts_rates_and_csv(world):
    s: Scenario = world["scenario"]
    reviewer = s.headers("reviewer")
    answer = s.http.get("/review/counts", params={"by": "rule,repeat_org"}, headers=reviewer)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    rows = {(r["rule"], r["repeat_org"]): r for r in answer.json()["rows"]}
    hosp = rows[("repeat-test", "HOS03")]
    total = sum(PATIENTS_PER_MONTH)
    assert hosp["findings"] == total
    # Relevant actions of the hospital: its tests (one per patient).
    assert hosp["actions"] == total
    assert hosp["per_1000"] == 1000.0
    dt = rows[("repeat-test", "DT002")]
    assert dt["findings"] == "<5" and dt["per_1000"] == "<5"

    as_csv = s.http.get(
        "/review/counts", params={"by": "rule,repeat_org", "_format": "csv"}, headers=reviewer
    )
    assert as_csv.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert {(r["rule"], r["repeat_org"], r["findings"]) for r in parsed} == {
        ("repeat-test", "HOS03", str(total)),
        ("repeat-test", "DT002", "<5"),
    }
    by_accept = s.http.get(
        "/review/counts", params={"by": "month"}, headers={**reviewer, "Accept": "text/csv"}
    )
    assert by_accept.text.splitlines()[0] == "month,findings"

    by_pair = s.http.get(
        "/review/counts", params={"by": "original_org,repeat_org,service,code"}, headers=reviewer
    ).json()["rows"]
    assert {
        (r["original_org"], r["repeat_org"], r["service"], r["code"], r["findings"])
        for r in by_pair
    } == {
        ("GP001", "HOS03", "Emergency department", "MINFREQ", PATIENTS_PER_MONTH[0]),
        ("GP001", "HOS03", "unspecified", "MINFREQ", total - PATIENTS_PER_MONTH[0]),
        ("HOS03", "DT002", "unspecified", "MINFREQ", "<5"),  # the nearer, the hospital's
    }


def test_drill_down_is_deidentified_and_small_groups_suppressed(world):
    s: Scenario = world["scenario"]
    reviewer = s.headers("reviewer")
    answer = s.http.get(
        "/review/findings", params={"rule": "repeat-test", "repeat_org": "HOS03"}, headers=reviewer
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["suppressed"] is False and body["total"] == sum(PATIENTS_PER_MONTH)
    rows = body["findings"]
    assert len({r["pseudonym"] for r in rows}) == sum(PATIENTS_PER_MONTH)
    assert set(rows[0]) >= {"rule", "code", "month", "repeat_org", "original_org", "pseudonym"}
    for text in (
        answer.text,
        s.http.get(
            "/review/findings", params={"repeat_org": "HOS03", "_format": "csv"}, headers=reviewer
        ).text,
    ):
        for secret in world["secrets"]:
            assert secret not in text
        assert "Patient/" not in text and "Observation/" not in text
    small = s.http.get("/review/findings", params={"repeat_org": "DT002"}, headers=reviewer)
    assert small.json() == {
        "filters": {"repeat_org": "DT002"},
        "total": "<5",
        "suppressed": True,
        "findings": [],
    }
    bad = s.http.get("/review/findings", params={"patient": "pt1"}, headers=reviewer)
    assert bad.status_code == 400
    assert bad.json()["issue"][0]["expression"] == ["patient"]


def test_improvement_action_splits_the_trend(world):
    s: Scenario = world["scenario"]
    reviewer = s.headers("reviewer")
    recorded = s.http.post(
        "/review/actions",
        json={
            "rule": "repeat-test",
            "repeat_org": "HOS03",
            "date": "2026-04-01",
            "note": "You said HbA1c was repeated on admission; we now show GP results in ED.",
        },
        headers=reviewer,
    )
    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["recorded_by"] == "qi-lead"
    listed = s.http.get("/review/actions", headers=reviewer).json()["actions"]
    assert [a["date"] for a in listed] == ["2026-04-01"]

    trend = s.http.get(
        "/review/trend", params={"rule": "repeat-test", "repeat_org": "HOS03"}, headers=reviewer
    )
    assert trend.status_code == 200
    chart = trend.json()
    before, after = chart["periods"]
    assert (before["period"], after["period"]) == ("before", "after")
    assert [p["month"] for p in before["points"]] == ["2026-01", "2026-02", "2026-03"]
    assert [p["month"] for p in after["points"]] == ["2026-04", "2026-05", "2026-06"]
    # Every hospital test was a repeat: 1,000 per 1,000 before and after; the counts differ.
    assert all(p["value"] == 1000.0 for p in before["points"] + after["points"])
    assert chart["improvement_actions"][0]["note"].startswith("You said")
    for period in chart["periods"]:
        for point in period["points"]:
            assert isinstance(point["special_cause"], list)

    counts = s.http.get("/review/trend", headers=reviewer).json()  # all findings, by count
    values = [p["value"] for period in counts["periods"] for p in period["points"]]
    # Months run on to the latest action logged (the registrations, today): no findings there.
    assert values[:6] == [7.0, 6.0, 6.0, 1.0, 1.0, 1.0] and set(values[6:]) <= {0.0}
    # Making Data Count markers: the first quarter beyond the upper limit; from April on, a
    # run of 7 or more below the mean (a shift).
    points = [p for period in counts["periods"] for p in period["points"]]
    assert all("beyond-limit" in p["special_cause"] for p in points[:3])
    assert all("shift" in p["special_cause"] for p in points[3:])
    as_csv = s.http.get("/review/trend", params={"_format": "csv"}, headers=reviewer)
    header = as_csv.text.splitlines()[0].split(",")
    assert header == [
        "period",
        "month",
        "value",
        "mean",
        "upper_limit",
        "lower_limit",
        "special_cause",
    ]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"rule": "repeat-test", "date": "2026-04-01", "note": ""}, "note"),
        ({"rule": "repeat-test", "date": "April", "note": "x"}, "date"),
        ({"rule": "no-such-rule", "date": "2026-04-01", "note": "x"}, "rule"),
        ({"date": "2026-04-01", "note": "against nothing"}, "rule"),
    ],
)
def test_bad_improvement_actions_are_refused_naming_the_field(client, token_for, body, field):
    answer = client.post(
        "/review/actions", json=body, headers=bearer(token_for("reviewer", org=None))
    )
    assert answer.status_code == 400
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == [field]
    listed = client.get("/review/actions", headers=bearer(token_for("reviewer", org=None)))
    assert listed.json()["actions"] == []  # nothing partly written


@pytest.mark.parametrize(
    "path, params, field",
    [
        ("/review/counts", {"by": "nhs_number"}, "by"),
        ("/review/counts", {"since": "last week"}, "since"),
        ("/review/trend", {"rule": "no-such-rule"}, "rule"),
        ("/review/trend", {"until": "2026-13-01"}, "until"),
    ],
)
def test_bad_review_queries_name_the_parameter(client, token_for, path, params, field):
    answer = client.get(path, params=params, headers=bearer(token_for("reviewer", org=None)))
    assert answer.status_code == 400
    assert answer.json()["issue"][0]["expression"] == [field]


def test_only_the_reviewer_role_uses_the_review(bare_client, token_for):
    assert bare_client.get("/review/counts").status_code == 401
    refused = {
        "clinician": token_for("clinician", org="HOS03"),
        "system": token_for("system", org="GP001"),
        "patient": token_for("patient", fhir_user="Patient/pt1"),
        "admin": token_for("admin", org=None),
        "privacy_officer": token_for("privacy_officer", org=None),
    }
    for role, token in refused.items():
        for method, path in (
            ("GET", "/review/counts"),
            ("GET", "/review/findings"),
            ("GET", "/review/trend"),
            ("POST", "/review/actions"),
        ):
            answer = bare_client.request(
                method, path, headers=bearer(token), json={"rule": "repeat-test"}
            )
            assert answer.status_code == 403, (role, path)
            assert answer.json()["resourceType"] == "OperationOutcome"
    forged = bearer(token_for("reviewer", org=None)[:-4] + "AAAA")
    assert bare_client.get("/review/counts", headers=forged).status_code == 401
    ok = bare_client.get("/review/counts", headers=bearer(token_for("reviewer", org=None)))
    assert ok.status_code == 200 and ok.json() == {"by": ["rule"], "rows": []}
    empty = bare_client.get(
        "/review/counts?by=rule,month&_format=csv", headers=bearer(token_for("reviewer", org=None))
    )
    assert empty.text == "rule,month\n"  # a header even with nothing to count


# --- patients' own reports ----------------------------------------------------------------------


def _report(kind: str, **values: Any) -> dict[str, Any]:
    parameters = [{"name": "kind", "valueCode": kind}]
    for name, value in values.items():
        parameters.append({"name": name, **value})
    return {"resourceType": "Parameters", "parameter": parameters}


@pytest.fixture
def reporting(client, token_for) -> Scenario:
    scenario = Scenario(client, token_for)
    scenario.directory()
    for pid, nhs in (("ann", nhs_number(7)), ("bob", nhs_number(8))):
        _put(
            client,
            scenario.tokens["gp"],
            person(pid, nhs, "Reporter", "Pat", "1970-01-01", "female"),
        )
    return scenario


def test_patient_reports_become_patient_reported_findings(reporting, token_for):
    s = reporting
    asked = _report(
        "asked-again",
        concept={"valueCode": "allergies"},
        date={"valueDate": "2026-03-04"},
        organization={"valueString": "HOS03"},
        note={"valueString": "Third time this year I was asked about my penicillin allergy"},
    )
    answer = s.http.post(
        "/fhir/Patient/ann/$report-duplicate", json=asked, headers=s.headers("ann")
    )
    assert answer.status_code == 201, answer.text
    issue = answer.json()
    assert issue["resourceType"] == "DetectedIssue"
    assert answer.headers["Location"].endswith(f"/DetectedIssue/{issue['id']}")
    assert issue["meta"]["tag"][0]["code"] == "patient-reported"
    parts = {p["url"]: p for p in issue["extension"][0]["extension"]}
    assert parts["patientReported"]["valueBoolean"] is True
    assert parts["group"]["valueString"] == "allergies"
    assert issue["author"] == {"reference": "Patient/ann"}
    assert "Preston Royal Hospital" in issue["detail"]
    # The patient reads it back in their own record, and finds it by tag.
    mine = s.http.get(
        "/fhir/DetectedIssue",
        params={
            "_tag": "https://fhir.shared-care-register.nhs.uk/CodeSystem/finding-source|"
            "patient-reported"
        },
        headers=s.headers("ann"),
    )
    assert [e["resource"]["id"] for e in mine.json().get("entry", [])] == [issue["id"]]
    again = s.http.post("/fhir/Patient/ann/$report-duplicate", json=asked, headers=s.headers("ann"))
    assert again.status_code == 200 and again.json()["id"] == issue["id"]  # recorded once

    test = _report(
        "test-repeated", concept={"valueCoding": {"system": "http://loinc.org", "code": "4548-4"}}
    )
    second = s.http.post("/fhir/Patient/ann/$report-duplicate", json=test, headers=s.headers("ann"))
    assert second.status_code == 201
    assert "HbA1c" in second.json()["detail"]

    reviewer = bearer(token_for("reviewer", org=None))
    rows = s.http.get(
        "/review/counts", params={"by": "source,rule,group"}, headers=reviewer
    ).json()["rows"]
    assert {(r["source"], r["rule"], r["group"]) for r in rows} == {
        ("patient-reported", "repeat-question", "allergies"),
        ("patient-reported", "repeat-test", "hba1c"),
    }
    drill = s.http.get(
        "/review/findings", params={"source": "patient-reported"}, headers=reviewer
    ).text
    assert "penicillin" not in drill.lower()


@pytest.mark.parametrize(
    "who, patient, status",
    [
        ("bob", "ann", 403),  # another patient's record
        ("hosp", "ann", 403),  # clinicians do not report as patients
        ("reviewer", "ann", 403),
    ],
)
def test_only_the_patient_reports_in_their_own_care(reporting, who, patient, status):
    s = reporting
    answer = s.http.post(
        f"/fhir/Patient/{patient}/$report-duplicate",
        json=_report("asked-again"),
        headers=s.headers(who),
    )
    assert answer.status_code == status, answer.text
    assert answer.json()["resourceType"] == "OperationOutcome"
    direct = s.http.post(
        "/fhir/DetectedIssue",
        json={
            "resourceType": "DetectedIssue",
            "status": "final",
            "patient": {"reference": "Patient/ann"},
        },
        headers=s.headers("ann"),
    )
    assert direct.status_code == 403  # the operation is the patients' only way in


@pytest.mark.parametrize(
    "body, expression",
    [
        ({"resourceType": "Basic"}, "Parameters"),
        (_report("rang-twice"), "Parameters.parameter.kind"),
        (_report("asked-again", date={"valueDate": "2999-01-01"}), "Parameters.parameter.date"),
        (_report("asked-again", date={"valueDate": "soon"}), "Parameters.parameter.date"),
        (_report("asked-again", concept={"valueInteger": 3}), "Parameters.parameter.concept"),
        (_report("asked-again", note={"valueString": "x" * 1001}), "Parameters.parameter.note"),
        (
            _report("asked-again", organization={"valueString": "Mrs Ann Smith's GP"}),
            "Parameters.parameter.organization",
        ),
    ],
)
def test_bad_reports_are_refused_and_nothing_recorded(reporting, body, expression):
    s = reporting
    answer = s.http.post("/fhir/Patient/ann/$report-duplicate", json=body, headers=s.headers("ann"))
    assert answer.status_code == 400
    assert answer.json()["issue"][0]["expression"] == [expression]
    listed = s.http.get("/fhir/DetectedIssue", headers=s.headers("ann")).json()
    assert listed.get("entry", []) == []


def test_command_line_review_agrees_with_the_api(world, engine, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from register.cli import app as cli
    from register.settings import get_settings

    monkeypatch.setenv("REGISTER_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("REGISTER_DATA_DIR", str(tmp_path / "cli-data"))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["review", "--by", "rule,repeat_org,month", "--csv"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    s: Scenario = world["scenario"]
    api = s.http.get(
        "/review/counts",
        params={"by": "rule,repeat_org,month", "_format": "csv"},
        headers=s.headers("reviewer"),
    )
    assert result.output == api.text
    assert len(api.text.splitlines()) > 2
