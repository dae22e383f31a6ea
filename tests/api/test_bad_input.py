"""Bad input gets an OperationOutcome with the right status, naming the element at fault."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from register.app import create_app
from tests.conftest import issue_token
from tests.helpers import patient


@pytest.mark.parametrize(
    ("resource", "status", "expression"),
    [
        ({"resourceType": "Observation", "code": {"text": "x"}}, 422, "Observation.status"),
        (
            {"resourceType": "Patient", "birthDate": "1990-02-30"},
            422,
            "Patient.birthDate",
        ),
        ({"resourceType": "Patient", "name": [{"given": "Ann"}]}, 422, "Patient.name[0].given"),
        ({"resourceType": "Patient", "favouriteColour": "blue"}, 422, "Patient.favouriteColour"),
        (
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "valueQuantity": {"value": "high"},
            },
            422,
            "Observation.valueQuantity.value",
        ),
    ],
)
def test_invalid_resource_names_the_element(client, resource, status, expression):
    before = client.get("/fhir/_history").json().get("entry", [])
    response = client.post(f"/fhir/{resource['resourceType']}", json=resource)
    assert response.status_code == status
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert expression in outcome["issue"][0]["expression"]
    assert client.get("/fhir/_history").json().get("entry", []) == before


def test_malformed_json_is_400(client):
    response = client.post(
        "/fhir/Patient",
        content=b'{"resourceType": "Patient",',
        headers={"Content-Type": "application/fhir+json"},
    )
    assert response.status_code == 400
    assert response.json()["issue"][0]["code"] == "structure"
    assert client.post("/fhir/Patient", content=b"").status_code == 400
    assert client.post("/fhir/Patient", content=b"[1, 2]").status_code == 422


def test_a_huge_body_under_the_limit_is_answered_without_harm(client):
    """Nine megabytes of JSON (under the 10 MiB limit): refused as invalid with the element at
    fault, nothing stored, and the server goes on answering."""
    text = b'{"resourceType":"Patient","note":[' + b",".join([b'"xxxxxxx"'] * 900_000) + b"]}"
    assert 8_000_000 < len(text) < 10 * 1024 * 1024
    response = client.post(
        "/fhir/Patient", content=text, headers={"Content-Type": "application/fhir+json"}
    )
    assert response.status_code == 422
    issue = response.json()["issue"][0]
    assert any(e.startswith("Patient.note") for e in issue["expression"]), issue
    assert client.get("/fhir/Patient").json().get("entry", []) == []
    assert client.get("/health").status_code == 200


def test_deep_nesting_is_refused_without_harm(client):
    deep: dict = {"resourceType": "Patient"}
    node = deep
    for _ in range(5000):
        node["extension"] = [{"url": "http://x"}]
        node = node["extension"][0]
    text = b'{"resourceType":"Patient","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = client.post("/fhir/Patient", content=text)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    import orjson

    try:
        body = orjson.dumps(deep)
    except orjson.JSONEncodeError:  # orjson itself refuses to encode beyond its limit
        body = (
            b'{"resourceType":"Patient","extension":'
            + b'[{"extension":' * 3000
            + b"[]"
            + b"}]" * 3000
            + b"}"
        )
    assert client.post("/fhir/Patient", content=body).status_code == 400
    assert client.get("/health").status_code == 200


def test_body_over_the_limit_is_413(settings, engine):
    small = settings.model_copy(update={"max_body_bytes": 2048})
    app = create_app(small, engine=engine)
    with TestClient(app, headers={"Authorization": f"Bearer {issue_token(app)}"}) as client:
        big = patient(text={"status": "generated", "div": "<div>" + "x" * 5000 + "</div>"})
        response = client.post("/fhir/Patient", json=big)
        assert response.status_code == 413
        assert response.json()["resourceType"] == "OperationOutcome"
        assert client.post("/fhir/Patient", json=patient()).status_code == 201


def test_xml_is_refused_with_outcomes(client):
    rid = client.post("/fhir/Patient", json=patient()).json()["id"]
    for accept in ("application/fhir+xml", "application/xml", "text/xml"):
        response = client.get(f"/fhir/Patient/{rid}", headers={"Accept": accept})
        assert response.status_code == 406
        assert response.json()["resourceType"] == "OperationOutcome"
    assert client.get(f"/fhir/Patient/{rid}?_format=xml").status_code == 406
    xml_body = client.post(
        "/fhir/Patient",
        content=b"<Patient xmlns='http://hl7.org/fhir'/>",
        headers={"Content-Type": "application/fhir+xml"},
    )
    assert xml_body.status_code == 415
    assert xml_body.json()["resourceType"] == "OperationOutcome"


def test_json_forms_are_all_accepted(client):
    rid = client.post(
        "/fhir/Patient",
        content=b'{"resourceType":"Patient"}',
        headers={"Content-Type": "application/json"},
    ).json()["id"]
    for accept in ("application/json", "application/fhir+json", "*/*", "text/html, */*;q=0.8"):
        assert client.get(f"/fhir/Patient/{rid}", headers={"Accept": accept}).status_code == 200
    plain = client.get(f"/fhir/Patient/{rid}", headers={"Accept": "application/json"})
    assert plain.headers["content-type"].startswith("application/json")
    for fmt in ("json", "application/fhir+json", "application/json"):
        assert client.get(f"/fhir/Patient/{rid}?_format={fmt}").status_code == 200


def test_pretty(client):
    rid = client.post("/fhir/Patient", json=patient()).json()["id"]
    compact = client.get(f"/fhir/Patient/{rid}")
    pretty = client.get(f"/fhir/Patient/{rid}?_pretty=true")
    assert b"\n" not in compact.content
    assert b"\n  " in pretty.content
    assert pretty.json() == compact.json()


def test_unknown_endpoint_and_method_answer_outcomes(client):
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    response = client.request("OPTIONS", "/fhir/Patient/1")
    assert response.status_code == 405
    assert response.json()["resourceType"] == "OperationOutcome"


def test_server_errors_carry_no_stack_trace(client, monkeypatch):
    from register import interactions

    def explode(*args, **kwargs):
        raise RuntimeError("secret detail Patient/123 NHS 9000000009")

    monkeypatch.setattr(interactions, "read", explode)
    raising = TestClient(
        client.app,
        raise_server_exceptions=False,
        headers={"Authorization": client.headers["Authorization"]},
    )
    response = raising.get("/fhir/Patient/1")
    assert response.status_code == 500
    text = response.text
    assert "Traceback" not in text and "secret" not in text and "9000000009" not in text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.headers["x-request-id"] in text
