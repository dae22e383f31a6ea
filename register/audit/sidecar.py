"""The audit writer process: appends and commits the audit events a server process sends it.

Each server process (``careregister serve``, one per worker) starts one of these and talks to it
over a socket pair (:mod:`register.audit.writer`). The server sends batches of prepared events;
this process appends everything that has arrived to the chain in one transaction, commits, and
only then acknowledges each batch, so a read is never answered before its event is durable. It
runs in its own interpreter because the append (B-tree inserts, the commit, WAL checkpoints) cost
more CPU than the read it records, and the server's event loop has one core to spend.

Started as ``python -m register.audit.sidecar`` with ``REGISTER_AUDIT_FD`` (the socket) and
``REGISTER_AUDIT_TARGET`` (JSON: ``{"kind": "sqlite", "path": ...}`` or ``{"kind":
"postgresql", "conninfo": ...}``). It exits when the server closes its end (or dies), after
committing what it has received. It never logs event contents.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import socket
import sqlite3
import struct
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from register.audit.plan import (
    ANY_EVENT_SQL,
    HEAD_SQL,
    Alert,
    PreparedEvent,
    Wire,
    from_wire,
    head_of,
    plan_events,
)

HEADER = struct.Struct(">I")
"""Every message is a 4-byte big-endian length, then a pickle."""

Batch = tuple[int, list[Wire], list[list[Alert]]]
"""What the server sends: a batch number, the events (as tuples), the review-queue alerts of
each."""
Ack = tuple[int, str | None]
"""What this process answers per batch: its number and None, or why it was not committed."""


def frame(payload: Any) -> bytes:
    """One message: its length, then its pickle."""
    body = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


class Frames:
    """Splits a byte stream into messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[Any]:
        """The whole messages completed by ``data``."""
        self._buffer += data
        while len(self._buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buffer)
            if len(self._buffer) < HEADER.size + size:
                return
            body = bytes(self._buffer[HEADER.size : HEADER.size + size])
            del self._buffer[: HEADER.size + size]
            yield pickle.loads(body)  # our own server process, over a socket pair


class Store(Protocol):
    """Where the chain lives."""

    def append(self, events: Sequence[PreparedEvent], alerts: Sequence[Sequence[Alert]]) -> None:
        """Append and commit ``events`` in one transaction."""

    def after_ack(self) -> None:
        """Upkeep that no request should wait for, done once a batch is acknowledged."""

    def close(self) -> None:
        """Close the connection."""


CHECKPOINT_EVERY_EVENTS = 300
"""Events appended between two checkpoints of the write-ahead log (about 3 pages an event, so
about as often as SQLite's own 1,000-page autocheckpoint)."""
CHECKPOINT_EVERY_COMMITS = 50
"""Or commits, whichever comes first (a quiet register appends one event a commit)."""

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=30000",
    "PRAGMA foreign_keys=ON",
    "PRAGMA wal_autocheckpoint=0",
)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    for pragma in _PRAGMAS:
        conn.execute(pragma)
    return conn


def _checkpoint(conn: sqlite3.Connection) -> None:
    """Copy what the log holds into the database file, without waiting for anyone (nothing to
    copy costs nothing: no sync)."""
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


class Checkpointer:
    """Checkpoints the write-ahead log on its own thread and connection, while the writer goes
    on committing.

    A checkpoint copies the log into the database file and syncs both: about 7 ms for 300
    events here, nearly all of it the two fsyncs. Done between commits, every read waiting for
    the next commit waited for it too (benchmarks/README.md, Audit). SQLite lets a checkpoint
    run beside a writer; the thread releases the GIL for the copy and the syncs.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._closing = False
        self.finished = False
        """A pass has ended since the writer last looked (it sets this back)."""
        self._thread = threading.Thread(target=self._run, name="audit-checkpoint", daemon=True)
        self._thread.start()

    @property
    def idle(self) -> bool:
        """No pass is running or asked for."""
        return self._idle.is_set()

    def request(self) -> bool:
        """Start a pass unless one is running; whether one was started."""
        if not self._idle.is_set():
            return False
        self._idle.clear()
        self._wake.set()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no pass is running (tests and shutdown)."""
        return self._idle.wait(timeout)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._closing:
                    return
                try:
                    if conn is None:
                        conn = _connect(self._path)
                    _checkpoint(conn)
                except Exception as exc:  # the thread lives on: tried again at the next request
                    _log(f"audit checkpoint failed: {type(exc).__name__}")
                self.finished = True
                self._idle.set()
        finally:
            if conn is not None:
                conn.close()
            self._idle.set()

    def close(self) -> None:
        """Stop the thread after the pass in progress."""
        self._closing = True
        self._wake.set()
        self._thread.join(timeout=30)


