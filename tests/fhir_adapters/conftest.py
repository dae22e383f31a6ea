"""Sample FHIR data for the fhir_adapters tests: Synthea bundles, HL7 examples, bulk NDJSON.

The data is found by :func:`tests.conftest.shared_data` (``../shared/data`` beside the
repository, or ``REGISTER_SHARED_DATA``): skipped when absent on a developer's machine, a failure
in CI.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import shared_data

Resource = dict[str, Any]


def _require(relative: str) -> Path:
    """The shared data file or folder at ``relative`` (skipped locally, a failure in CI)."""
    return shared_data(relative)


def _bundle_resources(bundle: Resource) -> Iterator[Resource]:
    for entry in bundle.get("entry", ()):
        resource = entry.get("resource")
        if isinstance(resource, dict):
            if resource.get("resourceType") == "Bundle":
                yield from _bundle_resources(resource)
            else:
                yield resource


def load_synthea_bundles() -> list[Resource]:
    """Every Synthea transaction Bundle, parsed."""
    folder = _require("synthea")
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def load_examples() -> list[Resource]:
    """Every HL7 example resource, Bundles opened up into their entries."""
    folder = _require("fhir-examples")
    resources: list[Resource] = []
    for path in sorted(folder.rglob("*.json")):
        resource = json.loads(path.read_text())
        if resource.get("resourceType") == "Bundle":
            resources.extend(_bundle_resources(resource))
        else:
            resources.append(resource)
    return resources


def load_bulk() -> list[Resource]:
    """Every resource of the bulk NDJSON sample."""
    folder = _require("bulk/10-patients")
    return [
        json.loads(line)
        for path in sorted(folder.glob("*.ndjson"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]


@pytest.fixture(scope="session")
def synthea_bundles() -> list[Resource]:
    """The 80 Synthea patient Bundles."""
    return load_synthea_bundles()


@pytest.fixture(scope="session")
def synthea_resources(synthea_bundles: list[Resource]) -> list[Resource]:
    """Every resource of the Synthea Bundles (references still ``urn:uuid:``)."""
    return [r for bundle in synthea_bundles for r in _bundle_resources(bundle)]


@pytest.fixture(scope="session")
def example_resources() -> list[Resource]:
    """The HL7 R4 example resources (and the 3.6.0 supplement)."""
    return load_examples()


@pytest.fixture(scope="session")
def bulk_resources() -> list[Resource]:
    """The bulk-export sample resources."""
    return load_bulk()


@pytest.fixture(scope="session")
def all_resources(
    synthea_resources: list[Resource],
    example_resources: list[Resource],
    bulk_resources: list[Resource],
) -> list[Resource]:
    """Every sample resource."""
    return [*synthea_resources, *example_resources, *bulk_resources]


def resolve_bundle_references(bundle: Resource) -> list[Resource]:
    """Rewrite a transaction Bundle's ``urn:uuid:`` references to ``Type/id``, as a server would.

    Each entry gets the id of its fullUrl's uuid; returns the rewritten resources (copies).
    """
    mapping: dict[str, str] = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        full_url = entry.get("fullUrl", "")
        if full_url.startswith("urn:uuid:"):
            mapping[full_url] = f"{resource['resourceType']}/{full_url[len('urn:uuid:') :]}"

    def rewrite(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: (
                    mapping.get(item, item)
                    if key == "reference" and isinstance(item, str)
                    else rewrite(item)
                )
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [rewrite(item) for item in value]
        return value

    resources = []
    for entry in bundle["entry"]:
        resource = rewrite(entry["resource"])
        full_url = entry.get("fullUrl", "")
        if full_url.startswith("urn:uuid:"):
            resource["id"] = full_url[len("urn:uuid:") :]
        resources.append(resource)
    return resources


@pytest.fixture(scope="session")
def load_example() -> Any:
    """A function reading one HL7 example file by name (a fresh copy each call)."""

    def load(name: str) -> Resource:
        return json.loads(_require(f"fhir-examples/{name}").read_text())

    return load


@pytest.fixture(scope="session")
def synthea_records(synthea_bundles: list[Resource]) -> list[list[Resource]]:
    """Each Synthea Bundle's resources with references resolved to ``Type/id``."""
    return [resolve_bundle_references(bundle) for bundle in synthea_bundles]
