"""The access matrix over HTTP: each role x each interaction x the hospital's relationship with
the patient, against the outcome the rules give.

The data: the GP practice recorded Patient/p and an Observation ``obs-p`` (and the same for
Patient/q). The requesters: the hospital's clinician and system (whose relationship with p is the
state under test), a clinician of an unrelated organisation, patient p, patient q, a reviewer
and an administrator, and the GP's own system. Outcomes:

- ``seen``: the resource is served (200, or present in the Bundle);
- ``hidden``: exactly as if it did not exist (404, absent from the Bundle, a 404 entry);
- ``refused``: 403 for the role or scope (which says nothing about the resource).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.access.conftest import SEARCH_INDEX
from tests.access.world import OPEN_STATES, STATES, World

Outcome = str
SEEN, HIDDEN, REFUSED = "seen", "hidden", "refused"
TARGET = "Observation/obs-p"


def _read_like(response: Any) -> Outcome:
    if response.status_code == 200:
        return SEEN
    if response.status_code in (404, 410):
        return HIDDEN
    if response.status_code == 403:
        return REFUSED
    raise AssertionError(f"unexpected {response.status_code}: {response.text[:300]}")


def _bundle_has(response: Any, reference: str) -> Outcome:
    if response.status_code == 403:
        return REFUSED
    assert response.status_code == 200, response.text[:300]
    urls = [e.get("fullUrl", "") for e in response.json().get("entry", [])]
    return SEEN if any(url.endswith("/" + reference) for url in urls) else HIDDEN


def _bundle_request(kind: str, url: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [{"request": {"method": "GET", "url": url}}],
    }


def _transaction_entry(response: Any) -> Outcome:
    if response.status_code == 200:
        entry = response.json()["entry"][0]
        assert entry["response"]["status"].startswith("200")
        return SEEN
    return _read_like(response)  # a failed GET fails the whole transaction


def _batch_entry(response: Any) -> Outcome:
    if response.status_code == 403:
        return REFUSED
    assert response.status_code == 200, response.text[:300]
    status = response.json()["entry"][0]["response"]["status"]
    return {"200": SEEN, "404": HIDDEN, "403": REFUSED}[status[:3]]


INTERACTIONS: dict[str, Callable[[Any, dict[str, str]], Outcome]] = {
    "read": lambda http, h: _read_like(http.get(f"/fhir/{TARGET}", headers=h)),
    "vread": lambda http, h: _read_like(http.get(f"/fhir/{TARGET}/_history/1", headers=h)),
    "history-instance": lambda http, h: _read_like(http.get(f"/fhir/{TARGET}/_history", headers=h)),
    "history-type": lambda http, h: _bundle_has(
        http.get("/fhir/Observation/_history", headers=h), TARGET
    ),
    "history-system": lambda http, h: _bundle_has(http.get("/fhir/_history", headers=h), TARGET),
    "search": lambda http, h: _bundle_has(
        http.get("/fhir/Observation", params={"_id": "obs-p"}, headers=h), TARGET
    ),
    "search-post": lambda http, h: _bundle_has(
        http.post("/fhir/Observation/_search", data={"_id": "obs-p"}, headers=h), TARGET
    ),
    "transaction-get": lambda http, h: _transaction_entry(
        http.post("/fhir", json=_bundle_request("transaction", TARGET), headers=h)
    ),
    "batch-get": lambda http, h: _batch_entry(
        http.post("/fhir", json=_bundle_request("batch", TARGET), headers=h)
    ),
    "batch-search": lambda http, h: _batch_entry_search(
        http.post("/fhir", json=_bundle_request("batch", "Observation?_id=obs-p"), headers=h)
    ),
    "read-patient": lambda http, h: _read_like(http.get("/fhir/Patient/p", headers=h)),
}


SEARCH_INTERACTIONS: dict[str, Callable[[Any, dict[str, str]], Outcome]] = {
    "search-by-patient": lambda http, h: _bundle_has(
        http.get("/fhir/Observation", params={"patient": "p"}, headers=h), TARGET
    ),
    "compartment-search": lambda http, h: _bundle_has(
        http.get("/fhir/Patient/p/Observation", headers=h), TARGET
    ),
    "include": lambda http, h: _bundle_has(
        http.get(
            "/fhir/Observation",
            params={"_id": "obs-p", "_include": "Observation:patient"},
            headers=h,
        ),
        "Patient/p",
    ),
    "revinclude": lambda http, h: _bundle_has(
        http.get(
            "/fhir/Patient",
            params={"_id": "p", "_revinclude": "Observation:patient"},
            headers=h,
        ),
        TARGET,
    ),
    "chained": lambda http, h: _bundle_has(
        http.get("/fhir/Observation", params={"patient.family": "SecretPfamily"}, headers=h),
        TARGET,
    ),
    "everything": lambda http, h: _everything_has(
        http.get("/fhir/Patient/p/$everything", headers=h), TARGET
    ),
}
"""Interactions that need the search index (search by reference, compartments, includes, chains,
``$everything``): part of the matrix once search is on the register."""

if SEARCH_INDEX:
    INTERACTIONS.update(SEARCH_INTERACTIONS)


def _everything_has(response: Any, reference: str) -> Outcome:
    if response.status_code in (403, 404):
        return _read_like(response)
    return _bundle_has(response, reference)


def _batch_entry_search(response: Any) -> Outcome:
    if response.status_code == 403:
        return REFUSED
    assert response.status_code == 200, response.text[:300]
    entry = response.json()["entry"][0]
    if entry["response"]["status"].startswith("403"):
        return REFUSED
    inner = entry.get("resource", {}).get("entry", [])
    return SEEN if any(e["fullUrl"].endswith(TARGET) for e in inner) else HIDDEN


def expected(role: str, state: str, interaction: str) -> Outcome:
    """The rules, stated once, for every interaction."""
    if role in ("reviewer", "admin"):
        # No identifiable patient data, whatever the relationship: asking for a patient-data
        # type is refused; system history is allowed but holds only directory data.
        return HIDDEN if interaction == "history-system" else REFUSED
    if role == "hosp_system" and state == "break_glass":
        return REFUSED  # only clinicians may break the glass
    if role == "hosp_clinician":
        return SEEN if state in OPEN_STATES else HIDDEN
    if role == "hosp_system":
        return SEEN if state in OPEN_STATES else HIDDEN
    if role in ("gp_system", "patient_p"):
        return SEEN  # the recording organisation; the patient themself
    return HIDDEN  # another organisation's clinician, another patient


ROLES = (
    "hosp_clinician",
    "hosp_system",
    "other_clinician",
    "patient_p",
    "patient_q",
    "reviewer",
    "admin",
    "gp_system",
)


@pytest.fixture
def world(bare_client, token_for) -> World:
    return World(bare_client, token_for).build()


@pytest.mark.parametrize("state", STATES)
def test_access_matrix(world: World, state: str) -> None:
    extra = world.relate(state)
    table: dict[tuple[str, str], Outcome] = {}
    wanted: dict[tuple[str, str], Outcome] = {}
    for role in ROLES:
        headers = world.as_(role, **(extra if role.startswith("hosp_") else {}))
        for name, run in INTERACTIONS.items():
            table[(role, name)] = run(world.http, headers)
            want = expected(role, state, name)
            if name == "read-patient" and role == "hosp_system" and state == "break_glass":
                want = REFUSED
            wanted[(role, name)] = want
    wrong = {key: (got, wanted[key]) for key, got in table.items() if got != wanted[key]}
    assert not wrong, f"state {state}: (role, interaction) -> (got, expected): {wrong}"
