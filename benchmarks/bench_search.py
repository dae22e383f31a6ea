"""Benchmark of search: five questions at 1x and 10x the Synthea data, per database.

    python -m benchmarks.bench_search [--postgres URL] [--scale 10] [--seconds 10] [--runs 3]

For each database: load every Synthea bundle (1x), start ``careregister serve``, and measure
with wrk (random patients for each question, warm-up, median of ``runs``):

1. Patient by identifier;
2. Observation by patient and code;
3. Observation by patient and date range, sorted by date;
4. Encounter by patient with ``_include`` of the practitioner;
5. ``$everything`` for the patient with the most resources, first page (wrk) and all pages
   (a client following ``next`` links, timed end to end ``--walks`` times);

and, as a reference, the cheapest read that also runs in the thread pool (one history entry):
the floor under which no search can go on this server.

The 1x database is copied, then the same bundles are loaded ``scale - 1`` more times into the
original with fresh ids (every UUID in a bundle is replaced, so identifiers and references stay
unique per copy). Both are then served side by side and every question's runs alternate
between them (1x, 10x, 1x, 10x ...), so the drift of a shared machine falls on both figures
alike; the table gives each figure at 1x and 10x and their ratio. The ceiling is the bare
FastAPI app returning the same bytes as each question's answer (1x), same server and workers.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import create_engine, text

from benchmarks.bench_core import BENCH_ORG, TOKEN_LIFETIME, bench_token
from benchmarks.harness import (
    ROOT,
    WrkResult,
    bare_server,
    free_port,
    lua_paths,
    median_run,
    prepare_database,
    register_server,
    running,
    shared_data,
    temp_dir,
    wrk,
)
from register import reads, transactions
from register.context import RequestContext
from register.db import create_db_engine, write_transaction
from register.migrate import upgrade

MRN = "http://hospital.smarthealthit.org"
UUID_RE = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
QUESTIONS = ("floor", "identifier", "code", "date-sorted", "include", "everything-first")


@dataclass
class Figures:
    """Measurements of one database at one scale."""

    resources: int
    wrk: dict[str, WrkResult]
    walk_p50_ms: float
    walk_p99_ms: float
    walk_pages: int


def bundles() -> list[bytes]:
    """The Synthea transaction Bundles, as bytes."""
    return [path.read_bytes() for path in sorted(shared_data("synthea").glob("*.json"))]


def copy_of(raw: bytes, copy: int) -> bytes:
    """A bundle with every UUID replaced by one derived from it and ``copy`` (new ids)."""
    if copy == 0:
        return raw
    namespace = uuid.UUID(int=copy)
    return UUID_RE.sub(lambda m: str(uuid.uuid5(namespace, m.group().decode())).encode(), raw)


def load(url: str, raws: list[bytes], copies: range) -> int:
    """Post each bundle copy as a transaction, as ``careregister load`` would; resources loaded."""
    engine = create_db_engine(url)
    upgrade(engine)
    ctx = RequestContext(request_id="bench", base_url="http://127.0.0.1/fhir", author_org=BENCH_ORG)
    loaded = 0
    started = time.monotonic()
    for copy in copies:
        for raw in raws:
            bundle = orjson.loads(copy_of(raw, copy))
            with write_transaction(engine) as conn:
                loaded += len(transactions.run_transaction(conn, ctx, bundle, reads.get))
        print(f"  copy {copy + 1}: {loaded} resources, {time.monotonic() - started:.0f} s")
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    engine.dispose()
    return loaded


def targets(url: str, sample: int) -> dict[str, Any]:
    """Patients of the first copy to ask about, and the one with the most resources."""
    engine = create_db_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT t.code, r.resource_id FROM search_token t JOIN resource r "
                "ON r.pk = t.resource_pk WHERE t.resource_type = 'Patient' "
                "AND t.param = 'identifier' AND t.system = :mrn ORDER BY r.pk"
            ),
            {"mrn": MRN},
        ).all()
        biggest = conn.execute(
            text(
                "SELECT patient_id FROM search_compartment GROUP BY patient_id "
                "ORDER BY count(*) DESC, patient_id LIMIT 1"
            )
        ).scalar_one()
    engine.dispose()
    chosen = list(rows)
    random.Random(7).shuffle(chosen)
    return {"patients": chosen[:sample], "biggest": biggest}


def paths(chosen: dict[str, Any]) -> dict[str, list[str]]:
    """The request paths of each question."""
    found: dict[str, list[str]] = {q: [] for q in QUESTIONS}
    for mrn, pid in chosen["patients"]:
        found["identifier"].append(f"/fhir/Patient?identifier={MRN}%7C{mrn}")
        found["code"].append(f"/fhir/Observation?patient={pid}&code=http://loinc.org%7C29463-7")
        found["date-sorted"].append(
            f"/fhir/Observation?patient={pid}&date=ge2015-01-01&date=lt2021-01-01&_sort=-date"
        )
        found["include"].append(f"/fhir/Encounter?patient={pid}&_include=Encounter:practitioner")
        found["floor"].append(f"/fhir/Patient/{pid}/_history?_count=1")
    found["everything-first"].append(f"/fhir/Patient/{chosen['biggest']}/$everything")
    return found


def walk(
    base: str, path: str, times: int, headers: dict[str, str], warm: int = 2
) -> tuple[float, float, int]:
    """Fetch every page of ``path`` following next links, ``times`` times: p50, p99 ms, pages."""
    durations = []
    pages = 0
    with httpx.Client(timeout=60, headers=headers) as client:
        for _ in range(times + warm):
            started = time.perf_counter()
            url: str | None = base + path
            pages = 0
            while url:
                bundle = client.get(url).raise_for_status().json()
                pages += 1
                url = next(
                    (x["url"] for x in bundle.get("link", []) if x["relation"] == "next"), None
                )
            durations.append((time.perf_counter() - started) * 1000)
    durations = sorted(durations[warm:])
    p99 = durations[min(len(durations) - 1, round(0.99 * (len(durations) - 1)))]
    return statistics.median(durations), p99, pages


def snapshot(url: str, workdir: Path) -> str:
    """A copy of the database as it is now (the 1x state, measured beside the grown one)."""
    engine = create_db_engine(url)
    if engine.dialect.name == "sqlite":
        copy = workdir / "bench-1x.sqlite3"
        with engine.connect() as conn:
            conn.exec_driver_sql(f"VACUUM INTO '{copy}'")
        engine.dispose()
        return f"sqlite:///{copy}"
    engine.dispose()
    name = f"{engine.url.database}_1x"
    admin = create_engine(engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{engine.url.database}"'))
    admin.dispose()
    return engine.url.set(database=name).render_as_string(hide_password=False)


def _server_env(url: str, workdir: Path, port: int, tag: str) -> dict[str, str]:
    return {
        "REGISTER_DATABASE_URL": url,
        "REGISTER_DATA_DIR": str(workdir / f"data-{tag}"),
        "REGISTER_BASE_URL": f"http://127.0.0.1:{port}/fhir",
    }


def measure_pair(
    urls: tuple[str, str], workdir: Path, chosen: dict[str, Any], args: argparse.Namespace
) -> tuple[Figures, Figures]:
    """Every question against the 1x and the grown database, their runs interleaved.

    Both servers run side by side (one at a time under load); each question's runs alternate
    between them, so drift on a shared machine lands on both figures alike.
    """
    ports = (free_port(), free_port())
    while ports[1] == ports[0]:
        ports = (ports[0], free_port())
    envs = [
        _server_env(url, workdir, port, tag)
        for url, port, tag in zip(urls, ports, ("1x", "nx"), strict=True)
    ]
    auths = [
        {
            "Authorization": "Bearer "
            + bench_token(Path(env["REGISTER_DATA_DIR"]), env["REGISTER_BASE_URL"])
        }
        for env in envs
    ]
    for env in envs:
        env["REGISTER_AUTH_TOKEN_LIFETIME_SECONDS"] = str(TOKEN_LIFETIME)
    results: tuple[dict[str, WrkResult], dict[str, WrkResult]] = ({}, {})
    with contextlib.ExitStack() as stack:
        for port, env in zip(ports, envs, strict=True):
            command = register_server(port, env, args.workers)
            stack.enter_context(running(command, env, f"http://127.0.0.1:{port}/ready"))
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        for question, items in paths(chosen).items():
            script = lua_paths(items, workdir)
            runs: tuple[list[WrkResult], list[WrkResult]] = ([], [])
            for base, auth in zip(bases, auths, strict=True):
                wrk(base + "/", seconds=3, script=script, headers=auth)  # warm-up
            for _ in range(args.runs):
                for side, base in enumerate(bases):
                    runs[side].append(
                        wrk(base + "/", seconds=args.seconds, script=script, headers=auths[side])
                    )
            for side in (0, 1):
                results[side][question] = _median(runs[side])
            print(f"    {question}: 1x {results[0][question]}  Nx {results[1][question]}")
            body = httpx.get(bases[0] + items[0], timeout=60, headers=auths[0]).content
            (workdir / f"{question}.json").write_bytes(body)
        walks = [
            walk(base, f"/fhir/Patient/{chosen['biggest']}/$everything", 2, auth)
            for base, auth in zip(bases, auths, strict=True)
        ]
        timed: tuple[list[float], list[float]] = ([], [])
        for _ in range(args.walks):
            for side, base in enumerate(bases):
                timed[side].append(_walk_once(base, chosen["biggest"], auths[side]))
    figures = []
    for side, url in enumerate(urls):
        durations = sorted(timed[side])
        p99 = durations[min(len(durations) - 1, round(0.99 * (len(durations) - 1)))]
        figures.append(
            Figures(_count(url), results[side], statistics.median(durations), p99, walks[side][2])
        )
    return figures[0], figures[1]


def _median(results: list[WrkResult]) -> WrkResult:
    ordered = sorted(results, key=lambda r: r.rps)
    return WrkResult(
        ordered[len(ordered) // 2].rps,
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
    )


def _walk_once(base: str, patient_id: str, headers: dict[str, str]) -> float:
    return walk(base, f"/fhir/Patient/{patient_id}/$everything", 1, headers, warm=0)[0]


def _count(url: str) -> int:
    engine = create_db_engine(url)
    with engine.connect() as conn:
        resources = int(conn.execute(text("SELECT count(*) FROM resource")).scalar_one())
    engine.dispose()
    return resources


def ceiling(workdir: Path, args: argparse.Namespace) -> dict[str, WrkResult]:
    """The bare app returning each question's bytes, same server and workers."""
    found = {}
    runs = {"runs": args.runs, "seconds": args.seconds}
    for question in QUESTIONS:
        port = free_port()
        env = {"BARE_BODY_FILE": str(workdir / f"{question}.json"), "PYTHONPATH": str(ROOT)}
        with running(bare_server(port, args.workers), env, f"http://127.0.0.1:{port}/fhir/P"):
            found[question] = median_run(f"http://127.0.0.1:{port}/fhir/Patient", **runs)
    return found


