"""Which search parameters the register answers, per resource type, for the CapabilityStatement.

Read from the same definitions search runs on (``fhir_adapters.search_parameters``), so what is
advertised is what is answered. ``special`` parameters (``Location.near``) are not answered and
not listed.
"""

from __future__ import annotations

from functools import cache

from fhir_adapters.search_parameters import parameters_for, resource_types

_COMMON = "Patient"  # any type: every type shares the Resource-level parameters


@cache
def searchable_parameters() -> dict[str, list[tuple[str, str, str]]]:
    """For each resource type ("*" = every type): (name, type, documentation) triples."""
    table: dict[str, list[tuple[str, str, str]]] = {
        "*": [
            (p.name, p.type, _doc(p.expression.replace(_COMMON, "Resource")))
            for p in parameters_for(_COMMON).values()
            if p.name.startswith("_")
        ]
    }
    for resource_type in resource_types():
        table[resource_type] = [
            (p.name, p.type, _doc(p.expression))
            for p in parameters_for(resource_type).values()
            if not p.name.startswith("_") and p.type != "special"
        ]
    return table


def _doc(expression: str) -> str:
    return f"Indexed from {expression}."
