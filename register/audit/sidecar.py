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


class SqliteStore:
    """The chain in a SQLite file (WAL; the server's own pragmas).

    SQLite checkpoints inside the commit that crosses its threshold, so the reads waiting for
    that commit would wait for the copy and its fsyncs too: about half of the append time per
    event (benchmarks/README.md, Audit). This connection turns that off and checkpoints after
    the acknowledgement has gone (:meth:`after_ack`), before it takes the next batch, so the
    log still restarts from its beginning as it would have.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._events = 0
        self._commits = 0

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, timeout=30)
            for pragma in (
                "PRAGMA journal_mode=WAL",
                "PRAGMA synchronous=NORMAL",
                "PRAGMA busy_timeout=30000",
                "PRAGMA foreign_keys=ON",
                "PRAGMA wal_autocheckpoint=0",
            ):
                conn.execute(pragma)
            self._conn = conn
        return self._conn

    def after_ack(self) -> None:
        """Checkpoint the write-ahead log if enough has been appended since the last time."""
        if self._conn is None or (
            self._events < CHECKPOINT_EVERY_EVENTS and self._commits < CHECKPOINT_EVERY_COMMITS
        ):
            return
        self._events = self._commits = 0
        try:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # tried again after the next batches
            _log(f"audit checkpoint failed: {type(exc).__name__}")

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
        """Close the connection."""
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