class SqliteStore:
    """The chain in a SQLite file (WAL; the server's own pragmas).

    SQLite would checkpoint inside the commit that crosses its threshold, so the reads waiting
    for that commit would wait for the copy and its fsyncs too. This connection turns that off;
    after an acknowledgement (:meth:`after_ack`) it asks a :class:`Checkpointer` thread for a
    pass, which runs beside the next commits. The log restarts from its beginning only at a
    commit that finds it fully copied, and under load a commit always lands while the pass runs;
    so after each pass, what was appended meanwhile (a commit or two) is copied here, between
    commits: about 1 ms, against about 7 for the whole pass.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: Checkpointer | None = None
        self._events = 0
        self._commits = 0

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = _connect(self._path)
        return self._conn

    def after_ack(self) -> None:
        """Copy what was appended during the last checkpoint pass, or start a pass if enough has
        been appended since the last."""
        if self._conn is None:
            return
        checkpointer = self._checkpointer
        if checkpointer is not None and checkpointer.idle and checkpointer.finished:
            checkpointer.finished = False
            try:
                _checkpoint(self._conn)
            except sqlite3.Error as exc:  # tried again after the next pass
                _log(f"audit checkpoint failed: {type(exc).__name__}")
            return
        if self._events < CHECKPOINT_EVERY_EVENTS and self._commits < CHECKPOINT_EVERY_COMMITS:
            return
        if checkpointer is None:
            checkpointer = self._checkpointer = Checkpointer(self._path)
        if checkpointer.request():
            self._events = self._commits = 0

    def wait_for_checkpoints(self, timeout: float = 30) -> None:
        """Wait for a checkpoint pass in progress (tests)."""
        if self._checkpointer is not None:
            self._checkpointer.wait(timeout)

    def append(self, events: Sequence[PreparedEvent], alerts: Sequence[Sequence[Alert]]) -> None:
        """Append and commit ``events`` (BEGIN IMMEDIATE: the chain head is read under the lock)."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(HEAD_SQL).fetchone()
            empty = row is None and conn.execute(ANY_EVENT_SQL).fetchone() is None
            plan = plan_events(events, alerts, head_of(row, not empty), sqlite=True, mark="?")
            for sql, rows in plan.statements:
                conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        self._events += len(events)
        self._commits += 1

    def close(self) -> None:
        """Stop the checkpoint thread and close the connection."""
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PostgresStore:
    """The chain in PostgreSQL (the head row locked ``FOR UPDATE`` orders appenders)."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn: Any = None

    def append(self, events: Sequence[PreparedEvent], alerts: Sequence[Sequence[Alert]]) -> None:
        """Append and commit ``events`` in one transaction."""
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo)
        conn = self._conn
        try:
            with conn.cursor() as cur:
                cur.execute(HEAD_SQL + " FOR UPDATE")
                row = cur.fetchone()
                empty = True
                if row is None:
                    cur.execute(ANY_EVENT_SQL)
                    empty = cur.fetchone() is None
                plan = plan_events(events, alerts, head_of(row, not empty), sqlite=False, mark="%s")
                with conn.pipeline():  # every statement of the batch in one round trip
                    for sql, rows in plan.statements:
                        cur.executemany(sql, rows)
            conn.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                conn.rollback()
            if conn.broken or conn.closed:
                self._conn = None
            raise

    def after_ack(self) -> None:
        """Nothing: PostgreSQL checkpoints in its own processes."""

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


def open_store(target: dict[str, str]) -> Store:
    """The store ``target`` names (see the module docstring)."""
    if target["kind"] == "sqlite":
        return SqliteStore(target["path"])
    if target["kind"] == "postgresql":
        return PostgresStore(target["conninfo"])
    raise ValueError(f"unknown audit store kind {target['kind']!r}")


def commit_batches(store: Store, batches: Sequence[Batch]) -> list[Ack]:
    """Append every event of ``batches`` in one transaction; one answer per batch."""
    events = [from_wire(event) for _, batch_events, _ in batches for event in batch_events]
    alerts = [raised for _, _, batch_alerts in batches for raised in batch_alerts]
    try:
        store.append(events, alerts)
    except Exception as exc:  # every batch of the group is refused; the server answers 503
        _log(f"audit batch failed: {type(exc).__name__}")
        return [(number, type(exc).__name__) for number, _, _ in batches]
    return [(number, None) for number, _, _ in batches]


def _log(message: str) -> None:
    record = {"level": "error", "logger": "register.audit.sidecar", "message": message}
    print(json.dumps(record), file=sys.stderr, flush=True)


def serve(sock: socket.socket, store: Store) -> None:
    """Commit what arrives until the server closes its end; acknowledge after each commit."""
    frames = Frames()
    closed = False
    while not closed:
        sock.setblocking(True)
        try:
            data = sock.recv(1 << 20)
        except OSError:  # the server died
            data = b""
        batches: list[Batch] = []
        while data:
            batches.extend(frames.feed(data))
            sock.setblocking(False)  # take whatever else has arrived into the same commit
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                break
            except OSError:
                data = b""
        else:
            closed = True
        if batches:
            sock.setblocking(True)
            with contextlib.suppress(OSError):  # the server has gone: nothing to tell it
                sock.sendall(frame(commit_batches(store, batches)))
            store.after_ack()


def main() -> None:
    """Entry point of the writer process."""
    sock = socket.socket(fileno=int(os.environ["REGISTER_AUDIT_FD"]))
    store = open_store(json.loads(os.environ["REGISTER_AUDIT_TARGET"]))
    try:
        serve(sock, store)
    finally:
        store.close()
        sock.close()


if __name__ == "__main__":
    main()
