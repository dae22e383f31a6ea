"""Database engines and transactions for SQLite (embedded default) and PostgreSQL.

SQLite runs in WAL mode so readers never wait for the writer; a write transaction starts with
``BEGIN IMMEDIATE`` so two writers queue for the lock instead of failing half-way. PostgreSQL runs
at READ COMMITTED with row locks taken explicitly where a version number is read and bumped.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

# No memory map and a modest page cache: in WAL mode a connection's cache is dropped whenever
# another connection has committed (the audit writer commits hundreds of times a second under
# read load), and with a 64 MiB cache and a 256 MiB map that reset cost reads about 10 us each
# on average (a probe: 17.6 us against 9.7 us per point read, one commit per ten reads); searches
# measured the same either way (benchmarks/README.md, Audit).
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-8000",
)


def create_db_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for ``url`` with the register's connection settings applied."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, pool_size=pool_size)
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_recycle=1800,
        )
    raise ValueError(f"unsupported database backend: {parsed.get_backend_name()}")


def _sqlite_engine(url: str, *, pool_size: int) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=pool_size,
        # Reads keep one connection per worker thread (Database.read), and the thread pool can
        # hold more threads (40) than a bounded pool has connections: the next thread would
        # wait 30 s and fail. A SQLite connection is a file handle, so no bound.
        max_overflow=-1,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver: we issue BEGIN ourselves (see write_transaction), so a
        # one-statement read costs no BEGIN/COMMIT round and a write takes the lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    return engine


def _begin(conn: Connection, statement: str) -> None:
    """Start a SQLite transaction on the driver connection (pysqlite issues none itself)."""
    conn.connection.driver_connection.execute(statement)  # type: ignore[union-attr]


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction: committed on success, rolled back on any error.

    On SQLite the transaction starts with ``BEGIN IMMEDIATE`` so concurrent writers queue for
    the lock instead of failing half-way through.
    """
    with engine.connect() as conn, conn.begin():
        if engine.dialect.name == "sqlite":
            _begin(conn, "BEGIN IMMEDIATE")
        yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a read transaction, so a multi-query read sees one snapshot.

    SQLite's deferred transaction reads one snapshot; PostgreSQL's default (READ COMMITTED)
    lets each statement see later commits, so there the transaction is REPEATABLE READ (a
    search page and its includes, or ``audit verify`` walking the chain while the register
    runs, must not mix two states). Asked for as an execution option, psycopg puts the level in
    its ``BEGIN``, at no measurable cost; a ``SET TRANSACTION`` statement costs a round trip
    (+120 µs a read on loopback, ``benchmarks/bench_read_snapshot.py``). The pool resets the
    level when the connection is returned (``tests/api/test_read_snapshot.py``).
    """
    with engine.connect() as conn:
        if engine.dialect.name != "sqlite":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            if engine.dialect.name == "sqlite":
                _begin(conn, "BEGIN")
            yield conn


T = TypeVar("T")


class Database:
    """The service's handle on its database: the engine and the ways requests use it.

    Point reads run on a connection kept per thread (checking one out of the pool for every
    request costs more than the read itself); on PostgreSQL that connection is in autocommit
    mode, one round trip per read. Multi-query reads take a pooled connection and a snapshot.
    """

    def __init__(self, engine: Engine, *, concurrency: int = 10) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._local = threading.local()
        self.write_lock = threading.Lock()
        """Serialises this process's SQLite writers (see :meth:`write`)."""
        self.concurrency = concurrency
        self._limiter: anyio.CapacityLimiter | None = None

    async def in_thread(self, work: Callable[[], T]) -> T:
        """Run ``work`` (which uses the database) on a worker thread, at most ``concurrency`` at
        once; the rest wait on the event loop.

        Bounded by the connection pool rather than by the thread pool (40): more threads than
        pooled connections made the pool open PostgreSQL connections beyond its size and close
        them on return, a new server process per request under load (measured with
        benchmarks/bench_audit.py, see benchmarks/README.md). The request's context variables
        go with ``work`` to the thread.
        """
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.concurrency)
        return await anyio.to_thread.run_sync(work, limiter=self._limiter)

    @contextmanager
    def read(self, *, snapshot: bool = True) -> Iterator[Connection]:
        """A connection for reading; ``snapshot`` makes several queries see one state."""
        if not self.is_sqlite and snapshot:
            with read_transaction(self.engine) as conn:
                yield conn
            return
        conn = self._thread_connection()
        try:
            if snapshot:
                with conn.begin():
                    _begin(conn, "BEGIN")
                    yield conn
                return
            # One statement needs no transaction (the driver connection autocommits): no
            # BEGIN/COMMIT, here or at the server; end whatever SQLAlchemy began on its own.
            yield conn
            if conn.in_transaction():
                conn.commit()
        except BaseException:
            self._drop_thread_connection()
            raise

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection in a write transaction (all or nothing).

        On SQLite, writers in this process queue on a lock before asking SQLite for its write
        lock: SQLite's own busy wait sleeps and retries, which under load gave second-long tails.
        """
        if self.is_sqlite:
            with self.write_lock, write_transaction(self.engine) as conn:
                yield conn
            return
        with write_transaction(self.engine) as conn:
            yield conn

    def _thread_connection(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            conn = self.engine.connect()
            if not self.is_sqlite:
                # One-statement reads need no transaction: autocommit saves the BEGIN and
                # COMMIT round trips to the server.
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            self._local.conn = conn
        return conn

    def _drop_thread_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def dispose(self) -> None:
        """Close this thread's connection and the pool's idle ones."""
        self._drop_thread_connection()
        self.engine.dispose()


def is_postgres(engine: Engine | Connection) -> bool:
    """Whether ``engine`` talks to PostgreSQL."""
    return engine.dialect.name == "postgresql"
