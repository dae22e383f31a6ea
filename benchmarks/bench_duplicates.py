"""Duplicate detection over the Synthea data: what it finds, and what it costs loading.

    python -m benchmarks.bench_duplicates [--postgres URL] [--data ../shared/data/synthea]

Loads every Synthea bundle into a fresh database twice per round, once with the duplicate check
and once without, back to back (order alternated over ``--rounds``), through the same loader the
CLI uses. Reports the findings by rule and code, the median of the rounds' on/off ratios (each
pair measured minutes apart, so machine drift on a shared host falls on both), and the share of
the "on" load spent inside the duplicate check itself (timed around ``detect.check_write`` in
the same run: a figure the host's load cannot skew between two runs).
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


def load_once(
    url: str, data: Path, *, detect_on: bool
) -> tuple[float, float, Counter[tuple[str, str]], int]:
    """Seconds to load everything, seconds of it inside the duplicate check, the findings by
    (rule, code), and the number of resources loaded."""
    engine = create_db_engine(url)
    upgrade(engine)
    original = detect.check_write
    inside = [0.0]

    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            inside[0] += time.perf_counter() - started

    # write_hooks calls detect.check_write through the module, so this switches it (off).
    detect.check_write = timed if detect_on else (lambda *a, **k: [])  # type: ignore[assignment]
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
    return elapsed, inside[0], found, report.total_loaded


def interleaved(
    kind: str, postgres: str | None, data: Path
) -> tuple[float, float, float, Counter[tuple[str, str]], int]:
    """Load the data into two fresh databases side by side, bundle by bundle, one with the
    check and one without, alternating which goes first: each pair of loads is seconds apart,
    so a busy host slows both alike. Seconds on, seconds off, seconds inside the check, the
    findings, resources loaded."""
    engines = {on: create_db_engine(fresh_url(kind, postgres, 10 + on)) for on in (True, False)}
    for engine in engines.values():
        upgrade(engine)
    original = detect.check_write
    inside = [0.0]

    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            inside[0] += time.perf_counter() - started

    totals = {True: 0.0, False: 0.0}
    loaded = 0
    ctx = RequestContext(request_id="bench", base_url="http://localhost/fhir")
    try:
        for n, source in enumerate(discover([data])):
            for on in (True, False) if n % 2 == 0 else (False, True):
                detect.check_write = timed if on else (lambda *a, **k: [])  # type: ignore[assignment]
                started = time.perf_counter()
                report = load_sources(engines[on], ctx, [source])
                totals[on] += time.perf_counter() - started
                assert not report.rejected, report.rejected[:3]
                loaded += report.total_loaded if on else 0
    finally:
        detect.check_write = original  # type: ignore[assignment]
    with read_transaction(engines[True]) as conn:
        found = Counter((row.rule, row.code) for row in conn.execute(select(finding_table)))
    for engine in engines.values():
        engine.dispose()
    return totals[True], totals[False], inside[0], found, loaded


def main() -> None:
    """Run and print Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="Load bundle by bundle into two databases side by side (on a busy host).",
    )
    args = parser.parse_args()
    kinds = ["sqlite"] + (["postgresql"] if args.postgres else [])
    if args.interleave:
        for kind in kinds:
            on_s, off_s, inside, found, loaded = interleaved(kind, args.postgres, args.data)
            print(f"\n### {kind}: {loaded} resources from {args.data.name}, interleaved\n")
            print("| duplicate check | load seconds | ratio |")
            print("|---|---|---|")
            print(f"| off | {off_s:.1f} | 1.00 |")
            print(f"| on | {on_s:.1f} | {on_s / off_s:.2f} |")
            print(
                f"\nInside the check: {inside:.1f} s, {100 * inside / on_s:.1f}% of the 'on' load"
            )
            print("\n| rule | code | findings |")
            print("|---|---|---|")
            for (rule, code), count in sorted(found.items()):
                print(f"| {rule} | {code} | {count} |")
        return
    for kind in kinds:
        with_times: list[float] = []
        without_times: list[float] = []
        ratios: list[float] = []
        shares: list[float] = []
        findings: Counter[tuple[str, str]] = Counter()
        for round_no in range(args.rounds):
            order = (True, False) if round_no % 2 == 0 else (False, True)
            pair: dict[bool, float] = {}
            for on in order:
                seconds, inside, found, loaded = load_once(
                    fresh_url(kind, args.postgres, round_no), args.data, detect_on=on
                )
                pair[on] = seconds
                (with_times if on else without_times).append(seconds)
                if on:
                    findings = found
                    shares.append(inside / seconds)
            ratios.append(pair[True] / pair[False])
        files = len(list(args.data.glob("*.json")))
        print(
            f"\n### {kind}: load of {files} bundles, {loaded} resources, from {args.data.name} "
            f"({args.rounds} rounds)\n"
        )
        print("| duplicate check | load seconds (median) | ratio on/off (median of pairs) |")
        print("|---|---|---|")
        print(f"| off | {statistics.median(without_times):.1f} | 1.00 |")
        print(
            f"| on | {statistics.median(with_times):.1f} | {statistics.median(ratios):.2f} "
            f"(pairs: {', '.join(f'{r:.2f}' for r in ratios)}) |"
        )
        print(
            f"\nShare of the 'on' load inside the duplicate check: "
            f"{100 * statistics.median(shares):.1f}% (rounds: "
            f"{', '.join(f'{100 * s:.1f}%' for s in shares)})"
        )
        print("\n| rule | code | findings |")
        print("|---|---|---|")
        for (rule, code), count in sorted(findings.items()):
            print(f"| {rule} | {code} | {count} |")


if __name__ == "__main__":
    main()
