"""Token search (R4 search page 3.1.1.5.4 token): forms, modifiers, identifiers, primitives."""

from __future__ import annotations

from tests.helpers import NHS
from tests.search.conftest import Fhir, outcome

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"


def _obs(fhir: Fhir, *codings: dict, text: str | None = None, **extra: object) -> str:
    code: dict = {"coding": list(codings)}
    if text:
        code["text"] = text
    body = {"resourceType": "Observation", "status": "final", "code": code, **extra}
    return str(fhir.create(body)["id"])


def test_token_forms(fhir: Fhir) -> None:
    loinc = _obs(fhir, {"system": LOINC, "code": "4548-4"})
    snomed = _obs(fhir, {"system": SNOMED, "code": "4548-4"})
    bare = _obs(fhir, {"code": "4548-4"})
    other = _obs(fhir, {"system": LOINC, "code": "2093-3"})
    assert set(fhir.ids("Observation?code=4548-4")) == {loinc, snomed, bare}
    assert fhir.ids(f"Observation?code={LOINC}|4548-4") == [loinc]
    assert fhir.ids("Observation?code=|4548-4") == [bare]
    assert set(fhir.ids(f"Observation?code={LOINC}|")) == {loinc, other}
    assert fhir.ids(f"Observation?code={LOINC}|nothing") == []


def test_comma_is_or_and_repeat_is_and(fhir: Fhir) -> None:
    both = _obs(fhir, {"system": LOINC, "code": "a"}, {"system": LOINC, "code": "b"})
    only_a = _obs(fhir, {"system": LOINC, "code": "a"})
    only_c = _obs(fhir, {"system": LOINC, "code": "c"})
    assert set(fhir.ids("Observation?code=a,c")) == {both, only_a, only_c}
    assert fhir.ids("Observation?code=a&code=b") == [both]


def test_not_returns_resources_without_a_matching_code(fhir: Fhir) -> None:
    final = fhir.create(
        {
            "resourceType": "Condition",
            "subject": {"reference": "Patient/x"},
            "clinicalStatus": {"coding": [{"code": "active"}]},
        }
    )["id"]
    resolved = fhir.create(
        {
            "resourceType": "Condition",
            "subject": {"reference": "Patient/x"},
            "clinicalStatus": {"coding": [{"code": "resolved"}]},
        }
    )["id"]
    none = fhir.create({"resourceType": "Condition", "subject": {"reference": "Patient/x"}})["id"]
    assert set(fhir.ids("Condition?clinical-status:not=active")) == {resolved, none}
    assert fhir.ids("Condition?clinical-status:not=active,resolved") == [none]
    assert final not in fhir.ids("Condition?clinical-status:not=active")


def test_text_modifier_matches_words_of_display_and_text(fhir: Fhir) -> None:
    diabetes = _obs(fhir, {"system": SNOMED, "code": "1", "display": "Type 2 Diabetes mellitus"})
    by_text = _obs(fhir, {"system": SNOMED, "code": "2"}, text="Hémoglobine A1c")
    _obs(fhir, {"system": SNOMED, "code": "3", "display": "Prediabetic state"})
    assert fhir.ids("Observation?code:text=diabetes") == [diabetes]
    assert fhir.ids("Observation?code:text=HEMOGLOBINE") == [by_text]
    assert fhir.ids("Observation?code:text=type 2 dia") == [diabetes]


def test_missing(fhir: Fhir) -> None:
    coded = _obs(fhir, {"system": LOINC, "code": "x"}, category=[{"coding": [{"code": "lab"}]}])
    plain = _obs(fhir, {"system": LOINC, "code": "x"})
    assert fhir.ids("Observation?category:missing=true") == [plain]
    assert fhir.ids("Observation?category:missing=false") == [coded]


