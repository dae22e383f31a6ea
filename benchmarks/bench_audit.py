"""What auditing costs: audited against unaudited reads, same run, same database.

    python -m benchmarks.bench_audit [--postgres URL] [--workers 1] [--patients 2000]
        [--connections 32 128]

For each database: seed patients, then in alternating rounds start ``careregister serve`` with
auditing on and with ``REGISTER_AUDIT_ENABLED=false`` (the setting exists for this measurement
only) and drive each with wrk: reads by id of random patients, and a search by identifier. Every
audited read waits until the group-commit writer has committed its event. Prints a Markdown table;
the ratio is audited / unaudited throughput, taken within each round (the two runs are adjacent
in time), then the median over the rounds, with the lowest and highest round beside it. With
several ``--connections``, a capacity table too: each side's best throughput over the numbers
of clients, compared within each round.
"""

from __future__ import annotations

import argparse
import random
import statistics

from sqlalchemy import func, select

from benchmarks.bench_core import bench_token, patient, seed
from benchmarks.harness import (
    free_port,
    lua_paths,
    median_run,
    prepare_database,
    register_env,
    register_server,
    running,
    temp_dir,
)
from register.db import create_db_engine, read_transaction
from register.schema import audit_table


def _events(url: str) -> int:
    engine = create_db_engine(url)
    with read_transaction(engine) as conn:
        found = int(conn.execute(select(func.count()).select_from(audit_table)).scalar_one())
    engine.dispose()
    return found


def measure(kind: str, args: argparse.Namespace) -> list[dict]:
    """Audited and unaudited figures for one database kind."""
    workdir = temp_dir()
    url = prepare_database(kind, args.postgres, workdir, "careregister_bench_audit")
    ids, _ = seed(url, args.patients)
    sample = random.sample(range(len(ids)), min(500, len(ids)))
    for folder in ("r", "s"):
        (workdir / folder).mkdir()
    scripts = {
        "read by id": lua_paths([f"/fhir/Patient/{ids[i]}" for i in sample], workdir / "r"),
        "search by NHS number": lua_paths(
            [
                "/fhir/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number%7C"
                + patient(i)["identifier"][0]["value"]
                for i in sample
            ],
            workdir / "s",
        ),
    }
    results: dict[tuple[str, bool], list] = {}
    for round_ in range(args.rounds):
        for audited in (True, False) if round_ % 2 == 0 else (False, True):
            port = free_port()
            env = register_env(url, workdir / "data", port, audited=audited)
            token = bench_token(workdir / "data", env["REGISTER_BASE_URL"])
            runs = {
                "runs": 1,
                "seconds": args.seconds,
                "headers": {"Authorization": f"Bearer {token}"},
            }
            ready = f"http://127.0.0.1:{port}/ready"
            with running(register_server(port, env, args.workers), env, ready):
                for clients in args.connections:
                    for what, script in scripts.items():
                        result = median_run(
                            f"http://127.0.0.1:{port}/",
                            script=script,
                            connections=clients,
                            **runs,
                        )
                        results.setdefault((what, clients, audited), []).append(result)
    rows = []
    for what, clients in ((w, c) for c in args.connections for w in scripts):
        on, off = results[(what, clients, True)], results[(what, clients, False)]
        on_rps = statistics.median(r.rps for r in on)
        off_rps = statistics.median(r.rps for r in off)
        # Each round's two runs are minutes apart at most; the ratio is taken within the round
        # and the median taken over rounds, so the machine's drift between rounds cancels.
        ratios = sorted(a.rps / b.rps for a, b in zip(on, off, strict=True))
        rows.append(
            {
                "what": what,
                "clients": clients,
                "db": kind,
                "workers": args.workers,
                "patients": args.patients,
                "on_rps": on_rps,
                "on_p50": statistics.median(r.p50_ms for r in on),
                "on_p99": statistics.median(r.p99_ms for r in on),
                "off_rps": off_rps,
                "off_p50": statistics.median(r.p50_ms for r in off),
                "ratio": statistics.median(ratios),
                "spread": (ratios[0], ratios[-1]),
                "errors": sum(r.errors for r in on + off),
            }
        )
    if len(args.connections) > 1:
        # Capacity: each side's best throughput over the numbers of clients, within each round
        # (a server that waits on a commit needs more clients in flight to stay busy).
        for what in scripts:
            best = {
                audited: [
                    max(results[(what, c, audited)][r].rps for c in args.connections)
                    for r in range(args.rounds)
                ]
                for audited in (True, False)
            }
            ratios = sorted(a / b for a, b in zip(best[True], best[False], strict=True))
            rows.append(
                {
                    "capacity": what,
                    "db": kind,
                    "on_rps": statistics.median(best[True]),
                    "off_rps": statistics.median(best[False]),
                    "ratio": statistics.median(ratios),
                    "spread": (ratios[0], ratios[-1]),
                }
            )
    rows.append({"events": _events(url), "db": kind})
    return rows


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", help="PostgreSQL server URL (a bench database is made)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--connections",
        type=int,
        nargs="+",
        default=[32],
        help="wrk connections (concurrent clients); several give one row each",
    )
    args = parser.parse_args()
    random.seed(7)
    kinds = ["sqlite"] + (["postgresql"] if args.postgres else [])
    rows = [row for kind in kinds for row in measure(kind, args)]
    figures = [r for r in rows if "what" in r]
    failed = [r for r in figures if r["errors"]]
    if failed:  # a refused request is fast: a ratio over errors means nothing
        summary = [(r["what"], r["db"], r["errors"]) for r in failed]
        raise SystemExit(f"non-2xx answers (what, database, count): {summary}")
    print(
        "| what | database | clients | workers | data | audited req/s | p50 ms | p99 ms | "
        "unaudited req/s | p50 ms | ratio | rounds' ratios |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in figures:
        print(
            f"| {r['what']} | {r['db']} | {r['clients']} | {r['workers']} | "
            f"{r['patients']} patients | "
            f"{r['on_rps']:.0f} | {r['on_p50']:.2f} | {r['on_p99']:.2f} | "
            f"{r['off_rps']:.0f} | {r['off_p50']:.2f} | {r['ratio']:.2f} | "
            f"{r['spread'][0]:.2f}-{r['spread'][1]:.2f} |"
        )
    capacity = [r for r in rows if "capacity" in r]
    if capacity:
        print(
            "\n| capacity (best over the numbers of clients) | database | audited req/s | "
            "unaudited req/s | ratio | rounds' ratios |"
        )
        print("|---|---|---|---|---|---|")
        for r in capacity:
            print(
                f"| {r['capacity']} | {r['db']} | {r['on_rps']:.0f} | {r['off_rps']:.0f} | "
                f"{r['ratio']:.2f} | {r['spread'][0]:.2f}-{r['spread'][1]:.2f} |"
            )
    for r in rows:
        if "events" in r:
            print(f"\n{r['db']}: {r['events']} audit events recorded during the run")


if __name__ == "__main__":
    main()
