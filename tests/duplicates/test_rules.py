"""The duplicate rules on hand-made timelines: each rule's repeats and its legitimate repeats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from register.duplicates.actions import PREFILL_SOURCE_URL, CareAction, actions_of, answer_digest
from register.duplicates.config import config_from
from register.duplicates.matching import Identity, grade, score
from register.duplicates.rules import evaluate, same_event

CONFIG = config_from(None)
T0 = datetime(2026, 1, 10, 9, tzinfo=UTC)


def act(kind="test", group="hba1c", rid="o1", days=0.0, org="GP", **extra) -> CareAction:
    resource_type = {
        "test": "Observation",
        "order": "ServiceRequest",
        "referral": "ServiceRequest",
        "prescription": "MedicationRequest",
        "question": "QuestionnaireResponse",
        "fact": "Observation",
    }[kind]
    return CareAction(
        kind=kind,
        group=group,
        resource_type=resource_type,
        resource_id=rid,
        occurred_at=T0 + timedelta(days=days),
        org=org,
        **extra,
    )


def test_repeat_hba1c_within_interval_at_another_org():
    findings = evaluate([act(rid="new", days=21, org="HOSP")], [act(rid="old")], CONFIG)
    assert len(findings) == 1
    finding = findings[0]
    assert (finding.rule, finding.code, finding.severity) == ("repeat-test", "MINFREQ", "moderate")
    assert finding.original.resource_id == "old" and finding.repeat.resource_id == "new"
    assert round(finding.gap_days) == 21


def test_legitimate_repeats_are_not_findings():
    old = act(rid="old")
    assert evaluate([act(rid="new", days=91)], [old], CONFIG) == []  # outside the interval
    assert evaluate([act(rid="new", days=20)], [act(rid="old", status="cancelled")], CONFIG) == []
    assert (
        evaluate([act(rid="new", days=20)], [act(rid="old", status="entered-in-error")], CONFIG)
        == []
    )
    # A result fulfilling the earlier order is the same test, not a repeat.
    order = act(kind="order", rid="sr1")
    result = act(rid="obs1", days=2, linked=frozenset({"ServiceRequest/sr1"}))
    assert evaluate([result], [order], CONFIG) == []
    # Same encounter: parts of one event.
    assert (
        evaluate(
            [act(rid="b", days=0.5, encounter="Encounter/e")],
            [act(rid="a", encounter="Encounter/e")],
            CONFIG,
        )
        == []
    )
    # Another test group.
    assert evaluate([act(rid="new", group="lipids", days=5)], [old], CONFIG) == []


def test_confirmation_of_a_diagnostic_hba1c_is_legitimate():
    high = act(rid="old", value=52.0, unit="mmol/mol")
    assert evaluate([act(rid="new", days=10)], [high], CONFIG) == []
    normal = act(rid="old", value=40.0, unit="mmol/mol")
    assert len(evaluate([act(rid="new", days=10)], [normal], CONFIG)) == 1
    assert len(evaluate([act(rid="new", days=20)], [high], CONFIG)) == 1  # past 14 days


def test_reduced_egfr_confirmation():
    reduced = act(group="egfr", rid="old", value=48.0, unit="mL/min/{1.73_m2}")
    assert evaluate([act(group="egfr", rid="new", days=7)], [reduced], CONFIG) == []
    normal = act(group="egfr", rid="old", value=88.0, unit="mL/min/{1.73_m2}")
    assert len(evaluate([act(group="egfr", rid="new", days=7)], [normal], CONFIG)) == 1


def test_stated_reason_is_kept_as_mitigation():
    (finding,) = evaluate([act(rid="new", days=5, reason="Suspected lab error")], [act()], CONFIG)
    assert finding.mitigation == "Suspected lab error"
    assert finding.severity == "low"


def test_closest_earlier_test_is_named():
    earlier = [act(rid="a", days=0), act(rid="b", days=30, org="DT")]
    (finding,) = evaluate([act(rid="c", days=40, org="HOSP")], earlier, CONFIG)
    assert finding.original.resource_id == "b"


def rx(
    rid,
    org="GP",
    practitioner="Practitioner/p1",
    codes=(),
    ingredients=(),
    classes=(),
    status="active",
    days=0.0,
):
    return act(
        kind="prescription",
        group="medication",
        rid=rid,
        org=org,
        days=days,
        practitioner=practitioner,
        codes=frozenset(codes),
        ingredients=frozenset(ingredients),
        classes=frozenset(classes),
        status=status,
    )


def test_duplicate_therapy_levels():
    metformin = rx("a", codes=["rx|860975"], ingredients=["metformin"], classes=["A10BA"])
    same_code = rx(
        "b", org="HOSP", codes=["rx|860975"], ingredients=["metformin"], classes=["A10BA"]
    )
    (f,) = evaluate([same_code], [metformin], CONFIG)
    assert (f.code, f.severity) == ("DUPTHPY", "high")
    other_product = rx(
        "c", org="HOSP", codes=["dmd|1"], ingredients=["metformin"], classes=["A10BA"]
    )
    assert evaluate([other_product], [metformin], CONFIG)[0].code == "DUPTHPGEN"
    statin_a = rx("s1", ingredients=["atorvastatin"], classes=["C10AA"])
    statin_b = rx("s2", org="HOSP", ingredients=["simvastatin"], classes=["C10AA"])
    assert evaluate([statin_b], [statin_a], CONFIG)[0].code == "DUPTHPCLS"


def test_therapy_repeats_that_are_not_duplicates():
    metformin = rx("a", codes=["rx|1"], ingredients=["metformin"])
    reissue = rx("b", codes=["rx|1"], ingredients=["metformin"])  # same prescriber and org
    assert evaluate([reissue], [metformin], CONFIG) == []
    stopped = rx("a", codes=["rx|1"], status="stopped")
    assert evaluate([rx("b", org="HOSP", codes=["rx|1"])], [stopped], CONFIG) == []
    unrelated = rx("b", org="HOSP", ingredients=["gliclazide"], classes=["A10BB"])
    assert (
        evaluate([unrelated], [rx("a", ingredients=["metformin"], classes=["A10BA"])], CONFIG) == []
    )
    same_org_other_prescriber = rx("b", codes=["rx|1"], practitioner="Practitioner/p2")
    assert len(evaluate([same_org_other_prescriber], [metformin], CONFIG)) == 1


def test_repeat_question_unless_confirmed_or_stale():
    smoking_fact = act(kind="fact", group="smoking", rid="obs", days=0)
    asked = act(kind="question", group="smoking", rid="qr", days=30, org="HOSP")
    (f,) = evaluate([asked], [smoking_fact], CONFIG)
    assert f.rule == "repeat-question"
    confirmed = act(kind="question", group="smoking", rid="qr", days=30, confirmed=True)
    assert evaluate([confirmed], [smoking_fact], CONFIG) == []
    stale = act(kind="question", group="smoking", rid="qr", days=400)
    assert evaluate([stale], [smoking_fact], CONFIG) == []
    later_fact = act(kind="fact", group="smoking", rid="obs", days=60)
    assert evaluate([asked], [later_fact], CONFIG) == []  # not held when asked
    diabetes = act(kind="fact", group="diabetes-type", rid="c", days=-3000)
    assert (
        len(
            evaluate(
                [act(kind="question", group="diabetes-type", rid="q", days=1)], [diabetes], CONFIG
            )
        )
        == 1
    )  # never stale


def test_repeat_referral_only_while_open_elsewhere():
    open_a = act(kind="referral", group="sr:sct|1", rid="r1", org="GP", status="active")
    again = act(kind="referral", group="sr:sct|1", rid="r2", org="HOSP", status="active", days=3)
    assert evaluate([again], [open_a], CONFIG)[0].rule == "repeat-referral"
    done = act(kind="referral", group="sr:sct|1", rid="r1", org="GP", status="completed")
    assert evaluate([again], [done], CONFIG) == []
    same_org = act(kind="referral", group="sr:sct|1", rid="r2", org="GP", status="active", days=3)
    assert evaluate([same_org], [open_a], CONFIG) == []


def test_same_event_rules():
    a = act(rid="a")
    assert same_event(a, act(rid="b", days=0.02))  # same org within the hour
    assert not same_event(a, act(rid="b", days=0.02, org="HOSP"))
    assert not same_event(a, act(rid="b", days=0.1))


def test_actions_from_resources():
    obs = {
        "resourceType": "Observation",
        "id": "o",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
        "effectiveDateTime": "2026-01-10",
        "subject": {"reference": "Patient/p"},
        "valueQuantity": {"value": 50, "unit": "mmol/mol", "code": "mmol/mol"},
    }
    (action,) = actions_of(obs, CONFIG, author_org="A1", recorded_at=T0)
    assert (action.kind, action.group, action.value, action.org) == ("test", "hba1c", 50.0, "A1")
    med = {
        "resourceType": "MedicationRequest",
        "id": "m",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": {
            "coding": [
                {"system": "https://dmd.nhs.uk", "code": "x", "display": "Metformin 500mg tablets"}
            ]
        },
    }
    kinds = {a.kind: a for a in actions_of(med, CONFIG, author_org=None, recorded_at=T0)}
    assert set(kinds) == {"prescription", "fact"}  # also tells that medications are known
    assert kinds["prescription"].ingredients == {"metformin"}
    assert kinds["prescription"].classes == {"A10BA"}
    assert kinds["fact"].group == "medications"
    answer = {"valueCoding": {"system": "http://snomed.info/sct", "code": "8517006"}}
    confirmed = {
        **answer,
        "extension": [
            {
                "url": PREFILL_SOURCE_URL,
                "extension": [{"url": "digest", "valueString": answer_digest(answer)}],
            }
        ],
    }
    changed = {"valueCoding": {"code": "77176002"}, "extension": confirmed["extension"]}
    qr = {
        "resourceType": "QuestionnaireResponse",
        "id": "q",
        "status": "completed",
        "subject": {"reference": "Patient/p"},
        "authored": "2026-02-01",
        "item": [
            {
                "linkId": "1",
                "code": [{"system": "http://loinc.org", "code": "72166-2"}],
                "answer": [confirmed],
            },
            {
                "linkId": "2",
                "code": [{"system": "http://loinc.org", "code": "48765-2"}],
                "answer": [changed],
            },
        ],
    }
    actions = {a.group: a for a in actions_of(qr, CONFIG, author_org="H", recorded_at=T0)}
    assert actions["smoking"].confirmed is True
    assert actions["allergies"].confirmed is False


def test_patient_matching_scores():
    base = {
        "resourceType": "Patient",
        "id": "a",
        "gender": "female",
        "birthDate": "1960-01-01",
        "name": [{"family": "Smith", "given": ["Ann"]}],
        "address": [{"postalCode": "PR1 1AA"}],
    }
    same_person = Identity.of(
        {
            **base,
            "id": "b",
            "name": [{"family": "SMITH", "given": ["Ann"]}],
            "address": [{"postalCode": "pr11aa"}],
        }
    )
    query = Identity.of(base)
    assert score(query, same_person) == 1.0
    assert grade(query, same_person, 1.0) == "probable"
    other = Identity.of({**base, "id": "c", "birthDate": "1961-01-01", "gender": "male"})
    assert score(query, other) < 0.7
    with_nhs = Identity.of(
        {
            **base,
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"}],
        }
    )
    assert grade(with_nhs, with_nhs, score(with_nhs, with_nhs)) == "certain"