def test_nhs_number_identifier(fhir: Fhir) -> None:
    ann = fhir.create(
        {"resourceType": "Patient", "identifier": [{"system": NHS, "value": "9000000009"}]}
    )["id"]
    fhir.create(
        {
            "resourceType": "Patient",
            "identifier": [{"system": "https://other.example/mrn", "value": "9000000009"}],
        }
    )
    assert fhir.ids(f"Patient?identifier={NHS}|9000000009") == [ann]
    assert len(fhir.ids("Patient?identifier=9000000009")) == 2
    assert fhir.ids(f"Patient?identifier={NHS}|9000000017") == []


def test_identifier_of_type(fhir: Fhir) -> None:
    v2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
    mrn = fhir.create(
        {
            "resourceType": "Patient",
            "identifier": [
                {
                    "type": {"coding": [{"system": v2, "code": "MR"}]},
                    "system": "urn:x",
                    "value": "123",
                }
            ],
        }
    )["id"]
    fhir.create(
        {
            "resourceType": "Patient",
            "identifier": [
                {
                    "type": {"coding": [{"system": v2, "code": "DL"}]},
                    "system": "urn:x",
                    "value": "123",
                }
            ],
        }
    )
    assert fhir.ids(f"Patient?identifier:of-type={v2}|MR|123") == [mrn]


def test_code_primitives_boolean_and_system(fhir: Fhir) -> None:
    woman = fhir.create({"resourceType": "Patient", "gender": "female", "active": True})["id"]
    man = fhir.create({"resourceType": "Patient", "gender": "male", "active": False})["id"]
    assert fhir.ids("Patient?gender=female") == [woman]
    assert fhir.ids("Patient?gender=http://hl7.org/fhir/administrative-gender|male") == [man]
    assert fhir.ids("Patient?active=true") == [woman]
    assert fhir.ids("Patient?active=false") == [man]


def test_meta_tag_security_and_profile_on_any_type(fhir: Fhir) -> None:
    v3 = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
    profile = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"
    tagged = fhir.create(
        {
            "resourceType": "Patient",
            "meta": {
                "tag": [{"system": "urn:tags", "code": "diabetes-team"}],
                "security": [{"system": v3, "code": "R"}],
                "profile": [profile],
            },
        }
    )["id"]
    fhir.create({"resourceType": "Patient"})
    assert fhir.ids("Patient?_tag=urn:tags|diabetes-team") == [tagged]
    assert fhir.ids(f"Patient?_security={v3}|R") == [tagged]
    assert fhir.ids(f"Patient?_profile={profile}") == [tagged]
    device = fhir.create({"resourceType": "Device", "meta": {"tag": [{"code": "t1"}]}})["id"]
    assert fhir.ids("Device?_tag=t1") == [device]


def test_id_parameter(fhir: Fhir) -> None:
    one = fhir.create({"resourceType": "Patient"})["id"]
    two = fhir.create({"resourceType": "Patient"})["id"]
    assert fhir.ids(f"Patient?_id={one}") == [one]
    assert set(fhir.ids(f"Patient?_id={one},{two}")) == {one, two}
    assert fhir.ids("Patient?_id=unknown") == []


def test_escaped_comma_is_part_of_the_code(fhir: Fhir) -> None:
    odd = _obs(fhir, {"system": LOINC, "code": "a,b"})
    _obs(fhir, {"system": LOINC, "code": "a"})
    assert fhir.ids("Observation?code=a%5C,b") == [odd]


def test_terminology_modifiers_are_ignored_leniently_and_refused_strictly(fhir: Fhir) -> None:
    _obs(fhir, {"system": LOINC, "code": "a"})
    bundle = fhir.search("Observation?code:in=http://example.org/ValueSet/x")
    assert len(bundle["entry"]) == 2  # the match and the OperationOutcome
    issues = outcome(bundle)["issue"]
    assert issues[0]["severity"] == "warning" and issues[0]["expression"] == ["code:in"]
    assert "code%3Ain" not in bundle["link"][0]["url"]
    strict = fhir.search(
        "Observation?code:in=http://example.org/ValueSet/x", status=400, Prefer="handling=strict"
    )
    assert strict["issue"][0]["expression"] == ["code:in"]
