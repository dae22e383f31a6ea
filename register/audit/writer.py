"""Group commit for audit events of reads and refused requests.

A request is not answered before its audit event is committed. Committing one transaction per
read would cost more than the read; instead each request adds its event to the pending batch and
waits. The pending batch is shipped to the audit writer process (:mod:`register.audit.sidecar`),
which commits it in one transaction and acknowledges; the acknowledgement releases the waiting
requests. One batch is in flight at a time: what arrives while the writer commits is shipped as
one batch when the acknowledgement comes back (group commit). A batch of one when the register
is quiet; under load, everything served during one commit. Events of writes skip this: they are
appended inside the write's own transaction, in this process.

Why a process (measured with benchmarks/bench_audit.py, see benchmarks/README.md): appending in
this process cost about 110 µs of the event loop's CPU per read, against about 210 µs for the
read itself; a thread did not help (the GIL hand-offs cost more than they saved). Shipping a
batch costs a pickle and one ``send``.

If the writer process cannot commit (or dies), the waiting requests get :class:`AuditUnavailable`
(answered 503, data not sent); the next batch starts a new writer process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Sequence
from typing import Any

from register.audit.plan import Alert, PreparedEvent, to_wire
from register.audit.recorder import LookupNeeded, alerts_for, append_events
from register.audit.sidecar import Ack, Frames, frame
from register.db import Database

log = logging.getLogger("register.audit")

WRITER_MODULE = "register.audit.sidecar"
"""The module run as the writer process (benchmarks swap in variants that break its rules, to
measure what each rule costs: benchmarks/bench_audit_split.py)."""
RESTART_PAUSE_SECONDS = 1.0
"""After the writer process died, batches are refused for this long before a new one starts
(a process that cannot start must not be restarted for every request)."""


class AuditUnavailable(Exception):
    """The audit log could not be written, so the access it records must not happen."""


def target_of(db: Database) -> dict[str, str]:
    """Where the writer process finds the chain (see :mod:`register.audit.sidecar`)."""
    url = db.engine.url
    if db.is_sqlite:
        if not url.database or url.database == ":memory:":
            raise ValueError("the audit log needs a database file, not an in-memory database")
        return {"kind": "sqlite", "path": os.path.abspath(url.database)}
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return {"kind": "postgresql", "conninfo": conninfo}


_Waiting = list["asyncio.Future[None]"]


class _Link:
    """One writer process and the socket to it, bound to one event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        target: dict[str, str],
        on_acks: Any,
        on_lost: Any,
    ) -> None:
        self.loop = loop
        ours, theirs = socket.socketpair()
        env = {
            **os.environ,
            "REGISTER_AUDIT_FD": str(theirs.fileno()),
            "REGISTER_AUDIT_TARGET": json.dumps(target),
        }
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", WRITER_MODULE],
                pass_fds=(theirs.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        self.sock = ours
        self._frames = Frames()
        self._out = bytearray()
        self._on_acks = on_acks
        self._on_lost = on_lost
        self.alive = True
        loop.add_reader(ours.fileno(), self._readable)
        # If the writer object is dropped without close (an app never shut down), the socket
        # closes and the writer process exits after committing what it has.
        self._finalizer = weakref.finalize(self, _shut, ours, self.process)

    def send(self, data: bytes) -> None:
        """Queue ``data`` to the writer process without blocking the loop."""
        if self._out:
            self._out += data
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._lost()
            return
        if sent < len(data):
            self._out += data[sent:]
            self.loop.add_writer(self.sock.fileno(), self._writable)

    def _writable(self) -> None:
        try:
            sent = self.sock.send(self._out)
        except BlockingIOError:
            return
        except OSError:
            self._lost()
            return
        del self._out[:sent]
        if not self._out:
            self.loop.remove_writer(self.sock.fileno())

    def _readable(self) -> None:
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost()
            return
        for acks in self._frames.feed(data):
            self._on_acks(acks)

    def _lost(self) -> None:
        if self.alive:
            self.alive = False
            self._detach()
            self._on_lost(self)

    def _detach(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self.sock.fileno())
            self.loop.remove_writer(self.sock.fileno())

    def close(self, *, timeout: float = 10.0) -> None:
        """Close the socket and wait for the writer process to commit what it has and exit."""
        self.alive = False
        if not self.loop.is_closed():
            self._detach()
        self._finalizer.detach()
        _shut(self.sock, self.process, timeout=timeout)


def _shut(sock: socket.socket, process: subprocess.Popen[bytes], *, timeout: float = 10.0) -> None:
    with contextlib.suppress(OSError):
        sock.close()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class AuditWriter:
    """Ships the audit events of reads to the writer process in batches and waits for them."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._target: dict[str, str] | None = None
        self._pending: list[tuple[PreparedEvent, asyncio.Future[None]]] = []
        self._scheduled = False
        self._waiting: dict[int, _Waiting] = {}
        """Batches shipped and not yet acknowledged, by number."""
        self._numbers = itertools.count(1)
        self._link: _Link | None = None
        self._died_at = float("-inf")
        self._lookups: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Start the writer process now (the first read would otherwise wait for it)."""
        self._link_for(asyncio.get_running_loop())

    async def record(self, event: PreparedEvent) -> None:
        """Add ``event`` to the pending batch and return once it is committed
        (AuditUnavailable if it cannot be)."""
        await self.submit(event)

    def submit(self, event: PreparedEvent) -> asyncio.Future[None]:
        """Add ``event`` to the pending batch; the future is done once it is committed
        (AuditUnavailable if it cannot be)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((event, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._ship, loop)
        return future

    def record_blocking(self, event: PreparedEvent) -> None:
        """Commit ``event`` at once, in this process, from a thread with no event loop (the
        command line)."""
        try:
            with self._db.write() as conn:
                append_events(conn, [event])
        except Exception as exc:
            log.error("audit event failed", exc_info=exc)
            raise AuditUnavailable(type(exc).__name__) from None

    def _ship(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        link = self._link
        if self._waiting and link is not None and link.alive and link.loop is loop:
            return  # a batch is being committed: its acknowledgement ships this one
        batch, self._pending = self._pending, []
        if not batch:
            return
        events = [event for event, _ in batch]
        futures = [future for _, future in batch]
        try:
            alerts = [alerts_for(None, event) for event in events]
        except LookupNeeded:  # a care relationship not remembered: ask the database first
            task = loop.create_task(self._ship_after_lookup(events, futures))
            self._lookups.add(task)
            task.add_done_callback(self._lookups.discard)
            return
        self._send(loop, events, alerts, futures)

    async def _ship_after_lookup(self, events: list[PreparedEvent], futures: _Waiting) -> None:
        try:
            alerts = await asyncio.to_thread(self._alerts_blocking, events)
        except Exception as exc:
            log.error("audit relationship lookup failed", exc_info=exc)
            _settle(futures, AuditUnavailable(type(exc).__name__))
            return
        self._send(asyncio.get_running_loop(), events, alerts, futures)

    def _alerts_blocking(self, events: Sequence[PreparedEvent]) -> list[list[Alert]]:
        with self._db.read(snapshot=False) as conn:
            return [alerts_for(conn, event) for event in events]

    def _send(
        self,
        loop: asyncio.AbstractEventLoop,
        events: list[PreparedEvent],
        alerts: list[list[Alert]],
        futures: _Waiting,
    ) -> None:
        try:
            link = self._link_for(loop)
        except Exception as exc:
            log.error("audit writer process could not start", exc_info=exc)
            _settle(futures, AuditUnavailable(type(exc).__name__))
            return
        number = next(self._numbers)
        self._waiting[number] = futures
        data = frame((number, [to_wire(event) for event in events], alerts))
        link.send(data)

    def _link_for(self, loop: asyncio.AbstractEventLoop) -> _Link:
        link = self._link
        if link is not None and link.alive and link.loop is loop:
            return link
        if link is not None:  # made on a loop that has ended (an app started again)
            self._link = None
            link.close()
            self._refuse_waiting("the audit writer process was replaced")
        if time.monotonic() - self._died_at < RESTART_PAUSE_SECONDS:
            raise AuditUnavailable("the audit writer process stopped")
        if self._target is None:
            self._target = target_of(self._db)
        self._link = _Link(loop, self._target, self._acknowledged, self._lost)
        return self._link

    def _acknowledged(self, acks: Sequence[Ack]) -> None:
        for number, error in acks:
            futures = self._waiting.pop(number, None)
            if futures is not None:
                _settle(futures, None if error is None else AuditUnavailable(error))
        if self._pending and not self._scheduled and self._link is not None:
            self._ship(self._link.loop)

    def _lost(self, link: _Link) -> None:
        log.error("audit writer process stopped; refusing the reads it had not committed")
        self._died_at = time.monotonic()
        self._refuse_waiting("the audit writer process stopped")
        if self._link is link:
            self._link = None
        link.close(timeout=1.0)
        if self._pending and not self._scheduled:  # held back for the lost batch: refused too
            self._scheduled = True
            link.loop.call_soon(self._ship, link.loop)

    def _refuse_waiting(self, why: str) -> None:
        waiting, self._waiting = self._waiting, {}
        for futures in waiting.values():
            _settle(futures, AuditUnavailable(why))

    async def aclose(self) -> None:
        """Wait for the events submitted to be committed (those shipped, and those held back
        behind them), then stop the writer process (app shutdown)."""
        waiting = [f for futures in self._waiting.values() for f in futures]
        waiting += [future for _, future in self._pending]
        waiting = [f for f in waiting if not f.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=10)
        self.close()

    def close(self) -> None:
        """Stop the writer process after it commits what it has. The writer can be used again
        by a later event loop (an app started again, as tests do)."""
        link, self._link = self._link, None
        if link is not None:
            link.close()
        for futures in self._waiting.values():
            _settle(futures, AuditUnavailable("the audit writer was closed"))
        self._waiting = {}
        for _, future in self._pending:
            if not future.done():
                future.cancel()
        self._pending = []
        self._scheduled = False


def _settle(futures: _Waiting, error: AuditUnavailable | None) -> None:
    for future in futures:
        if future.done():  # the request was cancelled (client gone)
            continue
        with contextlib.suppress(RuntimeError):  # its event loop has already ended
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(AuditUnavailable(str(error)))
