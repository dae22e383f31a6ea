"""Benchmark of consent enforcement: reads and searches with and without Consent withholdings,
against the same server in the same run.

    python -m benchmarks.bench_consent [--postgres URL] [--patients 300] [--seconds 5]

Seeds a GP practice's patients (each with Observations recorded by the GP), a hospital
Encounter with every patient (so the hospital reaches them through a care relationship), and a
Consent for every other patient (permit, with nested denies by class and by the mental-health
label, and a nested permit naming a label: three rules besides the root). Then drives one server
with wrk as the hospital's system (``system/*.rs``):

- read by id of an Observation of a patient without a Consent, and of one with a Consent;
- ``Observation?patient=X`` (5 matches, notice query included) for both kinds of patient;
- read by id of a record the hospital made itself (no consent needed: the reference).

Prints a Markdown table; the ratios are consent / no-consent in the same run.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from benchmarks.bench_core import TOKEN_LIFETIME, prepare_database
from benchmarks.harness import free_port, lua_paths, median_run, register_server, running, temp_dir
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


def token(data_dir: Path, base_url: str) -> str:
    """The hospital system's token, signed with the keys the server will use."""
    settings = Settings(
        data_dir=data_dir, base_url=base_url, auth_token_lifetime_seconds=TOKEN_LIFETIME
    )
    issuer = AccessService(settings).endpoints(base_url).issuer
    return issuer.issue(
        role="system",
        subject="bench-hosp",
        client_id="bench-hosp",
        scope="system/*.rs",
        organisation=HOSPITAL,
    ).access_token


def measure(kind: str, args: argparse.Namespace) -> list[dict]:
    """Figures for one database kind, one server, every target in turn."""
    workdir = temp_dir()
    url = prepare_database(kind, args.postgres, workdir)
    paths = seed(url, args.patients)
    port = free_port()
    env = {
        "REGISTER_DATABASE_URL": url,
        "REGISTER_DATA_DIR": str(workdir / "data"),
        "REGISTER_BASE_URL": f"http://127.0.0.1:{port}/fhir",
        "REGISTER_AUTH_TOKEN_LIFETIME_SECONDS": str(TOKEN_LIFETIME),
    }
    auth = {"Authorization": f"Bearer {token(workdir / 'data', env['REGISTER_BASE_URL'])}"}
    results = {}
    with running(register_server(port, env, 1), env, f"http://127.0.0.1:{port}/ready"):
        for target, chosen in paths.items():
            script = lua_paths(random.sample(chosen, min(200, len(chosen))), workdir)
            results[target] = median_run(
                f"http://127.0.0.1:{port}/",
                script=script,
                headers=auth,
                runs=args.runs,
                seconds=args.seconds,
                warmup=2,
            )
    rows = []
    for what, ours, reference in (
        ("read by id, patient with a Consent", "read-consent", "read-none"),
        (
            "search Observation?patient (5 matches), patient with a Consent",
            "search-consent",
            "search-none",
        ),
        ("read by id, own organisation's record", "read-own", "read-none"),
    ):
        a, b = results[ours], results[reference]
        rows.append({"what": what, "db": kind, "ours": a, "ref": b, "ratio": a.rps / b.rps})
    return rows


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
    print(
        "| what | database | req/s | p50 ms | p99 ms "
        "| reference: same, patient without a Consent (req/s) | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['what']} | {r['db']} | {r['ours'].rps:.0f} | {r['ours'].p50_ms:.2f} | "
            f"{r['ours'].p99_ms:.2f} | {r['ref'].rps:.0f} | {r['ratio']:.2f} |"
        )


if __name__ == "__main__":
    main()
