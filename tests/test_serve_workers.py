"""``careregister serve --workers N``: N worker processes on one port, each with its own audit
writer process, all answering (on both databases)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.audit.test_crash import ROOT, _free_port


def _children(parent: int) -> list[tuple[int, bytes]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.append((int(entry.name), command))
    return found


def test_serve_runs_the_workers_it_is_asked_for(tmp_path, engine):
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REGISTER_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "REGISTER_DATA_DIR": str(tmp_path / "data"),
        "REGISTER_LOG_LEVEL": "error",
    }
    command = [sys.executable, "-c", "from register.cli import main; main()", "serve"]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--workers", "2"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        workers: list[int] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.poll() is None:
            workers = [pid for pid, cmd in _children(server.pid) if b"spawn_main" in cmd]
            writers = [
                pid
                for worker in workers
                for pid, cmd in _children(worker)
                if b"register.audit.sidecar" in cmd
            ]
            if len(workers) == 2 and len(writers) == 2:
                break
            time.sleep(0.2)
        assert len(workers) == 2, "two worker processes"
        assert len(writers) == 2, "each worker started its audit writer process"
        with httpx.Client(timeout=5) as http:
            # The workers share a socket bound by the supervisor; it listens only once a worker
            # has finished its startup (which starts the audit writer), so wait for the first
            # answer before counting.
            while time.monotonic() < deadline:
                try:
                    http.get(f"http://127.0.0.1:{port}/fhir/metadata")
                    break
                except httpx.ConnectError:
                    time.sleep(0.2)
            answers = [http.get(f"http://127.0.0.1:{port}/fhir/metadata") for _ in range(20)]
        assert all(a.status_code == 200 for a in answers)
        assert {a.json()["fhirVersion"] for a in answers} == {"4.0.1"}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
