"""The CapabilityStatement, generated from the server's own tables (never hand-written)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from fhir_adapters.resource_types import r4_resource_types

TYPE_INTERACTIONS = (
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
)
SYSTEM_INTERACTIONS = ("transaction", "batch", "search-system", "history-system")
SOFTWARE_NAME = "Shared Care Register"
SOFTWARE_VERSION = "0.1.0"

OperationRow = tuple[str, Sequence[str], Sequence[str], str | None, str]


def capability_statement(
    *,
    base_url: str,
    interactions: Iterable[tuple[str, str]],
    search_parameters: Mapping[str, Sequence[tuple[str, str, str]]],
    operations: Iterable[OperationRow],
    max_page_size: int,
    default_page_size: int,
    security: Mapping[str, Any] | None = None,
) -> bytes:
    """A CapabilityStatement (fhirVersion 4.0.1) describing exactly what the tables say.

    ``interactions`` are (code, level) pairs from the route table; ``search_parameters`` maps a
    resource type (or "*" for all) to (name, type, documentation); ``operations`` are rows of
    (name, levels, resource types (empty = all), definition URL, documentation).
    """
    pairs = set(interactions)
    type_codes = [
        code for code in TYPE_INTERACTIONS if (code, "type") in pairs or (code, "instance") in pairs
    ]
    system_codes = [code for code in SYSTEM_INTERACTIONS if (code, "system") in pairs]
    operation_rows = list(operations)
    common = list(search_parameters.get("*", ()))
    resources = []
    for resource_type in sorted(r4_resource_types()):
        params = list(search_parameters.get(resource_type, ())) + common
        entry: dict[str, Any] = {
            "type": resource_type,
            "interaction": [{"code": code} for code in type_codes],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "not-supported",
            "conditionalUpdate": True,
            "conditionalDelete": "single",
            "referencePolicy": ["literal", "logical", "local"],
            "searchParam": [
                {"name": name, "type": kind, "documentation": doc} for name, kind, doc in params
            ],
        }
        ops = [
            _operation(name, definition, doc)
            for name, levels, types, definition, doc in operation_rows
            if ("type" in levels or "instance" in levels) and (not types or resource_type in types)
        ]
        if ops:
            entry["operation"] = ops
        resources.append(entry)
    rest: dict[str, Any] = {
        "mode": "server",
        "documentation": (
            f"Searches return at most {max_page_size} entries a page (_count); "
            f"{default_page_size} when _count is not given."
        ),
        "resource": resources,
        "interaction": [{"code": code} for code in system_codes],
    }
    if security:
        rest["security"] = dict(security)
    system_ops = [
        _operation(name, definition, doc)
        for name, levels, _types, definition, doc in operation_rows
        if "system" in levels
    ]
    if system_ops:
        rest["operation"] = system_ops
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(UTC).date().isoformat(),
        "publisher": "Shared Care Register",
        "kind": "instance",
        "software": {"name": SOFTWARE_NAME, "version": SOFTWARE_VERSION},
        "implementation": {"description": "Shared care register FHIR API", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [rest],
    }
    return orjson.dumps(statement)


def _operation(name: str, definition: str | None, documentation: str) -> dict[str, Any]:
    op: dict[str, Any] = {
        "name": name,
        "definition": definition or f"http://hl7.org/fhir/OperationDefinition/{name}",
    }
    if documentation:
        op["documentation"] = documentation
    return op
