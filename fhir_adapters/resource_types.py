"""The FHIR R4 resource types the register accepts."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files


@lru_cache(maxsize=1)
def r4_resource_types() -> frozenset[str]:
    """Every concrete resource type of FHIR R4 (4.0.1)."""
    text = files("fhir_adapters").joinpath("data/r4-resource-types.txt").read_text("utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def is_resource_type(name: str) -> bool:
    """Whether ``name`` is an R4 resource type (case-sensitive, as FHIR URLs are)."""
    return name in r4_resource_types()
