"""$summary and $populate over HTTP, on both databases, with real tokens.

The record of ``Patient/p`` is kept by three organisations (see ``tests/ask_once/world.py``);
the tests check who recorded what, the flagged disagreements, that nothing the requester may
not read appears, and the OperationOutcomes for bad input.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_adapters.ips import RECORDED_BY_URL
from fhir_adapters.sdc import LAST_KNOWN_URL, PREFILL_CANDIDATE_URL, PREFILL_SOURCE_URL
from tests.ask_once.conftest import questionnaire
from tests.ask_once.world import ANNUAL_REVIEW, AUTHOR, CLERKING, ODS, RECORDS, SCT, World
from tests.consent.helpers import TYPES, consent

CLINICIAN_NO_ALLERGIES = (
    "user/Patient.rs user/Condition.rs user/Observation.rs user/MedicationRequest.rs "
    "user/Questionnaire.rs user/CareTeam.rs user/Organization.rs"
)


@pytest.fixture
def world(client: TestClient, token_for: Any) -> World:
    return World(client, token_for).build()


def _resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def _sections(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    composition = bundle["entry"][0]["resource"]
    return {s["code"]["coding"][0]["code"]: s for s in composition["section"]}


def _entry_refs(bundle: dict[str, Any]) -> set[str]:
    return {
        e["reference"]
        for s in bundle["entry"][0]["resource"]["section"]
        for e in s.get("entry", [])
        if not e["reference"].startswith("urn:")
    }


def _parts(extension: dict[str, Any]) -> dict[str, Any]:
    return {p["url"]: p for p in extension.get("extension", [])}


def _summary(world: World, who: str, patient: str = "p") -> Any:
    return world.get(who, f"Patient/{patient}/$summary")


def _populate(world: World, who: str, canonical: str, patient: str = "p") -> Any:
    return world.post(
        who,
        "Questionnaire/$populate",
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "questionnaire", "valueCanonical": canonical},
                {"name": "subject", "valueReference": {"reference": f"Patient/{patient}"}},
            ],
        },
    )


def _items(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    stack = list(response.get("item", []))
    while stack:
        item = stack.pop()
        found[item["linkId"]] = item
        stack.extend(item.get("item", []))
    return found


def _sources(response: dict[str, Any]) -> set[str]:
    """Every record a pre-filled, last-known or candidate answer names as its source."""
    found = set()
    for item in _items(response).values():
        marks = [e for e in item.get("extension", []) if e["url"] in (LAST_KNOWN_URL,
                 PREFILL_CANDIDATE_URL)]  # fmt: skip
        for answer in item.get("answer", []):
            marks += [e for e in answer.get("extension", []) if e["url"] == PREFILL_SOURCE_URL]
        for mark in marks:
            source = _parts(mark).get("source")
            if source:
                found.add(source["valueReference"]["reference"])
    return found


# --- $summary ----------------------------------------------------------------------------------


def test_summary_from_three_organisations_says_who_recorded_each_entry(world: World) -> None:
    response = _summary(world, "hosp_clinician")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle = response.json()
    assert bundle["type"] == "document"
    composition = bundle["entry"][0]["resource"]
    assert composition["type"]["coding"][0]["code"] == "60591-5"
    assert composition["subject"] == {"reference": "Patient/p"}
    authors = {a["identifier"]["value"] for a in composition["author"]}
    assert authors == {"GP001", "DT002", "HOS03"}
    seen_authors = set()
    for section in composition["section"]:
        for entry in section.get("entry", []):
            reference = entry["reference"]
            if reference.startswith("urn:"):
                continue
            recorded = _parts(next(e for e in entry["extension"] if e["url"] == RECORDED_BY_URL))
            author = recorded["author"]["valueReference"]
            rid = reference.partition("/")[2]
            if rid in AUTHOR:
                assert author["identifier"] == {"system": ODS, "value": AUTHOR[rid]}, reference
                seen_authors.add(AUTHOR[rid])
            assert author["display"]  # the organisation's name from the directory
            assert "recorded" in recorded and "date" in recorded
    assert seen_authors == {"GP001", "DT002", "HOS03"}
    refs = _entry_refs(bundle)
    for rid in ("all-pen", "all-latex", "med-dt-glic", "cond-dm", "obs-hba1c", "obs-weight"):
        assert any(r.endswith(f"/{rid}") for r in refs), rid
    full_urls = {e["fullUrl"] for e in bundle["entry"]}
    assert all(f"http://testserver/fhir/{r}" in full_urls for r in refs)
    sections = _sections(bundle)
    assert "diabetes-care-processes" in sections  # the patient has type 2 diabetes


def test_conflicting_allergies_and_medication_lists_are_flagged(world: World) -> None:
    bundle = _summary(world, "hosp_clinician").json()
    flags = [f["code"]["text"] for f in _resources(bundle, "Flag")]
    assert any("Penicillin" in t and "Riverside Surgery" in t and "City Hospital" in t
               for t in flags), flags  # fmt: skip
    assert any("Latex" in t and "City Hospital" in t and "Riverside Surgery" in t for t in flags)
    assert any("Gliclazide" in t and "Community Diabetes Team" in t for t in flags)
    assert not any("Metformin" in t for t in flags)  # on all three lists: no disagreement
    sections = _sections(bundle)
    assert "104605-1" in sections  # alerts
    allergies = sections["48765-2"]
    assert any("Penicillin" in n["valueAnnotation"]["text"] for n in allergies["extension"])
    # both allergies stay in the summary: flagged, not silently picked
    assert {"AllergyIntolerance/all-pen", "AllergyIntolerance/all-latex"} <= {
        e["reference"] for e in allergies["entry"]
    }


def test_patient_sees_the_same_summary_of_their_own_record(world: World) -> None:
    clinician = _summary(world, "hosp_clinician").json()
    own = _summary(world, "patient_p")
    assert own.status_code == 200, own.text
    assert _entry_refs(own.json()) == _entry_refs(clinician)
    assert _summary(world, "patient_q").status_code == 404


def test_unrelated_clinician_and_unknown_patient_get_404(world: World) -> None:
    for who, patient in (("other_clinician", "p"), ("hosp_clinician", "nobody")):
        response = _summary(world, who, patient)
        assert response.status_code == 404
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == "not-found"
        assert "Family" not in response.text
        populated = _populate(world, who, CLERKING, patient)
        assert populated.status_code == 404
        assert populated.json()["resourceType"] == "OperationOutcome"


def test_records_the_token_may_not_read_are_absent_from_summary_and_prefill(
    world: World,
) -> None:
    token = world.token_for(
        "clinician", org="HOS03", fhir_user="Practitioner/h2", scope=CLINICIAN_NO_ALLERGIES
    )
    assert world.get(token, "AllergyIntolerance/all-latex").status_code == 403
    summary = _summary(world, token)
    assert summary.status_code == 200, summary.text
    bundle = summary.json()
    assert "AllergyIntolerance" not in summary.text
    assert "Penicillin" not in summary.text and "Latex" not in summary.text
    assert _sections(bundle)["48765-2"]["emptyReason"]["coding"][0]["code"] == "unavailable"
    assert any(r.startswith("Observation/") for r in _entry_refs(bundle))
    populated = _populate(world, token, CLERKING)
    assert populated.status_code == 200, populated.text
    response = populated.json()["parameter"][0]["resource"]
    allergies = _items(response)["allergies"]
    assert "answer" not in allergies and "extension" not in allergies
    assert "Penicillin" not in populated.text and "Latex" not in populated.text
    assert _items(response)["weight"]["answer"]  # what it may read is still filled


@pytest.mark.parametrize("who", ["hosp_clinician", "dt_system", "patient_p", "restricted"])
def test_every_source_shown_is_readable_by_the_requester(world: World, who: str) -> None:
    """Whatever the visibility withholds (scopes today; consent and sensitive labels as they
    join it) cannot appear: each record a summary or pre-fill names is readable by the same
    token with a plain GET."""
    if who == "restricted":
        who = world.token_for("clinician", org="HOS03", scope=CLINICIAN_NO_ALLERGIES)
    shown = _entry_refs(_summary(world, who).json())
    for canonical in (CLERKING, ANNUAL_REVIEW):
        response = _populate(world, who, canonical).json()["parameter"][0]["resource"]
        shown |= _sources(response)
    assert shown
    for reference in sorted(shown):
        assert world.get(who, reference).status_code == 200, reference


# --- $populate ---------------------------------------------------------------------------------


def test_populate_fills_from_three_organisations_with_sources(world: World) -> None:
    response = _populate(world, "hosp_clinician", CLERKING)
    assert response.status_code == 200, response.text
    parameters = response.json()
    assert parameters["resourceType"] == "Parameters"
    qr = parameters["parameter"][0]["resource"]
    assert qr["resourceType"] == "QuestionnaireResponse"
    assert qr["subject"] == {"reference": "Patient/p"}
    assert qr["questionnaire"] == CLERKING + "|1.0.0"
    items = _items(qr)
    expected = {
        "allergies": {"all-pen": "GP001", "all-latex": "HOS03"},
        "medications": {"med-gp-met": "GP001", "med-dt-glic": "DT002"},
        "problems": {"cond-dm": "GP001"},
        "smoking": {"obs-smoke": "GP001"},
        "height": {"obs-height": "HOS03"},
        "weight": {"obs-weight": "HOS03"},
        "hba1c": {"obs-hba1c": "DT002"},
    }
    for link_id, sources in expected.items():
        answers = items[link_id].get("answer", [])
        assert answers, link_id
        found = {}
        for answer in answers:
            mark = _parts(next(e for e in answer["extension"] if e["url"] == PREFILL_SOURCE_URL))
            rid = mark["source"]["valueReference"]["reference"].partition("/")[2]
            found[rid] = mark["author"]["valueReference"]["identifier"]["value"]
            assert mark["recorded"]["valueDateTime"] and mark["date"]["valueDateTime"]
        for rid, org in sources.items():
            if link_id == "medications" and rid == "med-gp-met":
                # metformin is on three lists: one answer, attributed to one of its records
                assert any(AUTHOR.get(r) in ("GP001", "DT002", "HOS03") for r in found)
                continue
            assert found.get(rid) == org, (link_id, found)
    gp = items["registered-gp"]["answer"][0]
    assert gp["valueReference"]["reference"] == "Organization/gp"
    assert items["weight"]["answer"][0]["valueQuantity"]["value"] == 82


def test_populate_accepts_the_questionnaire_every_way_sdc_allows(world: World) -> None:
    inline = questionnaire("admission-clerking")
    world.put("gp_system", {**inline, "id": "clerking"})
    reference = {"reference": "Patient/p"}

    def answers(response: Any) -> dict[str, Any]:
        assert response.status_code == 200, response.text
        qr = response.json()["parameter"][0]["resource"]
        return {k: v.get("answer") for k, v in _items(qr).items()}

    by_canonical = answers(_populate(world, "hosp_clinician", CLERKING))
    forms = [
        world.get("hosp_clinician", "Questionnaire/$populate", subject="Patient/p",
                  questionnaire=CLERKING),
        world.get("hosp_clinician", "Questionnaire/clerking/$populate", subject="Patient/p"),
        world.post("hosp_clinician", "Questionnaire/clerking/$populate", {
            "resourceType": "Parameters",
            "parameter": [{"name": "subject", "valueReference": reference}]}),
        world.post("hosp_clinician", "Questionnaire/$populate", {
            "resourceType": "Parameters",
            "parameter": [{"name": "questionnaire", "resource": inline},
                          {"name": "subject", "valueReference": reference},
                          {"name": "local", "valueBoolean": True}]}),
        world.post("hosp_clinician", "Questionnaire/$populate", {
            "resourceType": "Parameters",
            "parameter": [{"name": "questionnaireRef",
                           "valueReference": {"reference": "Questionnaire/clerking"}},
                          {"name": "subject", "valueReference": reference}]}),
    ]  # fmt: skip
    for form in forms:
        got = answers(form)
        assert {k: _values(v) for k, v in got.items()} == {
            k: _values(v) for k, v in by_canonical.items()
        }


def _values(answers: list[dict[str, Any]] | None) -> list[Any]:
    return sorted(str({k: v for k, v in a.items() if k.startswith("value")}) for a in answers or [])


def test_capability_statement_lists_the_operations(world: World) -> None:
    statement = world.http.get("/fhir/metadata").json()
    operations = {
        (r["type"], o["name"])
        for r in statement["rest"][0]["resource"]
        for o in r.get("operation", [])
    }
    assert ("Patient", "summary") in operations
    assert ("Questionnaire", "populate") in operations


@pytest.mark.parametrize(
    ("path", "body", "status", "expression"),
    [
        ("Questionnaire/$populate", [("questionnaire", CLERKING)], 400, "subject"),
        ("Questionnaire/$populate", [("subject", "Patient/p")], 400, "questionnaire"),
        (
            "Questionnaire/$populate",
            [("subject", "Patient/p"), ("questionnaire", "https://example.org/Questionnaire/x")],
            404,
            "questionnaire",
        ),
        ("Questionnaire/nope/$populate", [("subject", "Patient/p")], 404, "questionnaire"),
        (
            "Questionnaire/$populate",
            [("subject", "Observation/obs-hba1c"), ("questionnaire", CLERKING)],
            400,
            "subject",
        ),
        ("Questionnaire/$populate", [("subject", "Patient/p"), ("colour", "blue")], 400, None),
    ],
)
def test_bad_populate_requests_get_an_operation_outcome(
    world: World, path: str, body: list[tuple[str, str]], status: int, expression: str | None
) -> None:
    for response in (
        world.get("hosp_clinician", path, **dict(body)),
        world.post("hosp_clinician", path, _as_parameters(body)),
    ):
        assert response.status_code == status, response.text
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        issue = outcome["issue"][0]
        assert issue["severity"] == "error"
        if expression is not None:
            assert expression in issue.get("expression", [])[0]
        assert "Traceback" not in response.text


def _as_parameters(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = []
    for name, value in pairs:
        if name == "subject":
            parameters.append({"name": name, "valueReference": {"reference": value}})
        elif name == "questionnaire":
            parameters.append({"name": name, "valueCanonical": value})
        else:
            parameters.append({"name": name, "valueString": value})
    return {"resourceType": "Parameters", "parameter": parameters}


def test_malformed_bodies_and_missing_tokens(world: World, bare_client: TestClient) -> None:
    not_parameters = world.post("hosp_clinician", "Questionnaire/$populate", {"a": 1})
    assert not_parameters.status_code == 400
    bad_inline = world.post(
        "hosp_clinician",
        "Questionnaire/$populate",
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "questionnaire", "resource": {"resourceType": "Patient", "id": "x"}},
                {"name": "subject", "valueReference": {"reference": "Patient/p"}},
            ],
        },
    )
    assert bad_inline.status_code == 400
    assert bad_inline.json()["resourceType"] == "OperationOutcome"
    anonymous = bare_client.get("/fhir/Patient/p/$summary")
    assert anonymous.status_code == 401
    assert world.http.get("/fhir/Observation/p/$summary",
                          headers=world.headers("hosp_clinician")).status_code == 404  # fmt: skip


# --- confirmed vs asked afresh -----------------------------------------------------------------


def _completed(qr: dict[str, Any]) -> dict[str, Any]:
    return {**qr, "status": "completed"}


def _repeat_questions(response: Any) -> list[str]:
    assert response.status_code == 201, response.text
    return [
        i["diagnostics"]
        for i in response.json().get("issue", [])
        if "repeat-question" in i["diagnostics"] or "asked again" in i["diagnostics"]
    ]


def test_confirmed_prefills_are_not_repeat_questions_but_fresh_answers_are(
    world: World,
) -> None:
    qr = _populate(world, "hosp_clinician", CLERKING).json()["parameter"][0]["resource"]
    prefer = {"Prefer": "return=OperationOutcome"}
    confirmed = world.post("hosp_clinician", "QuestionnaireResponse", _completed(qr), **prefer)
    assert _repeat_questions(confirmed) == []
    # The same form, the allergies typed in again although the register held them.
    retyped = _completed(qr)
    for item in retyped["item"]:
        if item["linkId"] == "allergies":
            item["answer"] = [
                {k: v for k, v in answer.items() if k != "extension"} for answer in item["answer"]
            ]
    fresh = world.post("hosp_clinician", "QuestionnaireResponse", retyped, **prefer)
    found = _repeat_questions(fresh)
    assert len(found) == 1 and "allergies" in found[0].lower(), found


RECORD_TYPES = ("AllergyIntolerance", "Condition", "Observation", "MedicationRequest", "CareTeam")


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # the world is only read
)
@given(st.sets(st.sampled_from(RECORD_TYPES)))
def test_summary_shows_exactly_what_the_scopes_allow(world: World, types: set[str]) -> None:
    """Reference model: with read scopes for some record types, the summary lists every record
    of those types (all of the world's records are current) and nothing else, and raises the
    disagreements only of what it shows."""
    scope = " ".join(f"user/{t}.rs" for t in sorted({"Patient", "Organization", *types}))
    token = world.token_for("clinician", org="HOS03", fhir_user="Practitioner/h9", scope=scope)
    response = _summary(world, token)
    assert response.status_code == 200, response.text
    bundle = response.json()
    expected = {
        f"{r['resourceType']}/{r['id']}"
        for records in RECORDS.values()
        for r in records
        if r["resourceType"] in types
    } | ({"CareTeam/team-p"} if "CareTeam" in types else set())
    assert _entry_refs(bundle) == expected
    flags = " ".join(f["code"]["text"] for f in _resources(bundle, "Flag"))
    assert ("Penicillin" in flags) == ("AllergyIntolerance" in types)
    assert ("Gliclazide" in flags) == ("MedicationRequest" in types)


def test_break_glass_opens_the_summary_of_a_patient_without_a_relationship(world: World) -> None:
    """In an emergency a clinician with no relationship states a reason: the summary is the
    first thing to read, and the grant it records then covers the pre-fill too."""
    assert _summary(world, "other_clinician").status_code == 404
    reason = {"X-Break-Glass-Reason": "Unconscious in ED, no history available"}
    response = world.http.get(
        "/fhir/Patient/p/$summary", headers={**world.headers("other_clinician"), **reason}
    )
    assert response.status_code == 200, response.text
    assert "AllergyIntolerance/all-pen" in _entry_refs(response.json())
    assert _populate(world, "other_clinician", CLERKING).status_code == 200


# --- consent and sensitive data ----------------------------------------------------------------


def _problem_codes(world: World, who: str) -> set[str]:
    qr = _populate(world, who, CLERKING).json()["parameter"][0]["resource"]
    return {
        coding["code"]
        for answer in _items(qr)["problems"].get("answer", [])
        for coding in [answer.get("valueCoding", {})]
        if "code" in coding
    }


def test_sensitive_record_is_absent_from_summary_and_prefill_of_other_organisations(
    world: World,
) -> None:
    depression = {
        "resourceType": "Condition",
        "id": "cond-dep",
        "code": {"coding": [{"system": SCT, "code": "35489007"}], "text": "Depressive disorder"},
        "subject": {"reference": "Patient/p"},
        "onsetDateTime": "2025-01-10",
    }
    world.put("gp_system", depression)  # labelled mental health on write: sensitive
    assert world.get("hosp_clinician", "Condition/cond-dep").status_code == 404
    for who in ("hosp_clinician", "dt_system"):
        summary = _summary(world, who)
        assert summary.status_code == 200
        assert "cond-dep" not in summary.text and "Depress" not in summary.text
        assert "35489007" not in _problem_codes(world, who)
        assert "44054006" in _problem_codes(world, who)  # the rest is still there
        # ... and they are told that something was withheld, never what.
        assert _withheld_notice(world, who) == (True, True)
    # The GP recorded it: its own summary and pre-fill show it; so does the patient's own view.
    for who in ("gp_system", "patient_p"):
        assert "Condition/cond-dep" in _entry_refs(_summary(world, who).json())
        assert "35489007" in _problem_codes(world, who)
        assert _withheld_notice(world, who) == (False, False)


def _withheld_notice(world: World, who: str) -> tuple[bool, bool]:
    """Whether the summary and the clerking pre-fill carry the withheld-items notice."""
    composition = _summary(world, who).json()["entry"][0]["resource"]
    in_summary = any(
        "confidentiality" in e.get("valueAnnotation", {}).get("text", "")
        for e in composition.get("extension", [])
    )
    parameters = _populate(world, who, CLERKING).json()["parameter"]
    issues = [p["resource"]["issue"] for p in parameters if p["name"] == "issues"]
    in_prefill = any(i["code"] == "suppressed" for found in issues for i in found)
    return in_summary, in_prefill


def test_consent_withheld_allergies_are_absent_and_not_flagged(world: World) -> None:
    """The patient withholds allergy records from other organisations: the hospital's summary
    and pre-fill keep its own allergy only, and no flag names the GP's."""
    choice = {
        "type": "permit",
        "provision": [{"type": "deny", "class": [{"system": TYPES, "code": "AllergyIntolerance"}]}],
    }
    written = world.post("patient_p", "Consent", consent("p", choice))
    assert written.status_code == 201, written.text
    summary = _summary(world, "hosp_clinician")
    refs = _entry_refs(summary.json())
    assert "AllergyIntolerance/all-latex" in refs  # its own record is never withheld from it
    assert "AllergyIntolerance/all-pen" not in refs
    assert "Penicillin" not in summary.text
    populated = _populate(world, "hosp_clinician", CLERKING)
    assert "Penicillin" not in populated.text and "all-pen" not in populated.text
    assert "Latex" in populated.text
    assert "AllergyIntolerance/all-pen" in _entry_refs(_summary(world, "gp_system").json())
    assert _withheld_notice(world, "hosp_clinician") == (True, True)
