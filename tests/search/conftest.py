"""Helpers for search tests: create resources over HTTP and read searchset Bundles."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient


class Fhir:
    """A thin FHIR helper around the test client (both databases)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def _ensure_patient(self, resource: dict[str, Any]) -> None:
        """Register the Patient a resource is about if the test has not: writing into a record
        needs the patient registered (by the writer's organisation, here)."""
        for element in ("subject", "patient"):
            ref = (resource.get(element) or {}).get("reference", "")
            if ref.startswith("Patient/") and ref.count("/") == 1:
                pid = ref.split("/", 1)[1]
                if self.client.get(f"/fhir/Patient/{pid}").status_code == 404:
                    self.client.put(
                        f"/fhir/Patient/{pid}", json={"resourceType": "Patient", "id": pid}
                    )

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        """POST a resource; the stored resource."""
        self._ensure_patient(resource)
        response = self.client.post(f"/fhir/{resource['resourceType']}", json=resource)
        assert response.status_code == 201, response.text
        return response.json()

    def put(self, resource: dict[str, Any]) -> dict[str, Any]:
        """PUT a resource at its id."""
        self._ensure_patient(resource)
        path = f"/fhir/{resource['resourceType']}/{resource['id']}"
        response = self.client.put(path, json=resource)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def search(self, url: str, *, status: int = 200, **headers: str) -> dict[str, Any]:
        """GET a search (relative to /fhir, or an absolute next link); the Bundle."""
        path = url if url.startswith("http") else f"/fhir/{url.lstrip('/')}"
        response = self.client.get(path, headers=headers)
        assert response.status_code == status, response.text
        return response.json()

    def ids(self, url: str, **headers: str) -> list[str]:
        """The ids of the matches on the first page, in order."""
        return match_ids(self.search(url, **headers))

    def all_ids(self, url: str) -> list[str]:
        """The ids of the matches on every page, following ``next`` links."""
        bundle = self.search(url)
        found = match_ids(bundle)
        while (link := next_link(bundle)) is not None:
            bundle = self.search(link)
            found += match_ids(bundle)
        return found


def match_ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    """Ids of the entries with ``search.mode`` ``mode``."""
    return [
        e["resource"]["id"]
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") == mode
    ]


def typed_ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    """``Type/id`` of the entries with ``search.mode`` ``mode``."""
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") == mode
    ]


def next_link(bundle: dict[str, Any], relation: str = "next") -> str | None:
    """The URL of a link relation, or None."""
    for link in bundle.get("link", []):
        if link["relation"] == relation:
            return str(link["url"])
    return None


def outcome(bundle: dict[str, Any]) -> dict[str, Any] | None:
    """The OperationOutcome entry of a searchset, if any."""
    for entry in bundle.get("entry", []):
        if entry.get("search", {}).get("mode") == "outcome":
            return dict(entry["resource"])
    return None


@pytest.fixture
def fhir(client: TestClient) -> Fhir:
    """The FHIR helper on the app under test."""
    return Fhir(client)
