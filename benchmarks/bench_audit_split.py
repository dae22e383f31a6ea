"""Where the audit's cost goes: the real writer against writers that break its rules.

    python -m benchmarks.bench_audit_split [--rounds 6] [--seconds 6] [--connections 32]

Reads by id of random patients on SQLite (wrk, one worker), in alternating rounds, from:

- ``off``: auditing disabled;
- ``on``: the register as it runs (each read waits until its event is committed);
- ``ackfirst``: the writer acknowledges each batch, then commits it: the same work, no waiting;
- ``nocommit``: the writer acknowledges each batch and writes nothing.

The last two exist only here (:mod:`benchmarks.audit_variant_writer`). Beside throughput, the CPU
time per read of the server process and of its writer process (from ``/proc``), which is what
the two cores are shared out in. Prints a Markdown table; ratios to ``off`` are taken within each
round, then the median over rounds, with the lowest and highest round beside it.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.bench_core import bench_token, seed
from benchmarks.harness import (
    free_port,
    lua_paths,
    register_env,
    register_server,
    running,
    temp_dir,
    wrk,
)

VARIANTS = ("off", "on", "ackfirst", "nocommit")
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _children(pid: int) -> list[int]:
    found = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    )
    return [int(p) for p in found.stdout.split()]


def _command(variant: str, port: int) -> list[str]:
    if variant in ("off", "on"):
        return register_server(port, {}, 1)
    return [sys.executable, "-m", "benchmarks.audit_variant_server", str(port)]


def main() -> None:
    """Run the variants in alternating rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--patients", type=int, default=2000)
    args = parser.parse_args()
    random.seed(7)
    work = temp_dir()
    url = f"sqlite:///{work / 'bench.sqlite3'}"
    ids, _ = seed(url, args.patients)
    (work / "r").mkdir()
    script = lua_paths([f"/fhir/Patient/{random.choice(ids)}" for _ in range(500)], work / "r")
    found: dict[str, list[tuple[float, float, float, float, float]]] = {v: [] for v in VARIANTS}
    for number in range(args.rounds):
        for variant in VARIANTS if number % 2 == 0 else VARIANTS[::-1]:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            env = register_env(url, work / "data", port, audited=variant != "off")
            env["BENCH_AUDIT_VARIANT"] = variant
            headers = {
                "Authorization": f"Bearer {bench_token(work / 'data', env['REGISTER_BASE_URL'])}"
            }
            with running(_command(variant, port), env, f"{base}/ready") as process:
                wrk(f"{base}/", seconds=2, script=script, headers=headers)  # warm-up
                writers = _children(process.pid) if variant != "off" else []
                before = [_cpu_seconds(p) for p in [process.pid, *writers]]
                result = wrk(
                    f"{base}/",
                    seconds=args.seconds,
                    script=script,
                    headers=headers,
                    connections=args.connections,
                )
                after = [_cpu_seconds(p) for p in [process.pid, *writers]]
            if result.errors:
                raise SystemExit(f"{variant}: {result.errors} non-2xx answers")
            reads = result.rps * args.seconds
            server = (after[0] - before[0]) / reads * 1e6
            writer = sum(b - a for a, b in zip(before[1:], after[1:], strict=True)) / reads * 1e6
            found[variant].append((result.rps, result.p50_ms, result.p99_ms, server, writer))
    print(
        "| variant | req/s | p50 ms | p99 ms | server CPU µs a read | writer CPU µs a read | "
        "ratio to off | rounds' ratios |"
    )
    print("|---|---|---|---|---|---|---|---|")
    off = [r[0] for r in found["off"]]
    for variant in VARIANTS:
        runs = found[variant]
        ratios = sorted(r[0] / o for r, o in zip(runs, off, strict=True))
        medians = [statistics.median(r[i] for r in runs) for i in range(5)]
        print(
            f"| {variant} | {medians[0]:.0f} | {medians[1]:.2f} | {medians[2]:.2f} | "
            f"{medians[3]:.0f} | {medians[4]:.0f} | {statistics.median(ratios):.2f} | "
            f"{ratios[0]:.2f}-{ratios[-1]:.2f} |"
        )


if __name__ == "__main__":
    main()
