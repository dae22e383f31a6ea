"""What a one-snapshot read costs on PostgreSQL, by how the isolation level is asked for.

    python -m benchmarks.bench_read_snapshot --postgres URL [--rounds 10] [--per-round 300]

A multi-query read (a search page and its includes, ``audit verify``) must see one state, so on
PostgreSQL it runs at REPEATABLE READ (``register.db.read_transaction``). Three ways are timed
in alternating rounds, each a transaction of two small queries on a pooled connection:
``plain`` (READ COMMITTED, the floor), ``set-statement`` (``SET TRANSACTION ISOLATION LEVEL``,
one more round trip) and ``execution-option`` (the level passed to the driver, which puts it in
its ``BEGIN``; what ``read_transaction`` does). Prints µs per read, median of the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from sqlalchemy import Engine

from benchmarks.harness import prepare_database, temp_dir
from register.db import create_db_engine


def _queries(conn) -> None:  # type: ignore[no-untyped-def]
    conn.exec_driver_sql("SELECT 1").all()
    conn.exec_driver_sql("SELECT 2").all()


def _ways(engine: Engine) -> dict[str, Callable[[], None]]:
    def plain() -> None:
        with engine.connect() as conn, conn.begin():
            _queries(conn)

    def set_statement() -> None:
        with engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            _queries(conn)

    def execution_option() -> None:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                _queries(conn)

    return {
        "plain": plain,
        "set-statement": set_statement,
        "execution-option": execution_option,
    }


def main() -> None:
    """Print a Markdown table of µs per read for each way, and the difference from ``plain``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", required=True, help="PostgreSQL server URL")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=300)
    args = parser.parse_args()
    url = prepare_database("postgresql", args.postgres, temp_dir(), "careregister_bench_snapshot")
    engine = create_db_engine(url)
    ways = _ways(engine)
    for way in ways.values():
        way()
    timings: dict[str, list[float]] = {name: [] for name in ways}
    for number in range(args.rounds):
        order = list(ways) if number % 2 == 0 else list(ways)[::-1]
        for name in order:
            started = time.perf_counter()
            for _ in range(args.per_round):
                ways[name]()
            timings[name].append((time.perf_counter() - started) / args.per_round * 1e6)
    engine.dispose()
    floor = timings["plain"]
    print("| way | µs per read (median of rounds) | paired difference from plain |")
    print("|---|---|---|")
    for name, runs in timings.items():
        diff = statistics.median(a - b for a, b in zip(runs, floor, strict=True))
        print(f"| {name} | {statistics.median(runs):.0f} | {diff:+.0f} |")


if __name__ == "__main__":
    main()
