"""Many concurrent requests never use more database connections than the pool keeps: database
work waits on the event loop for one of ``db_pool_size`` slots instead of taking a worker thread
(40) and a connection the pool opens beyond its size, then closes, for each request. Through the
real app, with concurrent HTTP requests, on both databases."""

from __future__ import annotations

import asyncio
import threading

import httpx
from sqlalchemy import event

from register.app import create_app
from tests.conftest import issue_token

POOL = 3
CLIENTS = 24


def test_concurrent_searches_stay_within_the_pool(settings, engine):  # type: ignore[no-untyped-def]
    app = create_app(settings.model_copy(update={"db_pool_size": POOL}), engine=engine)
    counts = {"connects": 0, "out": 0, "most": 0}
    lock = threading.Lock()

    def connected(*_args: object) -> None:
        with lock:
            counts["connects"] += 1

    def checked_out(*_args: object) -> None:
        with lock:
            counts["out"] += 1
            counts["most"] = max(counts["most"], counts["out"])

    def checked_in(*_args: object) -> None:
        with lock:
            counts["out"] -= 1

    async def scenario() -> list[int]:
        headers = {"Authorization": f"Bearer {issue_token(app)}"}
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=transport, base_url="http://testserver", headers=headers
            ) as client,
        ):
            for n in range(4):
                body = {"resourceType": "Patient", "name": [{"family": f"Concurrent{n}"}]}
                assert (await client.post("/fhir/Patient", json=body)).status_code == 201
            engine.dispose()  # count from an empty pool
            event.listen(engine, "connect", connected)
            event.listen(engine, "checkout", checked_out)
            event.listen(engine, "checkin", checked_in)
            try:
                answers = await asyncio.gather(
                    *(
                        client.get("/fhir/Patient", params={"family": f"Concurrent{i % 4}"})
                        for i in range(CLIENTS)
                    )
                )
            finally:
                event.remove(engine, "connect", connected)
                event.remove(engine, "checkout", checked_out)
                event.remove(engine, "checkin", checked_in)
            for answer in answers:
                assert answer.json()["total"] == 1, answer.text
            return [answer.status_code for answer in answers]

    statuses = asyncio.run(scenario())
    assert statuses == [200] * CLIENTS
    # the worker threads' connections, plus one the event loop's point reads keep
    assert counts["most"] <= POOL + 1, counts
    assert counts["connects"] <= POOL + 1, counts
