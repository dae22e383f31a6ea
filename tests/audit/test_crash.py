"""Crash test: a real server (``careregister serve``, on SQLite and on PostgreSQL) is killed with
SIGKILL, together with its audit writer process, while a client reads under load; after a
restart every read that was answered 200 has its audit event (matched by request id), and the
chain is intact."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import select

from register.access_service import AccessService
from register.audit.chain import verify
from register.db import read_transaction
from register.schema import audit_table
from register.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from register.cli import main; main()",
            "serve",
            "--port",
            str(port),
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
        if process.poll() is not None:
            break
    process.kill()
    raise AssertionError("the server did not start")


def _writer_processes(server: int) -> list[int]:
    """The audit writer processes the server started (its children running the sidecar)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == server and b"register.audit.sidecar" in command:
            found.append(int(entry.name))
    return found


def test_every_answered_read_survives_sigkill(tmp_path, engine):
    url = engine.url.render_as_string(hide_password=False)
    port = _free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REGISTER_DATABASE_URL": url,
        "REGISTER_DATA_DIR": str(tmp_path / "data"),
        "REGISTER_LOG_LEVEL": "error",
    }
    server = _start(env, port)
    try:
        settings = Settings(data_dir=tmp_path / "data", database_url=url)
        token = (
            AccessService(settings)
            .endpoints(base)
            .issuer.issue(
                role="system",
                subject="crash-test",
                client_id="crash-test",
                scope="system/*.cruds",
                organisation="CRASH1",
            )
            .access_token
        )
        headers = {"Authorization": f"Bearer {token}"}
        created = httpx.post(
            f"{base}/Patient", json={"resourceType": "Patient", "active": True}, headers=headers
        )
        assert created.status_code == 201, created.text
        patient = created.json()["id"]

        answered: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def reader() -> None:
            with httpx.Client(headers=headers, timeout=5) as http:
                while not stop.is_set():
                    request_id = uuid.uuid4().hex
                    try:
                        response = http.get(
                            f"{base}/Patient/{patient}", headers={"X-Request-Id": request_id}
                        )
                    except httpx.HTTPError:
                        continue
                    if response.status_code == 200:
                        assert response.headers["x-request-id"] == request_id
                        with lock:
                            answered.append(request_id)

        threads = [threading.Thread(target=reader) for _ in range(6)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60  # a busy machine answers slowly: wait for enough reads
        while time.monotonic() < deadline and len(answered) < 200:
            time.sleep(0.1)
        writers = _writer_processes(server.pid)
        assert writers, "the server runs no audit writer process"
        server.send_signal(signal.SIGKILL)  # mid-load: no shutdown, no flush
        for writer in writers:  # and its writer with it: nothing it had not committed survives
            with contextlib.suppress(ProcessLookupError):
                os.kill(writer, signal.SIGKILL)
        server.wait(timeout=10)
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        assert len(answered) > 50, "too few reads under load to mean anything"

        server = _start(env, port)  # starts cleanly on the log it left behind
        with read_transaction(engine) as conn:
            recorded = set(conn.execute(select(audit_table.c.request_id)).scalars())
            report = verify(conn)
        missing = [r for r in answered if r not in recorded]
        assert not missing, f"{len(missing)} of {len(answered)} answered reads have no event"
        assert report.intact, report.problems
    finally:
        server.kill()
        server.wait(timeout=10)
