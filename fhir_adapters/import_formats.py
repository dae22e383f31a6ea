"""Reading files of FHIR content for loading: Bundles, single resources and NDJSON."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

# NDJSON exports reference these by identifier, so they load first.
LOAD_ORDER = (
    "Organization",
    "Location",
    "Practitioner",
    "PractitionerRole",
    "Medication",
    "Patient",
    "RelatedPerson",
    "EpisodeOfCare",
    "CareTeam",
    "Encounter",
)


@dataclass(frozen=True)
class SourceFile:
    """A file to load and what it holds."""

    path: Path
    kind: str  # "bundle" | "resource" | "ndjson"
    resource_type: str | None = None  # for NDJSON named Type.*.ndjson


def discover(paths: list[Path]) -> list[SourceFile]:
    """The loadable files under ``paths`` (files or folders), in a dependency-friendly order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(p for p in sorted(path.rglob("*")) if p.is_file() and _loadable(p))
        else:
            files.append(path)
    sources = [_classify(p) for p in files]
    return sorted(sources, key=_order_key)


def _loadable(path: Path) -> bool:
    return path.suffix in (".json", ".ndjson") and not path.name.startswith(".")


def _classify(path: Path) -> SourceFile:
    if path.suffix == ".ndjson":
        return SourceFile(path, "ndjson", path.name.split(".", 1)[0] or None)
    return SourceFile(path, "json")


def _order_key(source: SourceFile) -> tuple[int, str]:
    if source.kind == "ndjson" and source.resource_type in LOAD_ORDER:
        return LOAD_ORDER.index(source.resource_type), str(source.path)
    return len(LOAD_ORDER), str(source.path)


def read_json(path: Path) -> Any:
    """A JSON file's content."""
    return orjson.loads(path.read_bytes())


def ndjson_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """The non-empty lines of an NDJSON file with their line numbers (1-based)."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def count_items(source: SourceFile) -> int:
    """How many items a file holds (Bundle entries, NDJSON lines, or 1), for progress bars."""
    if source.kind == "ndjson":
        with source.path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    try:
        content = read_json(source.path)
    except (OSError, orjson.JSONDecodeError):
        return 1
    if isinstance(content, dict) and content.get("resourceType") == "Bundle":
        return len(content.get("entry") or []) or 1
    return 1
