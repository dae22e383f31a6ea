"""hypothesis over HTTP: random patient timelines of orders, results, referrals, prescriptions,
records and questionnaires, written by three organisations through the API; the DetectedIssues
the register records equal those of the plain reference model (tests/duplicates/reference.py).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_adapters.detected_issue import RULE_SYSTEM, V3_ACT_CODE
from tests.duplicates import reference
from tests.duplicates.scenario import CLERKING, ORGS, REASON_URL, Scenario, bearer

LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
START = datetime(2026, 1, 1, tzinfo=UTC)
ODS_CODES = [code for code, _ in ORGS.values()]
TESTS = [  # (code, unit, low, high)
    ("59261-8", "mmol/mol", 35, 70),  # HbA1c: a result of 48 or more may be confirmed in 14 days
    ("4548-4", "%", 5, 9),
    ("2093-3", "mmol/L", 3, 8),
    ("2160-0", "umol/L", 50, 200),  # creatinine: a 4-day interval
    ("62238-1", "mL/min/{1.73_m2}", 30, 100),  # eGFR: a reduced one may be confirmed
]
REFERRALS = ["408403008", "306094000"]
MEDICINES = [
    {"coding": [{"system": RXNORM, "code": "860975", "display": "metformin 500 MG"}]},
    {"coding": [{"system": RXNORM, "code": "860995", "display": "metformin 1000 MG"}]},
    {"coding": [{"system": RXNORM, "code": "312961", "display": "simvastatin 20 MG"}]},
    {"text": "atorvastatin 20 mg tablets"},
    {"coding": [{"system": RXNORM, "code": "314076", "display": "lisinopril 10 MG"}]},
]
REASONS = st.one_of(st.none(), st.none(), st.sampled_from(["Lab sample haemolysed"]))


def _when(day: int, hour: int) -> str:
    return (START + timedelta(days=day, hours=hour)).isoformat().replace("+00:00", "Z")


def _with_reason(resource: dict[str, Any], reason: str | None) -> dict[str, Any]:
    if reason:
        resource["extension"] = [{"url": REASON_URL, "valueString": reason}]
    return resource


@st.composite
def event(draw: st.DrawFn, days: list[int]) -> tuple[int, int, str, Any]:
    """(day, hour, organisation, a function of (id, patient) making the resource), on one of
    the timeline's visit ``days`` (so same-day, same-hour and same-event cases are common)."""
    day = draw(st.sampled_from(days))
    hour = draw(st.integers(8, 11))
    org = draw(st.sampled_from(ODS_CODES))
    kind = draw(
        st.sampled_from(["test", "test", "order", "referral", "referral", "rx", "rx", "fact", "qr"])
    )
    reason = draw(REASONS)
    when = _when(day, hour)
    if kind == "test":
        code, unit, low, high = draw(st.sampled_from(TESTS))
        value = draw(st.integers(low, high))
        status = draw(st.sampled_from(["final", "final", "final", "entered-in-error"]))

        def make(rid: str, pid: str) -> dict[str, Any]:
            return _with_reason({
                "resourceType": "Observation", "id": rid, "status": status,
                "code": {"coding": [{"system": LOINC, "code": code}]},
                "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": when,
                "valueQuantity": {"value": value, "unit": unit,
                                  "system": "http://unitsofmeasure.org", "code": unit},
            }, reason)  # fmt: skip

    elif kind in ("order", "referral"):
        if kind == "order":
            system, code = LOINC, draw(st.sampled_from(TESTS))[0]
            status = draw(st.sampled_from(["active", "active", "revoked"]))
        else:
            system, code = SCT, draw(st.sampled_from(REFERRALS))
            status = draw(st.sampled_from(["active", "active", "completed", "revoked"]))

        def make(rid: str, pid: str) -> dict[str, Any]:
            return _with_reason({
                "resourceType": "ServiceRequest", "id": rid, "status": status,
                "intent": "order", "code": {"coding": [{"system": system, "code": code}]},
                "subject": {"reference": f"Patient/{pid}"}, "authoredOn": when,
            }, reason)  # fmt: skip

    elif kind == "rx":
        medicine = draw(st.sampled_from(MEDICINES))
        status = draw(st.sampled_from(["active", "active", "stopped"]))
        prescriber = draw(st.sampled_from(["Practitioner/pa", "Practitioner/pb"]))

        def make(rid: str, pid: str) -> dict[str, Any]:
            return _with_reason({
                "resourceType": "MedicationRequest", "id": rid, "status": status,
                "intent": "order", "medicationCodeableConcept": medicine,
                "subject": {"reference": f"Patient/{pid}"}, "authoredOn": when,
                "requester": {"reference": prescriber},
            }, reason)  # fmt: skip

    elif kind == "fact":
        allergy = draw(st.booleans())
        in_error = draw(st.sampled_from([False, False, True]))

        def make(rid: str, pid: str) -> dict[str, Any]:
            if allergy:
                verification = "entered-in-error" if in_error else "confirmed"
                return {
                    "resourceType": "AllergyIntolerance", "id": rid,
                    "verificationStatus": {"coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/"
                                  "allergyintolerance-verification",
                        "code": verification}]},
                    "code": {"text": "Penicillin"}, "patient": {"reference": f"Patient/{pid}"},
                    "recordedDate": when,
                }  # fmt: skip
            return {
                "resourceType": "Observation", "id": rid,
                "status": "entered-in-error" if in_error else "final",
                "code": {"coding": [{"system": LOINC, "code": "72166-2"}]},
                "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": when,
                "valueCodeableConcept": {"text": "Never smoked"},
            }  # fmt: skip

    else:
        asked = draw(
            st.lists(
                st.sampled_from(["allergies", "medications", "smoking"]), min_size=1, unique=True
            )
        )

        def make(rid: str, pid: str) -> dict[str, Any]:
            return _with_reason({
                "resourceType": "QuestionnaireResponse", "id": rid, "status": "completed",
                "questionnaire": CLERKING, "subject": {"reference": f"Patient/{pid}"},
                "authored": when,
                "item": [{"linkId": link, "answer": [{"valueString": "as before"}]}
                         for link in asked],
            }, reason)  # fmt: skip

    return day, hour, org, make


