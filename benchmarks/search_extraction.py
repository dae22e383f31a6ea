"""Measure search index extraction speed on the sample data.

Run ``python benchmarks/search_extraction.py [DATA_DIR]``.

Loads every resource of ``shared/data`` (Synthea bundles, HL7 examples, bulk NDJSON), warms the
compiled-expression caches, then times ``fhir_adapters.search_extraction.extract`` per resource
and prints microseconds per resource overall and for the commonest types.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from fhir_adapters.search_extraction import extract

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATA


def load(kind: str) -> list[dict[str, Any]]:
    """The resources of one sample set: synthea, examples or bulk."""
    if kind == "synthea":
        return [
            entry["resource"]
            for path in sorted((DATA / "synthea").glob("*.json"))
            for entry in json.loads(path.read_text())["entry"]
        ]
    if kind == "bulk":
        return [
            json.loads(line)
            for path in sorted((DATA / "bulk").rglob("*.ndjson"))
            for line in path.read_text().splitlines()
            if line.strip()
        ]
    paths = sorted((DATA / "fhir-examples").rglob("*.json"))
    found = [json.loads(path.read_text()) for path in paths]
    return [r for r in found if r.get("resourceType") != "Bundle"]


def measure(resources: list[dict[str, Any]]) -> tuple[float, int, dict[str, float], Counter[str]]:
    """Seconds per resource, rows produced, and seconds per resource by type."""
    for resource in resources[:500]:
        extract(resource)
    per_type: dict[str, float] = defaultdict(float)
    counts: Counter[str] = Counter()
    rows = 0
    start = time.perf_counter()
    for resource in resources:
        began = time.perf_counter()
        rows += len(extract(resource))
        per_type[resource["resourceType"]] += time.perf_counter() - began
        counts[resource["resourceType"]] += 1
    total = time.perf_counter() - start
    return total / len(resources), rows, {k: v / counts[k] for k, v in per_type.items()}, counts


def main() -> None:
    """Print the table."""
    for kind in ("synthea", "bulk", "examples"):
        resources = load(kind)
        average, rows, per_type, counts = measure(resources)
        print(f"{kind}: {len(resources)} resources, {rows} rows, {average * 1e6:.0f} us/resource")
        for name, _ in counts.most_common(5):
            print(f"  {name:<22} {counts[name]:>6}  {per_type[name] * 1e6:>6.0f} us")


if __name__ == "__main__":
    main()
