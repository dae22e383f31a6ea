"""Benchmark of consent enforcement: reads and searches with and without Consent withholdings,
against the same server in the same run.

    python -m benchmarks.bench_consent [--postgres URL] [--patients 300] [--seconds 5]

Seeds a GP practice's patients (each with Observations recorded by the GP), a hospital
Encounter with every patient (so the hospital reaches them through a care relationship), and a
Consent for every other patient (permit, with nested denies by class and by the mental-health
label, and a nested permit naming a label: three rules besides the root). Then drives one server
with wrk, the runs of every target interleaved (median of ``--runs``):

- read by id of the GP's Observations, as the GP's system (its own records: no withholding
  applies; the reference) and as the hospital's system (care relationship, Consent evaluated);
- ``Observation?patient=X`` (5 matches) likewise (the hospital's search also runs the
  withheld-items notice query);
- the hospital's reads and searches for patients without a Consent.

Prints a Markdown table; the ratios are hospital / GP in the same run.
"""

from __future__ import annotations

import argparse
import random
import statistics
from pathlib import Path

from benchmarks.bench_core import TOKEN_LIFETIME
from benchmarks.harness import (
    WrkResult,
    free_port,
    lua_paths,
    prepare_database,
    register_server,
    running,
    temp_dir,
    wrk,
)
from register import interactions
from register.access_service import AccessService
from register.context import RequestContext
from register.db import create_db_engine, write_transaction
from register.migrate import upgrade
from register.settings import Settings

GP, HOSPITAL = "GPB01", "HOSB02"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def _consent(pid: str) -> dict:
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{pid}"},
        "provision": {
            "type": "permit",
            "provision": [
                {
                    "type": "deny",
                    "class": [
                        {
                            "system": "http://hl7.org/fhir/resource-types",
                            "code": "MedicationRequest",
                        }
                    ],
                },
                {"type": "deny", "securityLabel": [{"system": ACT, "code": "MH"}]},
                {"type": "permit", "securityLabel": [{"system": ACT, "code": "ETH"}]},
            ],
        },
    }


def seed(url: str, patients: int) -> dict[str, list[str]]:
    """The data above; the paths each measured request picks from."""
    engine = create_db_engine(url)
    upgrade(engine)
    base = "http://127.0.0.1/fhir"
    gp = RequestContext(request_id="bench", base_url=base, author_org=GP)
    hosp = RequestContext(request_id="bench", base_url=base, author_org=HOSPITAL)
    paths: dict[str, list[str]] = {
        k: [] for k in ("read-none", "read-consent", "search-none", "search-consent", "read-own")
    }
    with write_transaction(engine) as conn:
        for rid, code in (("gp", GP), ("hosp", HOSPITAL)):
            interactions.update(
                conn,
                gp,
                "Organization",
                rid,
                {
                    "resourceType": "Organization",
                    "id": rid,
                    "identifier": [{"system": ODS, "value": code}],
                },
            )
        for i in range(patients):
            pid = f"p{i}"
            interactions.update(conn, gp, "Patient", pid, {"resourceType": "Patient", "id": pid})
            kind = "consent" if i % 2 else "none"
            for j in range(5):
                oid = f"o{i}-{j}"
                interactions.update(
                    conn,
                    gp,
                    "Observation",
                    oid,
                    {
                        "resourceType": "Observation",
                        "id": oid,
                        "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
                        "subject": {"reference": f"Patient/{pid}"},
                        "effectiveDateTime": f"202{j}-01-01",
                    },
                )
                paths[f"read-{kind}"].append(f"/fhir/Observation/{oid}")
            eid = f"e{i}"
            interactions.update(
                conn,
                hosp,
                "Encounter",
                eid,
                {
                    "resourceType": "Encounter",
                    "id": eid,
                    "status": "in-progress",
                    "class": {"system": ACT, "code": "AMB"},
                    "subject": {"reference": f"Patient/{pid}"},
                    "serviceProvider": {"reference": "Organization/hosp"},
                },
            )
            paths["read-own"].append(f"/fhir/Encounter/{eid}")
            paths[f"search-{kind}"].append(f"/fhir/Observation?patient={pid}")
            if kind == "consent":
                interactions.create(conn, gp, _consent(pid))
    engine.dispose()
    return paths