def main() -> None:
    """Run the benchmark and print Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", help="PostgreSQL server URL (a bench database is made)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--walks", type=int, default=20)
    parser.add_argument("--patients", type=int, default=40, help="patients asked about")
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument(
        "--reuse",
        type=Path,
        help="a SQLite work folder of an earlier run (bench-1x.sqlite3 and bench.sqlite3, loaded "
        "by this script): measure again without loading",
    )
    args = parser.parse_args()
    raws = bundles()
    kinds = ["sqlite"] + (["postgresql"] if args.postgres else [])
    if args.only:
        kinds = [args.only]
    table: dict[str, tuple[Figures, Figures]] = {}
    bare: dict[str, WrkResult] = {}
    if args.reuse:
        workdir = args.reuse
        first, url = (
            f"sqlite:///{workdir / name}" for name in ("bench-1x.sqlite3", "bench.sqlite3")
        )
        print("sqlite: measuring 1x and grown copies side by side (reused)")
        table["sqlite"] = measure_pair((first, url), workdir, targets(first, args.patients), args)
        bare = ceiling(workdir, args)
        kinds = []
    for kind in kinds:
        workdir = temp_dir()
        url = prepare_database(kind, args.postgres, workdir, "careregister_bench_search")
        print(f"{kind}: loading 1x")
        load(url, raws, range(1))
        chosen = targets(url, args.patients)
        first = snapshot(url, workdir)
        print(f"{kind}: loading {args.scale - 1} more copies")
        load(url, raws, range(1, args.scale))
        print(f"{kind}: measuring 1x and {args.scale}x side by side")
        table[kind] = measure_pair((first, url), workdir, chosen, args)
        if not bare:
            bare = ceiling(workdir, args)
    refused = [
        (kind, question, figures.wrk[question].errors)
        for kind, pair in table.items()
        for figures in pair
        for question in QUESTIONS
        if figures.wrk[question].errors
    ]
    if refused:  # a refused request is fast: ratios over them would flatter the register
        raise SystemExit(f"non-2xx answers (database, question, count): {refused}")
    print_tables(table, bare, args)


def print_tables(
    table: dict[str, tuple[Figures, Figures]], bare: dict[str, WrkResult], args: argparse.Namespace
) -> None:
    """The results as Markdown."""
    names = {
        "floor": "reference: one history entry (a thread-pool read, no search)",
        "identifier": "Patient by identifier",
        "code": "Observation by patient and code",
        "date-sorted": "Observation by patient and date range, sorted by date",
        "include": "Encounter by patient, _include practitioner",
        "everything-first": "$everything, biggest patient, first page",
    }
    print(
        "| question | database | 1x p50 / p99 ms | 1x req/s | ceiling req/s | ours/ceiling "
        f"| {args.scale}x p50 / p99 ms | {args.scale}x req/s | p50 growth | p99 growth |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for kind, (one, many) in table.items():
        for question in QUESTIONS:
            a, b, c = one.wrk[question], many.wrk[question], bare.get(question)
            ceiling_rps = f"{c.rps:.0f}" if c else "-"
            ratio = f"{a.rps / c.rps:.2f}" if c else "-"
            print(
                f"| {names[question]} | {kind} | {a.p50_ms:.1f} / {a.p99_ms:.1f} | {a.rps:.0f} "
                f"| {ceiling_rps} | {ratio} | {b.p50_ms:.1f} / {b.p99_ms:.1f} | {b.rps:.0f} "
                f"| {b.p50_ms / a.p50_ms:.2f} | {b.p99_ms / a.p99_ms:.2f} |"
            )
        print(
            f"| $everything, biggest patient, all {one.walk_pages} pages (one client) | {kind} "
            f"| {one.walk_p50_ms:.0f} / {one.walk_p99_ms:.0f} | - | - | - "
            f"| {many.walk_p50_ms:.0f} / {many.walk_p99_ms:.0f} | - "
            f"| {many.walk_p50_ms / one.walk_p50_ms:.2f} "
            f"| {many.walk_p99_ms / one.walk_p99_ms:.2f} |"
        )
    print()
    for kind, (one, many) in table.items():
        print(f"{kind}: {one.resources} resources at 1x, {many.resources} at {args.scale}x")


if __name__ == "__main__":
    main()
