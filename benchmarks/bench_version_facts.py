"""What keeping each version's facts costs a write: updates with and without it, same run.

    python -m benchmarks.bench_version_facts [--postgres URL] [--rounds 8] [--per-round 300]

Each stored version keeps the token and date rows the access policy reads
(``register/version_facts.py``): two ``INSERT ... SELECT`` statements per write. This updates
Conditions through ``register.interactions.update`` (validation, indexing, policy steps, commit:
the whole write path, in process, no HTTP), one transaction each, in alternating rounds with
the facts kept and with :func:`register.version_facts.record` replaced by a no-op, and prints
the median CPU and wall time per update of each and their paired ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks.bench_core import BENCH_ORG
from benchmarks.harness import prepare_database, temp_dir
from register import interactions, version_facts
from register.context import RequestContext
from register.db import create_db_engine, write_transaction
from register.migrate import upgrade

SNOMED = "http://snomed.info/sct"
CODES = ("44054006", "73211009", "38341003", "195967001")


def _condition(rid: str, patient: str, n: int) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"coding": [{"system": SNOMED, "code": CODES[n % len(CODES)]}]},
        "subject": {"reference": f"Patient/{patient}"},
        "onsetDateTime": f"20{10 + n % 15}-06-01",
    }


def _rounds(engine: Any, args: argparse.Namespace) -> dict[str, list[tuple[float, float]]]:
    ctx = RequestContext(request_id="bench", base_url="http://127.0.0.1/fhir", author_org=BENCH_ORG)
    with write_transaction(engine) as conn:
        made = interactions.create(
            conn, ctx, {"resourceType": "Patient", "name": [{"family": "B"}]}
        )
        patient = made.version.resource_id
        for i in range(args.conditions):
            interactions.update(conn, ctx, "Condition", f"c{i}", _condition(f"c{i}", patient, i))
    kept: Callable[..., None] = version_facts.record
    modes: dict[str, Callable[..., None]] = {"kept": kept, "not kept": lambda *a, **k: None}
    found: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    n = 0
    for number in range(args.rounds):
        order = list(modes) if number % 2 == 0 else list(modes)[::-1]
        for mode in order:
            version_facts.record = modes[mode]  # type: ignore[assignment]
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(args.per_round):
                n += 1
                rid = f"c{n % args.conditions}"
                with write_transaction(engine) as conn:
                    interactions.update(conn, ctx, "Condition", rid, _condition(rid, patient, n))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            found[mode].append((cpu / args.per_round * 1e6, wall / args.per_round * 1e6))
    version_facts.record = kept  # type: ignore[assignment]
    return found


def main() -> None:
    """Run both modes on SQLite (and PostgreSQL if given) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", default=None)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--per-round", type=int, default=300)
    parser.add_argument("--conditions", type=int, default=200)
    args = parser.parse_args()
    kinds = ["sqlite"] + (["postgresql"] if args.postgres else [])
    print("| database | facts | CPU µs per update | wall µs per update | paired ratio (wall) |")
    print("|---|---|---|---|---|")
    for kind in kinds:
        url = prepare_database(kind, args.postgres, temp_dir(), "careregister_bench")
        engine = create_db_engine(url)
        upgrade(engine)
        found = _rounds(engine, args)
        engine.dispose()
        ratios = [k[1] / o[1] for k, o in zip(found["kept"], found["not kept"], strict=True)]
        for mode in ("not kept", "kept"):
            cpu = statistics.median(c for c, _ in found[mode])
            wall = statistics.median(w for _, w in found[mode])
            ratio = "1.00" if mode == "not kept" else f"{statistics.median(ratios):.3f}"
            if mode == "kept":
                ratio += f" ({min(ratios):.2f}-{max(ratios):.2f})"
            print(f"| {kind} | {mode} | {cpu:.0f} | {wall:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
