"""FHIR requests skip the app's middleware stack and router (register/api/fhir_entry.py) and
answer exactly as they did through them: same status, body and headers, for successes and for
every kind of error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Route as StarletteRoute

from register.api.errors import HANDLERS, handler_for
from register.app import create_app
from register.errors import FhirError
from tests.conftest import issue_token

PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
    "name": [{"family": "Entry", "given": ["Fhir"]}],
    "gender": "female",
}
VARYING = {"x-request-id", "date"}
"""Headers that differ between any two requests."""


def through_router(app):  # type: ignore[no-untyped-def]
    """``app`` with FHIR requests going through its middleware stack and router instead, as
    before the FHIR entry."""
    dispatcher = app.fhir_entry.app  # the request middleware, then the dispatcher
    app.fhir_entry = None
    app.router.routes.insert(1, StarletteRoute("/fhir{rest:path}", endpoint=dispatcher))
    return app


@pytest.fixture
def pair(settings, engine) -> Iterator[tuple[TestClient, TestClient]]:  # type: ignore[no-untyped-def]
    """Clients of the app as built and of the same app routed the old way, on one database."""
    direct = create_app(settings, engine=engine)
    routed = through_router(create_app(settings, engine=engine))
    headers = {"Authorization": f"Bearer {issue_token(direct)}"}
    with (
        TestClient(direct, base_url="http://testserver", headers=headers) as a,
        TestClient(routed, base_url="http://testserver", headers=headers) as b,
    ):
        yield a, b


def answer(response) -> tuple[int, bytes, dict[str, str]]:  # type: ignore[no-untyped-def]
    headers = {k: v for k, v in response.headers.items() if k not in VARYING}
    return response.status_code, response.content, headers


def test_fhir_answers_are_the_same_with_and_without_the_router(pair) -> None:  # type: ignore[no-untyped-def]
    direct, routed = pair
    created = direct.post("/fhir/Patient", json=PATIENT)
    assert created.status_code == 201
    pid = created.json()["id"]
    fhir_json = {"Content-Type": "application/fhir+json"}
    requests = [
        ("GET", f"/fhir/Patient/{pid}", {}, None),
        ("GET", f"/fhir/Patient/{pid}?_pretty=true", {}, None),
        ("GET", f"/fhir/Patient/{pid}/_history/1", {}, None),
        ("GET", "/fhir/metadata", {}, None),
        ("GET", "/fhir/Patient/does-not-exist", {}, None),  # 404 from the handler
        ("GET", "/fhir/NoSuchType/1", {}, None),  # unknown type
        ("GET", "/fhir/Patient/bad_id!", {}, None),  # invalid id
        ("GET", f"/fhir/Patient/{pid}", {"Accept": "application/fhir+xml"}, None),  # 406
        ("DELETE", "/fhir/metadata", {}, None),  # 405
        ("GET", "/fhir/a/b/c/d/e/f", {}, None),  # no such endpoint
        ("GET", "/fhirish", {}, None),  # not under the prefix's folder
        ("POST", "/fhir/Patient", fhir_json, b"{not json"),  # 400, malformed
        ("POST", "/fhir/Patient", fhir_json, b'{"resourceType": "Patient", "gender": 7}'),  # 422
        ("PUT", f"/fhir/Patient/{pid}", {**fhir_json, "If-Match": 'W/"9"'}, b"{}"),  # 400/412
        ("POST", "/fhir/.well-known/smart-configuration", {}, None),  # not discovery: FHIR's
        ("GET", "/fhir/.well-known/smart-configuration", {}, None),  # discovery, a plain route
    ]
    for method, path, headers, body in requests:
        a = direct.request(method, path, headers=headers, content=body)
        b = routed.request(method, path, headers=headers, content=body)
        assert answer(a) == answer(b), (method, path)
        assert "traceback" not in a.text.lower()
    unauthenticated = [c.get(f"/fhir/Patient/{pid}", headers={"Authorization": ""}) for c in pair]
    assert answer(unauthenticated[0]) == answer(unauthenticated[1])
    assert unauthenticated[0].status_code == 401


def test_an_oversized_fhir_body_is_413_through_the_entry(pair) -> None:  # type: ignore[no-untyped-def]
    direct, routed = pair
    limit = direct.app.state.settings.max_body_bytes
    body = b'{"resourceType": "Patient", "note": "' + b"x" * (limit + 10) + b'"}'
    headers = {"Content-Type": "application/fhir+json"}
    a = direct.post("/fhir/Patient", content=body, headers=headers)
    b = routed.post("/fhir/Patient", content=body, headers=headers)
    assert a.status_code == 413 and answer(a) == answer(b)


def test_an_unexpected_error_under_fhir_is_a_500_outcome_without_a_trace(
    settings, engine, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from register.api import fhir_routes

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret detail 9434765919")

    monkeypatch.setattr(fhir_routes, "response_format", broken)
    app = create_app(settings, engine=engine)
    headers = {"Authorization": f"Bearer {issue_token(app)}"}
    with TestClient(
        app, base_url="http://testserver", headers=headers, raise_server_exceptions=False
    ) as c:
        response = c.get("/fhir/Patient/x")
    assert response.status_code == 500
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "9434765919" not in response.text and "Traceback" not in response.text


class _Narrower(FhirError):
    pass


def test_each_error_finds_the_handler_of_its_nearest_class() -> None:
    for exception, handler in HANDLERS.items():
        assert handler_for(exception.__new__(exception)) is handler
    assert handler_for(_Narrower(404, [])) is HANDLERS[FhirError]
    assert handler_for(KeyError("x")) is None