def token(data_dir: Path, base_url: str, organisation: str) -> str:
    """A system token of ``organisation``, signed with the keys the server will use."""
    settings = Settings(
        data_dir=data_dir, base_url=base_url, auth_token_lifetime_seconds=TOKEN_LIFETIME
    )
    issuer = AccessService(settings).endpoints(base_url).issuer
    return issuer.issue(
        role="system",
        subject=f"bench-{organisation}",
        client_id=f"bench-{organisation}",
        scope="system/*.rs",
        organisation=organisation,
    ).access_token


TARGETS = (
    # (name, paths key, who)
    ("read-gp", "read-consent", GP),
    ("read-hosp", "read-consent", HOSPITAL),
    ("read-hosp-none", "read-none", HOSPITAL),
    ("search-gp", "search-consent", GP),
    ("search-hosp", "search-consent", HOSPITAL),
    ("search-hosp-none", "search-none", HOSPITAL),
)


def measure(kind: str, args: argparse.Namespace) -> list[dict]:
    """Figures for one database kind, one server; the targets' runs interleaved so the
    machine's drift falls on all of them."""
    workdir = temp_dir()
    url = prepare_database(kind, args.postgres, workdir, "careregister_bench_consent")
    paths = seed(url, args.patients)
    port = free_port()
    env = {
        "REGISTER_DATABASE_URL": url,
        "REGISTER_DATA_DIR": str(workdir / "data"),
        "REGISTER_BASE_URL": f"http://127.0.0.1:{port}/fhir",
        "REGISTER_AUTH_TOKEN_LIFETIME_SECONDS": str(TOKEN_LIFETIME),
    }
    tokens = {org: token(workdir / "data", env["REGISTER_BASE_URL"], org) for org in (GP, HOSPITAL)}
    scripts = {}
    for key, chosen in paths.items():
        sub = workdir / key
        sub.mkdir()
        scripts[key] = lua_paths(random.sample(chosen, min(200, len(chosen))), sub)
    runs: dict[str, list[WrkResult]] = {name: [] for name, _, _ in TARGETS}
    base = f"http://127.0.0.1:{port}/"
    with running(register_server(port, env, 1), env, f"http://127.0.0.1:{port}/ready"):
        for _name, key, who in TARGETS:  # warm-up
            wrk(base, seconds=2, script=scripts[key], headers=_auth(tokens[who]))
        for _ in range(args.runs):
            for name, key, who in TARGETS:
                runs[name].append(
                    wrk(base, seconds=args.seconds, script=scripts[key], headers=_auth(tokens[who]))
                )
    results = {name: _median(found) for name, found in runs.items()}
    rows = []
    for what, ours, reference in (
        (
            "read by id: hospital (care relationship, Consent evaluated) vs the GP (author)",
            "read-hosp",
            "read-gp",
        ),
        ("read by id: hospital, patient without a Consent vs the GP", "read-hosp-none", "read-gp"),
        (
            "Observation?patient (5 matches): hospital (Consent, notice query) vs the GP",
            "search-hosp",
            "search-gp",
        ),
        (
            "Observation?patient: hospital, patient without a Consent vs the GP",
            "search-hosp-none",
            "search-gp",
        ),
    ):
        a, b = results[ours], results[reference]
        rows.append({"what": what, "db": kind, "ours": a, "ref": b, "ratio": a.rps / b.rps})
    return rows


def _auth(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def _median(results: list[WrkResult]) -> WrkResult:
    ordered = sorted(results, key=lambda r: r.rps)
    middle = ordered[len(ordered) // 2]
    return WrkResult(
        middle.rps,
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
    )


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", help="PostgreSQL server URL (a bench database is made)")
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    random.seed(11)
    kinds = ["sqlite"] + (["postgresql"] if args.postgres else [])
    rows = [row for kind in kinds for row in measure(kind, args)]
    failed = [(r["what"], r["db"]) for r in rows if r["ours"].errors or r["ref"].errors]
    if failed:
        raise SystemExit(f"non-2xx answers: {failed}")
    print("| what | database | req/s | p50 ms | p99 ms | reference req/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['what']} | {r['db']} | {r['ours'].rps:.0f} | {r['ours'].p50_ms:.2f} | "
            f"{r['ours'].p99_ms:.2f} | {r['ref'].rps:.0f} | {r['ratio']:.2f} |"
        )


if __name__ == "__main__":
    main()
