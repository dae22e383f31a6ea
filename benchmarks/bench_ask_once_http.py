"""Pre-fill shares and call times of $populate and $summary over HTTP, Synthea loaded.

    python -m benchmarks.bench_ask_once_http [--postgres URL] [--repeat N]

Every Synthea patient of ``shared/data/synthea`` is loaded into a fresh register (SQLite file,
or PostgreSQL with ``--postgres``) as the transaction Bundle Synthea writes, its dates shifted so
that the patient's last encounter began yesterday (the patient attends today; the operations use
the real "now"). Then, through the real app in process (Starlette TestClient: routing, token
check, policy, SQL, serialisation; no network), as a system client of the loading organisation:

- ``Questionnaire/$populate`` of both shipped Questionnaires: the share of question items filled
  (median and range) over all patients, patients with any recorded history, and patients with a
  diabetes or prediabetes diagnosis; and the share filled or offered (last known / candidates);
- the time per ``$populate`` and ``$summary`` call (p50/p99 over patients x repeats), beside
  ``Patient/{id}/$everything?_count=1000`` of the same patient in the same run (the bytes of the
  same record without building anything): the ratio is what building the document costs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

warnings.filterwarnings("ignore", message=".*httpx2.*")
from fastapi.testclient import TestClient  # noqa: E402

from auth.principal import Role  # noqa: E402
from fhir_adapters.sdc import LAST_KNOWN_URL, PREFILL_CANDIDATE_URL  # noqa: E402
from register.app import create_app  # noqa: E402
from register.ask_once import shipped_questionnaires  # noqa: E402
from register.db import create_db_engine  # noqa: E402
from register.migrate import upgrade  # noqa: E402
from register.settings import Settings  # noqa: E402
from tests.ask_once.synthea import DATA, attending_now, load_patient  # noqa: E402

BASE = "http://testserver/fhir"
ORG = "BENCH01"
TOKEN_LIFETIME = 3600  # loading 80 patients into PostgreSQL outlasts the default lifetime


def _database(postgres: str | None, workdir: Path) -> str:
    if postgres is None:
        return f"sqlite:///{workdir / 'ask-once.sqlite3'}"
    base = make_url(postgres)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "careregister_askonce" WITH (FORCE)'))
        conn.execute(text('CREATE DATABASE "careregister_askonce"'))
    admin.dispose()
    return base.set(database="careregister_askonce").render_as_string(hide_password=False)


def _leaves(response: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    stack = list(response.get("item", []))
    while stack:
        item = stack.pop()
        if item.get("item"):
            stack.extend(item["item"])
        elif item.get("type") != "display":
            found.append(item)
    return found


def _outcome(item: dict[str, Any]) -> str:
    urls = {e["url"] for e in item.get("extension", [])}
    if item.get("answer"):
        return "filled"
    if LAST_KNOWN_URL in urls:
        return "last-known"
    if PREFILL_CANDIDATE_URL in urls:
        return "candidates"
    return "not-answerable"


def _range(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{statistics.median(values):.0%} ({min(values):.0%}-{max(values):.0%})"


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    """Load, measure, print Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", help="PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per patient and kind")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-ask-once-"))
    url = _database(args.postgres, workdir)
    engine = create_db_engine(url)
    upgrade(engine)
    settings = Settings(
        data_dir=workdir / "data", database_url=url, auth_token_lifetime_seconds=TOKEN_LIFETIME
    )
    app = create_app(settings, engine=engine)
    forms = {q["id"]: q for q in shipped_questionnaires()}
    shares: dict[tuple[str, str], list[float]] = {}
    offered: dict[tuple[str, str], list[float]] = {}
    timings: dict[str, list[float]] = {}
    per_item: dict[str, Counter[tuple[str, str]]] = {name: Counter() for name in forms}
    groups_count: Counter[str] = Counter()
    with TestClient(app, base_url="http://testserver") as client:
        token = app.state.access.endpoints(BASE).issuer.issue(
            role=Role.SYSTEM,
            subject="bench",
            client_id="bench",
            scope="system/*.cruds",
            organisation=ORG,
        )
        client.headers["Authorization"] = f"Bearer {token.access_token}"
        patients = []
        start = time.perf_counter()
        for path in sorted(args.data.glob("*.json")):
            raw, _ = attending_now(path)
            response = client.post(
                "/fhir", content=raw, headers={"Content-Type": "application/fhir+json"}
            )
            assert response.status_code == 200, response.text[:300]
            patient_id = next(
                e["response"]["location"].split("/")[1]
                for e in response.json()["entry"]
                if e["response"]["location"].startswith("Patient/")
            )
            reference = load_patient(path, raw)
            groups = ["all"] + (["history"] if reference.has_history else [])
            groups += ["diabetes"] if reference.diabetic else []
            groups_count.update(groups)
            patients.append((patient_id, groups))
        loaded = time.perf_counter() - start

        def timed(kind: str, path: str, **params: str) -> dict[str, Any]:
            begin = time.perf_counter()
            response = client.get(path, params=params)
            timings.setdefault(kind, []).append(time.perf_counter() - begin)
            assert response.status_code == 200, response.text[:300]
            return response.json()  # type: ignore[no-any-return]

        for patient_id, _ in patients[:3]:  # warm caches (compiled FHIRPath, statements)
            client.get(f"/fhir/Patient/{patient_id}/$summary")
        for round_ in range(args.repeat):
            for patient_id, groups in patients:
                timed("$everything", f"/fhir/Patient/{patient_id}/$everything", _count="1000")
                timed("$summary", f"/fhir/Patient/{patient_id}/$summary")
                for name, form in forms.items():
                    body = timed(
                        f"$populate {name}",
                        "/fhir/Questionnaire/$populate",
                        subject=f"Patient/{patient_id}",
                        questionnaire=form["url"],
                    )
                    if round_:
                        continue
                    items = _leaves(body["parameter"][0]["resource"])
                    outcomes = [_outcome(i) for i in items]
                    filled = outcomes.count("filled") / len(items)
                    answered = sum(o != "not-answerable" for o in outcomes) / len(items)
                    for group in groups:
                        shares.setdefault((name, group), []).append(filled)
                        offered.setdefault((name, group), []).append(answered)
                    for item, outcome in zip(items, outcomes, strict=True):
                        per_item[name][(item["linkId"], outcome)] += 1
    database = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"{database}; {len(patients)} Synthea patients loaded over HTTP in {loaded:.0f} s "
        f"(with history {groups_count['history']}, diabetes or prediabetes "
        f"{groups_count['diabetes']}); {args.repeat} timed calls per patient and kind\n"
    )
    print("| Questionnaire | patients | items filled: median (range) | filled or offered |")
    print("|---|---|---|---|")
    for name in forms:
        for group in ("diabetes", "history", "all"):
            key = (name, group)
            print(
                f"| {name} | {group} ({len(shares.get(key, []))}) | "
                f"{_range(shares.get(key, []))} | {_range(offered.get(key, []))} |"
            )
    baseline = statistics.median(timings["$everything"])
    print("\n| call over HTTP (in process) | p50 ms | p99 ms | p50 / $everything p50 |")
    print("|---|---|---|---|")
    for kind, values in timings.items():
        p50 = _percentile(values, 0.5)
        print(
            f"| {kind} | {p50 * 1000:.1f} | {_percentile(values, 0.99) * 1000:.1f} | "
            f"{p50 / baseline:.2f} |"
        )
    for name in forms:
        print(f"\nPer item, {name} (patients by outcome):\n")
        print("| item | filled | last known | candidates | not answerable |")
        print("|---|---|---|---|---|")
        for link in dict.fromkeys(link for link, _ in per_item[name]):
            row = [
                per_item[name][(link, s)]
                for s in ("filled", "last-known", "candidates", "not-answerable")
            ]
            print(f"| {link} | " + " | ".join(str(v) for v in row) + " |")
    engine.dispose()


if __name__ == "__main__":
    main()
