"""The SMART on FHIR Python client (fhirclient) against a real server: its R4 models must parse
every answer, and its pager must follow our next links."""

from __future__ import annotations

from fhirclient import client as smart_client
from fhirclient.models.bundle import Bundle
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient

from tests.clients.flows import NHS, hba1c, patient, transaction


def test_main_flows(live_base: str, live_token: str) -> None:
    smart = smart_client.FHIRClient(settings={"app_id": "register-tests", "api_base": live_base})
    server = smart.server
    # A backend system's token, sent on every request the client's session makes.
    server.session.headers["Authorization"] = f"Bearer {live_token}"
    created = Patient(patient("9000000009")).create(server)
    ann_id = created["id"]
    ann = Patient.read(ann_id, server)
    assert ann.identifier[0].value == "9000000009"
    ann.gender = "female"
    ann.update(server)
    assert Patient.read(ann_id, server).gender == "female"

    for day in range(1, 24):
        Observation(hba1c(ann_id, day)).create(server)
    search = Observation.where(struct={"subject": f"Patient/{ann_id}", "_count": "5"})
    pages = list(search.perform_iter(server))
    assert len(pages) == 5
    results = [o for o in search.perform_resources_iter(server) if isinstance(o, Observation)]
    assert len(results) == 23 and len({o.id for o in results}) == 23
    found = list(
        Patient.where(struct={"identifier": f"{NHS}|9000000009"}).perform_resources_iter(server)
    )
    assert [p.id for p in found] == [ann_id]

    response = Bundle(server.post_json("", transaction("9000000017")).json())
    assert response.type == "transaction-response"
    everything = Bundle(server.request_json(f"Patient/{ann_id}/$everything?_count=10"))
    assert everything.link[-1].relation == "next"
    assert everything.link[-1].url.startswith(live_base + "/")
