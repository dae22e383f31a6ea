"""A real uvicorn server on a free loopback port, for tests that drive it with real clients."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_base(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The FHIR base URL of the app under test, served by uvicorn in a thread."""
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}/fhir"
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    assert httpx.get(f"{base}/metadata", timeout=5).status_code == 200
    yield base
    server.should_exit = True
    thread.join(timeout=15)


@pytest.fixture
def live_token(app, live_base: str) -> str:  # type: ignore[no-untyped-def]
    """A system client's bearer token for the live server (its audience is that base URL)."""
    from tests.conftest import issue_token

    return issue_token(app, base_url=live_base)
