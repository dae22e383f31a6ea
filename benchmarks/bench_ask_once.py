"""Pre-fill shares of the shipped Questionnaires over the Synthea patients (pure engines).

    python -m benchmarks.bench_ask_once [SYNTHEA_DIR]

For each patient of ``shared/data/synthea`` (read as the register would hold it: references
rewritten, every record attributed to its encounter's organisation; see
``tests/ask_once/synthea.py``), run ``$populate`` of both Questionnaires in process with an
in-memory fetch, at "now" = the day after the patient's last encounter. Prints a Markdown table
of the share of question items filled (median and range) over all patients, over patients with
any recorded history and over patients with a diabetes or prediabetes diagnosis, the share
filled or offered (last known / candidate), and in-process time per call. HTTP timings come
with the operations (phase 2).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from fhir_adapters.ips import patient_summary
from fhir_adapters.sdc import CANDIDATES, FILLED, LAST_KNOWN, populate
from tests.ask_once.synthea import DATA, all_patients

QUESTIONNAIRES = Path(__file__).resolve().parents[1] / "register" / "data" / "questionnaires"
NAMES = ("diabetes-annual-review", "admission-clerking")


def _range(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{statistics.median(values):.0%} ({min(values):.0%}-{max(values):.0%})"


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    """Run the measurement and print the tables."""
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else DATA
    questionnaires = {n: json.loads((QUESTIONNAIRES / f"{n}.json").read_text()) for n in NAMES}
    patients = list(all_patients(directory))
    shares: dict[tuple[str, str], list[float]] = {}
    offered: dict[tuple[str, str], list[float]] = {}
    timings: dict[str, list[float]] = {n: [] for n in [*NAMES, "summary"]}
    statuses: dict[str, Counter[tuple[str, str]]] = {n: Counter() for n in NAMES}
    for patient in patients:  # warm the compiled-expression caches
        populate(
            questionnaires[NAMES[0]],
            patient=patient.patient,
            fetch=patient.fetch(),
            now=patient.now,
        )
        break
    for patient in patients:
        groups = ["all"] + (["history"] if patient.has_history else [])
        groups += ["diabetes"] if patient.diabetic else []
        for name, questionnaire in questionnaires.items():
            start = time.perf_counter()
            _, report = populate(
                questionnaire,
                patient=patient.patient,
                fetch=patient.fetch(),
                now=patient.now,
                organisations=patient.organisations,
            )
            timings[name].append(time.perf_counter() - start)
            answered = report.count(FILLED) + report.count(LAST_KNOWN) + report.count(CANDIDATES)
            for group in groups:
                shares.setdefault((name, group), []).append(report.share_filled)
                offered.setdefault((name, group), []).append(answered / len(report.items))
            for item in report.items:
                statuses[name][(item.link_id, item.status)] += 1
        start = time.perf_counter()
        patient_summary(
            patient.patient,
            patient.records,
            now=patient.now,
            organisations=patient.organisations,
            care_processes=questionnaires[NAMES[0]],
        )
        timings["summary"].append(time.perf_counter() - start)
    counts = Counter(
        g
        for p in patients
        for g in [
            "all",
            *(["history"] if p.has_history else []),
            *(["diabetes"] if p.diabetic else []),
        ]
    )
    print(
        f"Synthea patients: {len(patients)} (with history {counts['history']},"
        f" diabetes or prediabetes {counts['diabetes']})\n"
    )
    print(
        "| Questionnaire | patients | items filled: median (range)"
        " | filled or offered: median (range) |"
    )
    print("|---|---|---|---|")
    for name in NAMES:
        for group in ("diabetes", "history", "all"):
            key = (name, group)
            print(
                f"| {name} | {group} ({len(shares.get(key, []))})"
                f" | {_range(shares.get(key, []))} | {_range(offered.get(key, []))} |"
            )
    print("\n| call (in process, no HTTP) | p50 ms | p99 ms |")
    print("|---|---|---|")
    for name, values in timings.items():
        label = f"$populate {name}" if name != "summary" else "$summary (with care processes)"
        print(
            f"| {label} | {_percentile(values, 0.5) * 1000:.1f}"
            f" | {_percentile(values, 0.99) * 1000:.1f} |"
        )
    for name in NAMES:
        print(f"\nPer item, {name} (patients by outcome):\n")
        print("| item | filled | last known | candidates | not answerable |")
        print("|---|---|---|---|---|")
        items = dict.fromkeys(link for link, _ in statuses[name])
        for link in items:
            row = [
                statuses[name][(link, s)]
                for s in (FILLED, LAST_KNOWN, CANDIDATES, "not-answerable")
            ]
            print(f"| {link} | " + " | ".join(str(v) for v in row) + " |")


if __name__ == "__main__":
    main()
