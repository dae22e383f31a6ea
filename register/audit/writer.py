"""Group commit for audit events of reads.

A request is not answered before its audit event is committed. Committing one transaction per
read would cost more than the read; instead each request hands its event to this writer and
waits, and one background thread commits whatever has queued up in one transaction (a batch
of one when the register is quiet, dozens under load). Events of writes skip this: they are
appended inside the write's own transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

from register.audit.chain import PreparedEvent
from register.audit.recorder import append_events
from register.db import Database

log = logging.getLogger("register.audit")


class AuditUnavailable(Exception):
    """The audit log could not be written, so the access it records must not happen."""


_Item = tuple[PreparedEvent, Callable[[BaseException | None], None]]


class AuditWriter:
    """Commits queued audit events in batches on one background thread."""

    def __init__(self, db: Database, *, max_batch: int = 500) -> None:
        self._db = db
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()

    async def record(self, event: PreparedEvent) -> None:
        """Queue ``event`` and return once it is committed (AuditUnavailable if it cannot be)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def done(error: BaseException | None) -> None:
            def settle() -> None:
                if future.done():
                    return
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(AuditUnavailable(str(type(error).__name__)))

            loop.call_soon_threadsafe(settle)

        self._submit(event, done)
        await future

    def record_blocking(self, event: PreparedEvent, timeout: float = 30.0) -> None:
        """Queue ``event`` from a worker thread and wait until it is committed."""
        future: Future[None] = Future()

        def done(error: BaseException | None) -> None:
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(AuditUnavailable(str(type(error).__name__)))

        self._submit(event, done)
        future.result(timeout=timeout)

    def _submit(self, event: PreparedEvent, done: Callable[[BaseException | None], None]) -> None:
        if self._closed:
            done(AuditUnavailable("closed"))
            return
        self._ensure_thread()
        self._queue.put((event, done))

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            error: BaseException | None = None
            try:
                with self._db.write() as conn:
                    append_events(conn, [event for event, _ in batch])
            except Exception as exc:  # any failure: every waiting request is refused
                log.error("audit batch failed", exc_info=exc)
                error = exc
            for _, done in batch:
                with contextlib.suppress(Exception):
                    done(error)
            if stop:
                return

    def close(self) -> None:
        """Commit what is queued, then stop the thread (a later event starts a new one: an app
        may be started again, as tests do)."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join(timeout=30)
