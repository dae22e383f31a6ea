"""What auditing costs the server process, in CPU per read, without HTTP or wrk.

    python -m benchmarks.bench_audit_cpu [--rounds 16] [--per-round 1000]

One process holds several apps on the same SQLite database, each in its own mode; they serve
reads by id of random patients in alternating rounds (32 concurrent clients, plain ASGI calls,
no sockets), and each round's CPU time of this process is divided by its requests. Pairing the
modes round by round takes out most of this machine's drift, which throughput runs cannot.

Modes: ``off`` (auditing disabled), ``unshipped`` (the event is built and the response waits on
an already-settled future: everything but the writer process), ``on`` (the real writer process).
The writer process's own CPU is not counted: it runs on the other core.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from contextlib import AsyncExitStack
from typing import Any

import uvloop

from benchmarks.bench_core import bench_token, seed
from benchmarks.harness import temp_dir
from register.app import create_app
from register.settings import Settings

BASE = "http://127.0.0.1:9/fhir"
CLIENTS = 32


def _app(mode: str, url: str, data_dir: Any) -> Any:
    settings = Settings(
        database_url=url,
        data_dir=data_dir,
        base_url=BASE,
        audit_enabled=mode != "off",
        auth_token_lifetime_seconds=3600,
        log_level="warning",
    )
    app = create_app(settings)
    if mode == "unshipped":

        def settled(_event: object) -> asyncio.Future[None]:
            future = asyncio.get_running_loop().create_future()
            future.set_result(None)
            return future

        app.state.audit.submit = settled
    return app


async def _serve(app: Any, ids: list[str], headers: list[tuple[bytes, bytes]], n: int) -> float:
    """CPU µs of this process per read for ``n`` reads by ``CLIENTS`` concurrent clients."""
    queue = [random.choice(ids) for _ in range(n)]
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def client() -> None:
        while queue:
            path = f"/fhir/Patient/{queue.pop()}"
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "query_string": b"",
                "root_path": "",
                "headers": headers,
                "client": ("127.0.0.1", 5555),
                "server": ("127.0.0.1", 9),
            }
            await app(scope, receive, send)

    started = time.process_time()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    spent = time.process_time() - started
    if set(statuses) != {200}:
        raise RuntimeError(f"unexpected statuses {sorted(set(statuses))}")
    return spent / n * 1e6


async def _measure(args: argparse.Namespace) -> dict[str, list[float]]:
    work = temp_dir()
    url = f"sqlite:///{work}/bench.sqlite3"
    ids, _ = seed(url, args.patients)
    token = bench_token(work / "data", BASE)
    headers = [(b"host", b"127.0.0.1:9"), (b"authorization", f"Bearer {token}".encode())]
    apps = {mode: _app(mode, url, work / "data") for mode in args.modes}
    results: dict[str, list[float]] = {mode: [] for mode in args.modes}
    async with AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
        for app in apps.values():  # warm-up
            await _serve(app, ids, headers, 500)
        for number in range(args.rounds):
            order = args.modes if number % 2 == 0 else args.modes[::-1]
            for mode in order:
                results[mode].append(await _serve(apps[mode], ids, headers, args.per_round))
    return results


def main() -> None:
    """Print a Markdown table: CPU µs per read by mode, and the paired difference from ``off``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--per-round", type=int, default=1000)
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--modes", nargs="+", default=["off", "unshipped", "on"])
    args = parser.parse_args()
    random.seed(7)
    results = uvloop.run(_measure(args))
    base = results[args.modes[0]]
    print("| mode | CPU µs per read (median of rounds) | paired difference | paired ratio |")
    print("|---|---|---|---|")
    for mode in args.modes:
        runs = results[mode]
        diff = statistics.median(a - b for a, b in zip(runs, base, strict=True))
        ratio = statistics.median(a / b for a, b in zip(runs, base, strict=True))
        print(f"| {mode} | {statistics.median(runs):.0f} | {diff:+.0f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