@st.composite
def timeline(draw: st.DrawFn) -> list[tuple[int, int, str, Any]]:
    """A patient's events on a handful of visit days over five months."""
    days = draw(st.lists(st.integers(0, 150), min_size=1, max_size=6, unique=True))
    return draw(st.lists(event(days), min_size=1, max_size=14))


def _server_findings(scenario: Scenario, pid: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    answer = scenario.http.get(
        "/fhir/DetectedIssue",
        params={"patient": f"Patient/{pid}", "_count": "500"},
        headers=scenario.headers("gp"),
    )
    assert answer.status_code == 200, answer.text
    out = {}
    for entry in answer.json().get("entry", []):
        issue = entry["resource"]
        codes = {c["system"]: c["code"] for c in issue["code"]["coding"]}
        parts = {p["url"]: p for p in issue["extension"][0]["extension"]}
        repeat, original = (i["reference"] for i in issue["implicated"])
        key = (codes[RULE_SYSTEM], parts["group"]["valueString"], repeat)
        assert key not in out, key  # one finding per repeated event
        out[key] = {
            "code": codes.get(V3_ACT_CODE, codes[RULE_SYSTEM]),
            "original": original,
            "severity": issue["severity"],
            "mitigation": (issue.get("mitigation") or [{}])[0].get("action", {}).get("text"),
        }
    return out


def test_findings_equal_the_reference_model(client, token_for):
    scenario = Scenario(client, token_for)
    scenario.directory()
    tokens = {code: token_for("system", org=code, subject=f"sys-{code}") for code in ODS_CODES}
    numbers = itertools.count()

    @settings(
        max_examples=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(timeline())
    def check(events: list[tuple[int, int, str, Any]]) -> None:
        pid = f"h{next(numbers)}"
        gp = scenario.tokens["gp"]
        for resource in (
            {"resourceType": "Patient", "id": pid, "name": [{"family": f"Prop{pid}"}]},
            {"resourceType": "CareTeam", "id": f"team-{pid}", "status": "active",
             "subject": {"reference": f"Patient/{pid}"},
             "participant": [{"member": {"reference": f"Organization/{o}"}} for o in ORGS]},
        ):  # fmt: skip
            put = client.put(
                f"/fhir/{resource['resourceType']}/{resource['id']}",
                json=resource,
                headers=bearer(gp),
            )
            assert put.status_code in (200, 201), put.text
        timeline: list[tuple[str, dict[str, Any]]] = []
        ordered = sorted(enumerate(events), key=lambda item: (item[1][0], item[1][1], item[0]))
        for n, (_, _, org, make) in ordered:
            resource = make(f"{pid}-{n}", pid)
            put = client.put(
                f"/fhir/{resource['resourceType']}/{resource['id']}",
                json=resource,
                headers=bearer(tokens[org]),
            )
            assert put.status_code == 201, put.text
            timeline.append((org, resource))

        expected = {(f.rule, f.group, f.repeat): f for f in reference.expected_findings(timeline)}
        found = _server_findings(scenario, pid)
        assert set(found) == set(expected), (found, expected)
        for key, finding in found.items():
            model = expected[key]
            assert finding["code"] == model.code, key
            assert finding["original"] in model.originals, key
            assert finding["severity"] == model.severity, key
            assert finding["mitigation"] == model.mitigation, key

    check()
