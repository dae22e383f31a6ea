"""String search: starts-with, case- and accent-insensitive; :exact, :contains, :missing."""

from __future__ import annotations

from tests.helpers import patient
from tests.search.conftest import Fhir


def test_default_is_case_and_accent_insensitive_starts_with(fhir: Fhir) -> None:
    jose = fhir.create(patient("Núñez", "José"))["id"]
    fhir.create(patient("Smith", "Ann"))
    assert fhir.ids("Patient?given=jose") == [jose]
    assert fhir.ids("Patient?given=JO") == [jose]
    assert fhir.ids("Patient?family=nunez") == [jose]
    assert fhir.ids("Patient?family=unez") == []  # not in the middle by default


def test_name_matches_any_part_and_the_whole_name(fhir: Fhir) -> None:
    ann = fhir.create(patient("Smith", "Ann"))["id"]
    assert fhir.ids("Patient?name=smi") == [ann]
    assert fhir.ids("Patient?name=ann") == [ann]
    assert fhir.ids("Patient?name=ann sm") == [ann]


def test_contains_and_exact(fhir: Fhir) -> None:
    smith = fhir.create(patient("Smithson", "Ann"))["id"]
    fhir.create(patient("Jones", "Bob"))
    assert fhir.ids("Patient?family:contains=THSO") == [smith]
    assert fhir.ids("Patient?family:exact=Smithson") == [smith]
    assert fhir.ids("Patient?family:exact=smithson") == []
    assert fhir.ids("Patient?family:exact=Smith") == []


def test_like_wildcards_are_literal(fhir: Fhir) -> None:
    odd = fhir.create(patient("O%Brien_x", "Ann"))["id"]
    fhir.create(patient("Obrien", "Ann"))
    assert fhir.ids("Patient?family:contains=%25b") == [odd]
    assert fhir.ids("Patient?family:contains=n_") == [odd]
    assert fhir.ids("Patient?family=o%25") == [odd]


def test_address_parts_and_missing(fhir: Fhir) -> None:
    preston = fhir.create(
        {
            "resourceType": "Patient",
            "address": [{"line": ["1 High Street"], "city": "Preston", "postalCode": "PR1 1AA"}],
        }
    )["id"]
    nowhere = fhir.create({"resourceType": "Patient"})["id"]
    assert fhir.ids("Patient?address=1 high") == [preston]
    assert fhir.ids("Patient?address=high") == []  # a line matches from its start
    assert fhir.ids("Patient?address:contains=high") == [preston]
    assert fhir.ids("Patient?address-city=preston") == [preston]
    assert fhir.ids("Patient?address-postalcode=pr1") == [preston]
    assert fhir.ids("Patient?address:missing=true") == [nowhere]


def test_or_and_and(fhir: Fhir) -> None:
    ann = fhir.create(patient("Smith", "Ann"))["id"]
    bob = fhir.create(patient("Jones", "Bob"))["id"]
    fhir.create(patient("Smith", "Carl"))
    assert set(fhir.ids("Patient?given=ann,bob")) == {ann, bob}
    assert fhir.ids("Patient?family=smith&given=ann") == [ann]


def test_long_values_match_on_their_indexed_prefix(fhir: Fhir) -> None:
    long_name = "A" * 300 + "Z"
    made = fhir.create(patient(long_name, "Ann"))["id"]
    assert fhir.ids(f"Patient?family={'a' * 250}") == [made]
    assert fhir.ids(f"Patient?family:exact={long_name}") == [made]
