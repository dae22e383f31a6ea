"""Benchmark of the core: read-by-id and create, against a bare FastAPI ceiling, same run.

    python -m benchmarks.bench_core [--postgres URL] [--workers 1] [--patients 2000]

For each database: seed patients, start ``careregister serve``, drive it with wrk (random ids
for reads; one Patient body for creates), then start the bare app returning the same bytes with
the same server and worker count, and drive it the same way: both run at once and their wrk runs
alternate round by round. Prints a Markdown table; the ratio is the median of the rounds'
ratios.

Every request carries a bearer token (a system client of the organisation that recorded the
patients, ``system/*.cruds``), as real clients must: the register verifies it (cached after the
first request), admits the request and applies its visibility in SQL. The bare endpoint gets the
same header and checks nothing, so the ratio includes the whole cost of access control.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from datetime import date
from pathlib import Path

from auth.principal import Role
from benchmarks.harness import (
    ROOT,
    WrkResult,
    bare_server,
    free_port,
    lua_paths,
    lua_post_unique,
    median_run,
    prepare_database,
    register_server,
    running,
    temp_dir,
)
from register import interactions
from register.access_service import AccessService
from register.context import RequestContext
from register.db import create_db_engine, write_transaction
from register.migrate import upgrade
from register.settings import Settings

BENCH_ORG = "BENCH01"
TOKEN_LIFETIME = 3600


def patient(i: int) -> dict:
    """A realistic UK Core-style Patient."""
    nhs = f"{9000000000 + i:010d}"
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
        "name": [{"use": "official", "family": f"Family{i}", "given": [f"Given{i}"]}],
        "gender": random.choice(["male", "female"]),
        "birthDate": date(1940 + i % 60, 1 + i % 12, 1 + i % 28).isoformat(),
        "address": [{"line": [f"{i} High Street"], "city": "Preston", "postalCode": "PR1 1AA"}],
    }


def seed(url: str, count: int) -> tuple[list[str], bytes]:
    """Create ``count`` patients; return their ids and one stored body."""
    engine = create_db_engine(url)
    upgrade(engine)
    ctx = RequestContext(request_id="bench", base_url="http://127.0.0.1/fhir", author_org=BENCH_ORG)
    ids: list[str] = []
    body = b""
    with write_transaction(engine) as conn:
        for i in range(count):
            result = interactions.create(conn, ctx, patient(i))
            ids.append(result.version.resource_id)
            body = result.version.content or b""
    engine.dispose()
    return ids, body


def bench_token(data_dir: Path, base_url: str) -> str:
    """A system token for the bench organisation, signed with the keys the server will use."""
    settings = Settings(
        data_dir=data_dir, base_url=base_url, auth_token_lifetime_seconds=TOKEN_LIFETIME
    )
    issuer = AccessService(settings).endpoints(base_url).issuer
    issued = issuer.issue(
        role=Role.SYSTEM,
        subject="bench-client",
        client_id="bench-client",
        scope="system/*.cruds",
        organisation=BENCH_ORG,
    )
    return issued.access_token


def measure(kind: str, args: argparse.Namespace) -> list[dict]:
    """Register and ceiling figures for one database kind."""
    workdir = temp_dir()
    url = prepare_database(kind, args.postgres, workdir, "careregister_bench")
    ids, body = seed(url, args.patients)
    sample = random.sample(ids, min(500, len(ids)))
    read_script = lua_paths([f"/fhir/Patient/{i}" for i in sample], workdir)
    template = patient(10**6)
    template["identifier"][0]["value"] = "__N__"
    template["name"][0]["family"] = "Family__N__"
    post_script = lua_post_unique(json.dumps(template).encode(), workdir)
    (workdir / "body.bin").write_bytes(body)
    rows = []
    port = free_port()
    env = {
        "REGISTER_DATABASE_URL": url,
        "REGISTER_DATA_DIR": str(workdir / "data"),
        "REGISTER_LOG_LEVEL": "info",
        "REGISTER_BASE_URL": f"http://127.0.0.1:{port}/fhir",
        "REGISTER_AUTH_TOKEN_LIFETIME_SECONDS": str(TOKEN_LIFETIME),
    }
    token = bench_token(workdir / "data", env["REGISTER_BASE_URL"])
    auth = {"Authorization": f"Bearer {token}"}
    runs = {"runs": 1, "seconds": args.seconds, "headers": auth}
    bare_port = free_port()
    bare_env = {"BARE_BODY_FILE": str(workdir / "body.bin"), "PYTHONPATH": str(ROOT)}
    ours_base, bare_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{bare_port}"
    results: dict[tuple[str, str], list[WrkResult]] = {}
    with (
        running(register_server(port, env, args.workers), env, f"{ours_base}/ready"),
        running(bare_server(bare_port, args.workers), bare_env, f"{bare_base}/fhir/Patient/x"),
    ):
        # Both servers stay up and their runs alternate, round by round, so the machine's drift
        # falls on both sides of each ratio (the idle one costs nothing meanwhile).
        for what, path, script in (
            ("read by id", "/", read_script),
            ("create Patient", "/fhir/Patient", post_script),
        ):
            for round_ in range(args.runs):
                sides = (("ours", ours_base), ("bare", bare_base))
                for side, base in sides if round_ % 2 == 0 else sides[::-1]:
                    result = median_run(base + path, script=script, **runs)
                    results.setdefault((what, side), []).append(result)
    for what in ("read by id", "create Patient"):
        ours, bare = results[(what, "ours")], results[(what, "bare")]
        rows.append(
            {
                "what": what,
                "db": kind,
                "workers": args.workers,
                "patients": args.patients,
                "ours_rps": statistics.median(r.rps for r in ours),
                "ours_p50": statistics.median(r.p50_ms for r in ours),
                "ours_p99": statistics.median(r.p99_ms for r in ours),
                "bare_rps": statistics.median(r.rps for r in bare),
                "ratio": statistics.median(o.rps / b.rps for o, b in zip(ours, bare, strict=True)),
                "errors": sum(r.errors for r in ours),
            }
        )
    return rows


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", help="PostgreSQL server URL (a bench database is made)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5, help="rounds, each side once a round")
    args = parser.parse_args()
    random.seed(7)
    kinds = ["sqlite"] + (["postgresql"] if args.postgres else [])
    rows = [row for kind in kinds for row in measure(kind, args)]
    failed = [r for r in rows if r["errors"]]
    if failed:  # a refused request is fast: a ratio over errors means nothing
        summary = [(r["what"], r["db"], r["errors"]) for r in failed]
        raise SystemExit(f"non-2xx answers (what, database, count): {summary}")
    print(
        "| what | database | workers | data | ours req/s | p50 ms | p99 ms | bare req/s | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['what']} | {r['db']} | {r['workers']} | {r['patients']} patients | "
            f"{r['ours_rps']:.0f} | {r['ours_p50']:.2f} | {r['ours_p99']:.2f} | "
            f"{r['bare_rps']:.0f} | {r['ratio']:.2f} |"
        )


if __name__ == "__main__":
    main()
