"""Duplicate detection over the Synthea data: what it finds, and what it costs loading.

    python -m benchmarks.bench_duplicates [--postgres URL] [--data ../shared/data/synthea]

Loads every Synthea bundle into a fresh database twice in the same run, once with the duplicate
check and once without (order alternated over ``--rounds``), through the same loader the CLI
uses; reports the findings by rule and code and the load-time ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from benchmarks.harness import temp_dir
from fhir_adapters.import_formats import discover
from register.context import RequestContext
from register.db import create_db_engine, read_transaction
from register.duplicates import detect
from register.loader import load_sources
from register.migrate import upgrade
from register.schema import finding_table

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthea"


def fresh_url(kind: str, postgres: str | None, round_no: int) -> str:
    """An empty database URL for one load."""
    if kind == "sqlite":
        return f"sqlite:///{temp_dir() / 'dup.sqlite3'}"
    assert postgres
    base = make_url(postgres)
    name = f"careregister_dup_{round_no}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def load_once(url: str, data: Path, *, detect_on: bool) -> tuple[float, Counter[tuple[str, str]]]:
    """Seconds to load everything, and the findings by (rule, code)."""
    engine = create_db_engine(url)
    upgrade(engine)
    original = detect.check_write
    if not detect_on:
        # write_hooks calls detect.check_write through the module, so this switches it off.
        detect.check_write = lambda *a, **k: []  # type: ignore[assignment]
    try:
        ctx = RequestContext(request_id="bench", base_url="http://localhost/fhir")
        started = time.perf_counter()
        report = load_sources(engine, ctx, discover([data]))
        elapsed = time.perf_counter() - started
    finally:
        detect.check_write = original  # type: ignore[assignment]
    assert not report.rejected, report.rejected[:3]
    with read_transaction(engine) as conn:
        found = Counter((row.rule, row.code) for row in conn.execute(select(finding_table)))
    engine.dispose()
    return elapsed, found


def main() -> None:
    """Run and print Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    kinds = ["sqlite"] + (["postgresql"] if args.postgres else [])
    for kind in kinds:
        with_times: list[float] = []
        without_times: list[float] = []
        findings: Counter[tuple[str, str]] = Counter()
        for round_no in range(args.rounds):
            order = (True, False) if round_no % 2 == 0 else (False, True)
            for on in order:
                seconds, found = load_once(
                    fresh_url(kind, args.postgres, round_no), args.data, detect_on=on
                )
                (with_times if on else without_times).append(seconds)
                if on:
                    findings = found
        with_s = statistics.median(with_times)
        without_s = statistics.median(without_times)
        print(f"\n### {kind}: load of {args.data.name} (median of {args.rounds})\n")
        print("| duplicate check | load seconds | ratio |")
        print("|---|---|---|")
        print(f"| off | {without_s:.1f} | 1.00 |")
        print(f"| on | {with_s:.1f} | {with_s / without_s:.2f} |")
        print("\n| rule | code | findings |")
        print("|---|---|---|")
        for (rule, code), count in sorted(findings.items()):
            print(f"| {rule} | {code} | {count} |")


if __name__ == "__main__":
    main()
