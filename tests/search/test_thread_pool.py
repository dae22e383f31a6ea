"""Searches run on worker threads that each keep a read connection: more threads than the
pool's size must not make the next search wait for a connection (it used to fail after 30 s)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import text

from register.db import Database, create_db_engine
from register.migrate import upgrade


def test_more_reading_threads_than_pooled_connections(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'r.sqlite3'}", pool_size=1)
    upgrade(engine)
    engine.pool._timeout = 2  # type: ignore[attr-defined]  # fail fast if a thread must wait
    db = Database(engine)
    threads = 8  # more than pool_size (1) plus any bounded overflow
    everyone = threading.Barrier(threads)

    def read() -> int:
        with db.read() as conn:
            everyone.wait(timeout=10)  # all threads hold their connection at once
            return int(conn.execute(text("SELECT 1")).scalar_one())

    with ThreadPoolExecutor(max_workers=threads) as pool:
        assert list(pool.map(lambda _: read(), range(threads))) == [1] * threads
    engine.dispose()
