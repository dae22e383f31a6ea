"""Result parameters: paging links, _count, _sort, _total, _summary, _elements, includes."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.helpers import observation, patient
from tests.search.conftest import Fhir, match_ids, next_link, outcome, typed_ids


def _patients(fhir: Fhir, count: int) -> list[str]:
    return [fhir.create(patient(f"Fam{i:03d}", f"G{i % 3}"))["id"] for i in range(count)]


def test_default_count_and_absolute_links_keep_parameters(fhir: Fhir) -> None:
    made = _patients(fhir, 23)
    bundle = fhir.search("Patient?given=g&_format=json")
    assert bundle["type"] == "searchset"
    assert len(match_ids(bundle)) == 20
    assert bundle["total"] == 23
    link = next_link(bundle)
    assert link is not None and link.startswith("http://testserver/fhir/Patient?")
    query = parse_qs(urlsplit(link).query)
    assert query["given"] == ["g"] and query["_format"] == ["json"] and "_page" in query
    self_link = next_link(bundle, "self")
    assert self_link == "http://testserver/fhir/Patient?given=g&_format=json"
    second = fhir.search(link)
    assert match_ids(second) == made[20:]
    assert next_link(second) is None
    previous = next_link(second, "previous")
    assert previous is not None and match_ids(fhir.search(previous)) == made[:20]


def test_count_limits(fhir: Fhir) -> None:
    _patients(fhir, 5)
    assert len(fhir.ids("Patient?_count=2")) == 2
    zero = fhir.search("Patient?_count=0")
    assert zero["total"] == 5 and "entry" not in zero
    assert fhir.search("Patient?_count=x", status=400)["issue"][0]["expression"] == ["_count"]


def test_count_is_capped_by_the_maximum(client, fhir: Fhir) -> None:
    client.app.state.settings.max_page_size = 3
    _patients(fhir, 5)
    assert len(fhir.ids("Patient?_count=1000")) == 3


def test_pages_stay_correct_while_others_write(fhir: Fhir) -> None:
    made = _patients(fhir, 9)
    bundle = fhir.search("Patient?_count=4")
    seen = match_ids(bundle)
    fhir.create(patient("Late", "Comer"))  # lands after the pages already planned
    fhir.client.delete(f"/fhir/Patient/{made[0]}")  # already shown: shifts nothing
    while (link := next_link(bundle)) is not None:
        bundle = fhir.search(link)
        seen += match_ids(bundle)
    assert seen[:9] == made
    assert len(seen) == len(set(seen)) == 10


def test_sort_several_keys_descending_and_missing_last(fhir: Fhir) -> None:
    rows = [("b", "1990-01-01"), ("a", "1980-01-01"), ("b", "1970-01-01"), ("a", None)]
    ids = []
    for family, birth in rows:
        body = patient(family, "x")
        if birth:
            body["birthDate"] = birth
        ids.append(fhir.create(body)["id"])
    assert fhir.ids("Patient?_sort=family,-birthdate") == [ids[1], ids[3], ids[0], ids[2]]
    assert fhir.ids("Patient?_sort=birthdate") == [ids[2], ids[1], ids[0], ids[3]]
    assert fhir.ids("Patient?_sort=-birthdate") == [ids[0], ids[1], ids[2], ids[3]]
    assert fhir.ids("Patient?_sort=-_lastUpdated") == ids[::-1]
    assert fhir.ids("Patient?_sort=_id") == sorted(ids)
    bad = fhir.search("Patient?_sort=nonsense", status=400)
    assert bad["issue"][0]["expression"] == ["_sort"]


def test_sorted_paging_in_both_directions(fhir: Fhir) -> None:
    for i in range(7):
        fhir.create(patient(f"F{i % 3}", "x", birthDate=f"19{60 + i}-01-01"))
    everything = fhir.ids("Patient?_sort=-family,birthdate&_count=100")
    bundle = fhir.search("Patient?_sort=-family,birthdate&_count=3")
    pages = [match_ids(bundle)]
    while (link := next_link(bundle)) is not None:
        bundle = fhir.search(link)
        pages.append(match_ids(bundle))
    assert [rid for page in pages for rid in page] == everything
    back = [match_ids(bundle)]
    while (link := next_link(bundle, "previous")) is not None:
        bundle = fhir.search(link)
        back.insert(0, match_ids(bundle))
    assert back == pages


def test_total_modes(fhir: Fhir) -> None:
    _patients(fhir, 4)
    assert fhir.search("Patient?_count=2")["total"] == 4
    assert fhir.search("Patient?_count=2&_total=accurate")["total"] == 4
    assert fhir.search("Patient?_count=2&_total=estimate")["total"] == 4
    assert "total" not in fhir.search("Patient?_count=2&_total=none")
    assert fhir.search("Patient?_total=maybe", status=400)["issue"][0]["expression"] == ["_total"]


def test_summary_and_elements(fhir: Fhir) -> None:
    made = fhir.create(
        patient(
            "Smith",
            "Ann",
            birthDate="1961-04-02",
            text={"status": "generated", "div": "<div>Ann</div>"},
            maritalStatus={"text": "Married"},
        )
    )
    count = fhir.search("Patient?_summary=count")
    assert count["total"] == 1 and "entry" not in count
    summary = fhir.search("Patient?_summary=true")["entry"][0]["resource"]
    assert summary["birthDate"] == "1961-04-02" and "maritalStatus" not in summary
    assert "text" not in summary
    assert {"code": "SUBSETTED"}.items() <= summary["meta"]["tag"][-1].items()
    data = fhir.search("Patient?_summary=data")["entry"][0]["resource"]
    assert "text" not in data and data["maritalStatus"] == {"text": "Married"}
    text = fhir.search("Patient?_summary=text")["entry"][0]["resource"]
    assert set(text) == {"resourceType", "id", "meta", "text"}
    elements = fhir.search("Patient?_elements=birthDate,Patient.name")["entry"][0]["resource"]
    assert set(elements) == {"resourceType", "id", "meta", "birthDate", "name"}
    assert elements["meta"]["versionId"] == made["meta"]["versionId"]
    full = fhir.search("Patient")["entry"][0]["resource"]
    assert full == made  # untouched bytes when no subset is asked for


def test_elements_keeps_mandatory_and_choice_elements(fhir: Fhir) -> None:
    fhir.create(observation("Patient/x", value=5.0))
    found = fhir.search("Observation?_elements=value")["entry"][0]["resource"]
    assert set(found) == {"resourceType", "id", "meta", "status", "code", "valueQuantity"}


def test_include_and_revinclude(fhir: Fhir) -> None:
    org = fhir.create({"resourceType": "Organization", "name": "GP"})["id"]
    ann = fhir.create(
        patient("Smith", "Ann", managingOrganization={"reference": f"Organization/{org}"})
    )["id"]
    obs = [fhir.create(observation(f"Patient/{ann}"))["id"] for _ in range(2)]
    bundle = fhir.search(f"Observation?patient={ann}&_include=Observation:patient")
    assert typed_ids(bundle) == [f"Observation/{o}" for o in obs]
    assert typed_ids(bundle, "include") == [f"Patient/{ann}"]
    bundle = fhir.search(f"Patient?_id={ann}&_revinclude=Observation:subject")
    assert sorted(typed_ids(bundle, "include")) == sorted(f"Observation/{o}" for o in obs)
    # iterate: observations -> patient -> organization
    bundle = fhir.search(
        f"Observation?patient={ann}&_include=Observation:patient"
        "&_include:iterate=Patient:organization"
    )
    assert set(typed_ids(bundle, "include")) == {f"Patient/{ann}", f"Organization/{org}"}
    # without iterate the organization is not reached from observations
    bundle = fhir.search(
        f"Observation?patient={ann}&_include=Observation:patient&_include=Patient:organization",
        status=400,
    )
    bundle = fhir.search(f"Patient?_id={ann}&_include=*")
    assert typed_ids(bundle, "include") == [f"Organization/{org}"]
    bundle = fhir.search(f"Observation?patient={ann}&_include=Observation:subject:Group")
    assert typed_ids(bundle, "include") == []


def test_unknown_parameters_lenient_and_strict(fhir: Fhir) -> None:
    _patients(fhir, 2)
    bundle = fhir.search("Patient?nonsense=1&given=g0")
    assert len(match_ids(bundle)) == 1
    issue = outcome(bundle)["issue"][0]
    assert issue["severity"] == "warning" and issue["expression"] == ["nonsense"]
    assert "nonsense" not in next_link(bundle, "self")
    strict = fhir.search("Patient?nonsense=1", status=400, Prefer="handling=strict")
    assert strict["issue"][0]["expression"] == ["nonsense"]
    lenient = fhir.search("Patient?nonsense=1", Prefer="handling=lenient")
    assert outcome(lenient) is not None
    assert outcome(fhir.search("Patient?_offset=2")) is not None


def test_post_search_form_encoded(fhir: Fhir) -> None:
    ann = fhir.create(patient("Smith", "Ann"))["id"]
    fhir.create(patient("Jones", "Bob"))
    response = fhir.client.post(
        "/fhir/Patient/_search",
        data={"family": "smith"},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert match_ids(response.json()) == [ann]
    assert "family=smith" in next_link(response.json(), "self")


def test_compartment_search(fhir: Fhir) -> None:
    ann = fhir.create(patient("Smith", "Ann"))["id"]
    bob = fhir.create(patient("Jones", "Bob"))["id"]
    mine = fhir.create(observation(f"Patient/{ann}"))["id"]
    fhir.create(observation(f"Patient/{bob}"))
    fhir.create(observation(f"Patient/{ann}", code="2093-3"))
    assert fhir.ids(f"Patient/{ann}/Observation?code=4548-4") == [mine]
    assert len(fhir.ids(f"Patient/{ann}/Observation")) == 2
    assert fhir.ids(f"Patient/{ann}/Patient") == [ann]
    bundle = fhir.search(f"Patient/{ann}/Observation?_count=1")
    assert next_link(bundle).startswith(f"http://testserver/fhir/Patient/{ann}/Observation?")
    assert fhir.ids("Patient/nobody/Observation") == []
    fhir.search("Practitioner/x/Observation", status=400)


def test_deleted_resources_are_not_found(fhir: Fhir) -> None:
    ann = fhir.create(patient("Smith", "Ann"))["id"]
    assert fhir.ids("Patient?family=smith") == [ann]
    fhir.client.delete(f"/fhir/Patient/{ann}")
    assert fhir.ids("Patient?family=smith") == []


def test_update_reindexes(fhir: Fhir) -> None:
    made = fhir.create(patient("Smith", "Ann"))
    fhir.put({**made, "name": [{"family": "Jones"}]})
    assert fhir.ids("Patient?family=smith") == []
    assert fhir.ids("Patient?family=jones") == [made["id"]]


@pytest.mark.parametrize("accept", ["application/json", "application/fhir+json"])
def test_search_answers_both_json_types(fhir: Fhir, accept: str) -> None:
    fhir.create(patient())
    response = fhir.client.get("/fhir/Patient", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(accept)
