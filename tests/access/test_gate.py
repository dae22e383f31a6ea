"""Every FHIR route passes the access gate: none can forget to ask who is calling."""

from __future__ import annotations

import pytest

from register.api.fhir_routes import ROUTES

PUBLIC = {("GET", "/metadata")}


def _concrete(path: str) -> str:
    return (
        path.replace("{resource_type}", "Patient")
        .replace("{resource_id}", "p1")
        .replace("{version_id}", "1")
        .replace("{name}", "$everything")
    )


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path or '/'}")
def test_every_route_but_the_public_ones_needs_a_token(bare_client, route):
    response = bare_client.request(route.method, "/fhir" + _concrete(route.path), json={})
    if (route.method, route.path) in PUBLIC:
        assert route.public
        assert response.status_code == 200
    else:
        assert not route.public
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["resourceType"] == "OperationOutcome"
