"""Shared benchmark machinery: start servers, drive them with wrk, report medians.

Every figure is measured against a reference in the same run (see ../../shared/benchmarking.md):
wrk on loopback, a warm-up before each measurement, the median of several runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: throughput and latency percentiles (milliseconds)."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 60.0) -> None:
    """Wait until ``url`` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


@contextlib.contextmanager
def running(command: list[str], env: dict[str, str], ready_url: str) -> Iterator[subprocess.Popen]:
    """Run a server process until the block ends."""
    process = subprocess.Popen(
        command,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_ready(ready_url)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def register_server(port: int, env: dict[str, str], workers: int) -> list[str]:
    """The command that starts the register."""
    careregister = str(Path(PYTHON).with_name("careregister"))
    return [careregister, "serve", "--port", str(port), "--workers", str(workers)]


def register_env(url: str, data_dir: Path, port: int, *, audited: bool = True) -> dict[str, str]:
    """The environment of a benchmarked register on ``port``: its database and data folder, quiet
    logs, hour-long tokens, auditing on or off."""
    return {
        "REGISTER_DATABASE_URL": url,
        "REGISTER_DATA_DIR": str(data_dir),
        "REGISTER_LOG_LEVEL": "warning",
        "REGISTER_BASE_URL": f"http://127.0.0.1:{port}/fhir",
        "REGISTER_AUTH_TOKEN_LIFETIME_SECONDS": "3600",
        "REGISTER_AUDIT_ENABLED": "true" if audited else "false",
    }


def bare_server(port: int, workers: int) -> list[str]:
    """The command that starts the bare ceiling app under the same server."""
    return [
        PYTHON,
        "-m",
        "uvicorn",
        "benchmarks.bare_app:app",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]


_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_ERRORS = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)|Socket errors:.*?(\d+) timeout")


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(
    url: str,
    *,
    seconds: int = 10,
    connections: int = 32,
    threads: int = 2,
    script: Path | None = None,
    headers: dict[str, str] | None = None,
) -> WrkResult:
    """One wrk run against ``url``."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (Debian package 'wrk')")
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    latencies = {p: _ms(v, u) for p, v, u in _LATENCY.findall(output)}
    errors = sum(int(a or 0) for a, _ in _ERRORS.findall(output))
    rps_match = _RPS.search(output)
    if rps_match is None or "50" not in latencies:
        raise RuntimeError(f"could not parse wrk output:\n{output}")
    return WrkResult(float(rps_match.group(1)), latencies["50"], latencies.get("99", 0.0), errors)


def median_run(
    url: str, *, runs: int = 3, warmup: int = 3, seconds: int = 10, **kwargs: object
) -> WrkResult:
    """Warm up, then the median (by throughput) of ``runs`` wrk runs."""
    wrk(url, seconds=warmup, **kwargs)  # type: ignore[arg-type]
    results = [wrk(url, seconds=seconds, **kwargs) for _ in range(runs)]  # type: ignore[arg-type]
    results.sort(key=lambda r: r.rps)
    middle = results[len(results) // 2]
    return WrkResult(
        middle.rps,
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
    )


def lua_paths(paths: list[str], directory: Path) -> Path:
    """A wrk script that requests a random one of ``paths`` each time."""
    script = directory / "paths.lua"
    items = ",".join(f'"{p}"' for p in paths)
    script.write_text(
        f"local paths = {{{items}}}\n"
        "math.randomseed(os.time())\n"
        "request = function()\n"
        "  return wrk.format('GET', paths[math.random(#paths)])\n"
        "end\n"
    )
    return script


def lua_post(body: bytes, directory: Path) -> Path:
    """A wrk script that POSTs ``body`` (to the URL wrk is given)."""
    body_file = directory / "body.json"
    body_file.write_bytes(body)
    script = directory / "post.lua"
    script.write_text(
        f"local f = io.open('{body_file}', 'rb')\n"
        "local body = f:read('*a')\nf:close()\n"
        "wrk.method = 'POST'\n"
        "wrk.body = body\n"
        "wrk.headers['Content-Type'] = 'application/fhir+json'\n"
    )
    return script


def shared_data(subfolder: str) -> Path:
    """A folder of the team's shared data (``REGISTER_SHARED_DATA``, else ``../shared/data``
    beside the repository); stops the benchmark if it is missing or empty, because a benchmark
    over no data measures nothing."""
    root = Path(os.environ.get("REGISTER_SHARED_DATA") or ROOT.parent / "shared" / "data")
    folder = root / subfolder
    if not folder.is_dir() or not any(folder.iterdir()):
        raise SystemExit(f"no data at {folder}: set REGISTER_SHARED_DATA to the shared data folder")
    return folder


def prepare_database(kind: str, postgres_url: str | None, workdir: Path, name: str) -> str:
    """A fresh database URL of the given kind: a SQLite file in ``workdir``, or the PostgreSQL
    database ``name`` (dropped and created again; each benchmark has its own name, so benchmarks
    running at the same time on one server never drop each other's)."""
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'bench.sqlite3'}"
    assert postgres_url, "--postgres URL is needed for PostgreSQL"
    base = make_url(postgres_url)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def temp_dir() -> Path:
    """A fresh temporary folder for one benchmark run."""
    return Path(tempfile.mkdtemp(prefix="careregister-bench-"))


def lua_post_unique(body: bytes, directory: Path, marker: str = "__N__") -> Path:
    """A wrk script that POSTs ``body`` with ``marker`` replaced by a fresh number each time,
    so every request creates a distinct resource (no duplicate findings skew the figure)."""
    body_file = directory / "body-template.json"
    body_file.write_bytes(body)
    script = directory / "post-unique.lua"
    script.write_text(
        f"local f = io.open('{body_file}', 'rb')\n"
        "local template = f:read('*a')\nf:close()\n"
        "local counter = 0\n"
        "math.randomseed(os.time())\n"
        "local prefix = math.random(100000, 999999)\n"
        "request = function()\n"
        "  counter = counter + 1\n"
        f"  local body = string.gsub(template, '{marker}', prefix .. counter)\n"
        # wrk.format uses the table given instead of wrk.headers: keep -H headers (the token)
        "  local headers = {}\n"
        "  for name, value in pairs(wrk.headers) do headers[name] = value end\n"
        "  headers['Content-Type'] = 'application/fhir+json'\n"
        "  return wrk.format('POST', nil, headers, body)\n"
        "end\n"
    )
    return script
