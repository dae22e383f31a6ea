"""Which search parameters the register answers, per resource type, for the CapabilityStatement.

Placeholder until the search issue lands: only ``_id``.
"""

from __future__ import annotations


def searchable_parameters() -> dict[str, list[tuple[str, str, str]]]:
    """For each resource type ("*" = every type): (name, type, documentation) triples."""
    return {"*": [("_id", "token", "Logical id of the resource.")]}
