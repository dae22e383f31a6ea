"""Group commit for audit events of reads and refused requests.

A request is not answered before its audit event is committed. Committing one transaction per
read would cost more than the read; instead each request adds its event to the pending batch and
waits. The batch's statements run on the event loop (a few driver-level inserts, tens of
microseconds per event), and only the commit, which waits for the disk or the database server,
runs on a committing thread; while it does, new events gather into the next batch, which starts
as soon as the commit is done. A batch of one when the register is quiet, everything that
arrived during the previous commit under load. Events of writes skip this: they are appended
inside the write's own transaction.

Why this split (measured with benchmarks/bench_audit.py): a background thread running whole
batches gives up the GIL at every database call and, while the loop is busy serving, waited up
to the interpreter's switch interval each time to get it back (tens of milliseconds per batch,
audited reads at a quarter of the unaudited rate); committing on the loop blocked it for the
disk's write time (a third of the wall time under load).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager

from sqlalchemy import Connection

from register.audit.chain import PreparedEvent
from register.audit.recorder import append_events
from register.db import Database

log = logging.getLogger("register.audit")


class AuditUnavailable(Exception):
    """The audit log could not be written, so the access it records must not happen."""


_Pending = list[tuple[PreparedEvent, "asyncio.Future[None]"]]


class AuditWriter:
    """Commits the audit events of reads in batches: statements on the loop, commit off it."""

    def __init__(self, db: Database, *, max_batch: int = 1000) -> None:
        self._db = db
        self._max_batch = max_batch
        self._pending: _Pending = []
        self._busy = False
        self._committer: ThreadPoolExecutor | None = None

    async def record(self, event: PreparedEvent) -> None:
        """Add ``event`` to the pending batch and return once it is committed
        (AuditUnavailable if it cannot be)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((event, future))
        if not self._busy:
            self._busy = True
            loop.call_soon(self._flush, loop)
        await future

    def record_blocking(self, event: PreparedEvent) -> None:
        """Commit ``event`` at once, from a thread with no event loop (the command line)."""
        try:
            with self._db.write() as conn:
                append_events(conn, [event])
        except Exception as exc:
            log.error("audit event failed", exc_info=exc)
            raise AuditUnavailable(type(exc).__name__) from None

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
        if not batch:
            self._busy = False
            return
        transaction: AbstractContextManager[Connection] = self._db.write()
        try:
            conn = transaction.__enter__()
            append_events(conn, [event for event, _ in batch])
        except Exception as exc:  # any failure: every waiting request is refused
            with contextlib.suppress(Exception):
                transaction.__exit__(type(exc), exc, exc.__traceback__)
            log.error("audit batch failed", exc_info=exc)
            self._settle(loop, batch, AuditUnavailable(type(exc).__name__))
            return
        if self._committer is None:
            self._committer = ThreadPoolExecutor(1, thread_name_prefix="audit-commit")
        committed = loop.run_in_executor(self._committer, _commit, transaction)
        committed.add_done_callback(lambda done: self._committed(loop, batch, done))

    def _committed(
        self, loop: asyncio.AbstractEventLoop, batch: _Pending, done: asyncio.Future[None]
    ) -> None:
        error = done.exception()
        if error is not None:
            log.error("audit commit failed", exc_info=error)
        self._settle(loop, batch, AuditUnavailable(type(error).__name__) if error else None)

    def _settle(
        self, loop: asyncio.AbstractEventLoop, batch: _Pending, error: AuditUnavailable | None
    ) -> None:
        for _, future in batch:
            if future.done():  # the request was cancelled (client gone)
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(AuditUnavailable(str(error)))
        if self._pending:
            loop.call_soon(self._flush, loop)
        else:
            self._busy = False

    def close(self) -> None:
        """Stop the committing thread (after the batch in flight is committed). The writer can
        be used again by a later event loop (an app started again, as tests do)."""
        if self._committer is not None:
            self._committer.shutdown(wait=True)
            self._committer = None
        for _, future in self._pending:
            if not future.done():
                future.cancel()
        self._pending = []
        self._busy = False


def _commit(transaction: AbstractContextManager[Connection]) -> None:
    transaction.__exit__(None, None, None)
