"""Crash test for writes: a real server (``careregister serve``, on both databases) is killed
with SIGKILL while clients post transactions. After a restart, every transaction answered 200
is there in full, and none is there in part."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid

import httpx

from register.access_service import AccessService
from register.settings import Settings
from tests.audit.test_crash import ROOT, _free_port, _start, _writer_processes

NHS = "https://fhir.nhs.uk/Id/nhs-number"
MARK = "https://example.org/crash-test"


def _bundle(tag: str) -> dict:
    """A patient and two observations of theirs, tagged so what survives can be counted."""
    pid = f"urn:uuid:{uuid.uuid4()}"
    entries = [
        {
            "fullUrl": pid,
            "resource": {"resourceType": "Patient", "identifier": [{"system": MARK, "value": tag}]},
            "request": {"method": "POST", "url": "Patient"},
        }
    ]
    for code in ("4548-4", "2345-7"):
        entries.append(
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "identifier": [{"system": MARK, "value": tag}],
                    "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                    "subject": {"reference": pid},
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def test_every_answered_transaction_survives_sigkill_whole(tmp_path, engine):
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
        answered: list[str] = []
        sent: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def writer() -> None:
            with httpx.Client(headers=headers, timeout=10) as http:
                while not stop.is_set():
                    tag = uuid.uuid4().hex
                    with lock:
                        sent.append(tag)
                    try:
                        response = http.post(base, json=_bundle(tag))
                    except httpx.HTTPError:
                        continue
                    if response.status_code == 200:
                        with lock:
                            answered.append(tag)

        threads = [threading.Thread(target=writer) for _ in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(answered) < 20:
            time.sleep(0.05)
        writers = _writer_processes(server.pid)
        server.send_signal(signal.SIGKILL)  # mid-write: no shutdown, no flush
        for process in writers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process, signal.SIGKILL)
        server.wait(timeout=10)
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
        assert len(answered) >= 5, "too few transactions under load to mean anything"

        server = _start(env, port)  # starts cleanly on what it left behind
        with httpx.Client(headers=headers, timeout=30) as http:
            counts: dict[str, int] = {}
            for resource_type in ("Patient", "Observation"):
                link: str | None = f"{base}/{resource_type}?identifier={MARK}|&_count=500"
                while link:
                    page = http.get(link).json()
                    for entry in page.get("entry", []):
                        for identifier in entry["resource"].get("identifier", []):
                            if identifier.get("system") == MARK:
                                tag = identifier["value"]
                                counts[tag] = counts.get(tag, 0) + 1
                    link = next(
                        (x["url"] for x in page.get("link", []) if x["relation"] == "next"), None
                    )
        missing = [tag for tag in answered if counts.get(tag) != 3]
        assert not missing, f"{len(missing)} of {len(answered)} answered transactions incomplete"
        partial = {tag: n for tag, n in counts.items() if n != 3}
        assert not partial, f"transactions stored in part: {partial}"
        assert set(counts) <= set(sent)
    finally:
        server.kill()
        server.wait(timeout=10)
