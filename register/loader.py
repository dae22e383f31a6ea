"""``careregister load``: bring Bundles and NDJSON files into the register.

Everything goes through the same interactions as the API (validation, indexing, and later
provenance and duplicate checks). A transaction Bundle loads whole or not at all; batch and
collection Bundles and NDJSON files load entry by entry, and each rejected entry is reported
with its place and reason.

Each committed step (a transaction or batch Bundle, or a chunk of entries) appends one
``import`` AuditEvent in its own transaction: who loaded, on whose behalf, the patients whose
records gained data and the versions written (``register.audit.events.import_event``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine

from fhir_adapters.import_formats import SourceFile, ndjson_lines
from fhir_adapters.json_body import MalformedBody, parse_json
from fhir_adapters.operation_outcome import error
from register import interactions, reads, transactions
from register.audit import trail as trails
from register.audit.events import import_event
from register.audit.recorder import append_events
from register.context import RequestContext
from register.db import write_transaction
from register.errors import FhirError

NDJSON_CHUNK = 500


@dataclass(frozen=True)
class Rejection:
    """One item that was not loaded: where it was and why."""

    where: str
    status: int
    reason: str


@dataclass
class LoadReport:
    """What a load did: resources written by type, and every rejection."""

    loaded: Counter[str] = field(default_factory=Counter)
    rejected: list[Rejection] = field(default_factory=list)
    files: int = 0

    @property
    def total_loaded(self) -> int:
        """Resources written."""
        return sum(self.loaded.values())


Progress = Callable[[int], None]


def load_sources(
    engine: Engine,
    ctx: RequestContext,
    sources: list[SourceFile],
    *,
    progress: Progress | None = None,
    max_depth: int = 64,
    audited: bool = True,
) -> LoadReport:
    """Load every source in order and report what happened (``audited``: record each committed
    step as an AuditEvent; off only where the register's audit is off, for benchmarks)."""
    report = LoadReport()
    advance = progress or (lambda n: None)
    step = _audited_step if audited else _unaudited_step
    for source in sources:
        report.files += 1
        if source.kind == "ndjson":
            _load_ndjson(engine, ctx, source.path, report, advance, max_depth, step)
        else:
            _load_json_file(engine, ctx, source.path, report, advance, max_depth, step)
    return report


Step = Callable[[Engine, RequestContext], Any]
"""Opens one load step's write transaction: a context manager yielding its connection."""


@contextmanager
def _audited_step(engine: Engine, ctx: RequestContext) -> Iterator[Connection]:
    """A write transaction whose versions are noted, and which appends its import event last
    (nothing written, no event: a rejected step leaves no trace but the report)."""
    with trails.open_trail() as trail, write_transaction(engine) as conn:
        yield conn
        if trail.written:
            event = import_event(
                principal=ctx.principal,
                organisation=ctx.author_org,
                trail=trail,
                request_id=ctx.request_id,
            )
            append_events(conn, [event])


@contextmanager
def _unaudited_step(engine: Engine, ctx: RequestContext) -> Iterator[Connection]:
    with write_transaction(engine) as conn:
        yield conn


def _reason(exc: FhirError) -> str:
    return "; ".join(issue.diagnostics for issue in exc.issues)[:500]


def _load_json_file(
    engine: Engine,
    ctx: RequestContext,
    path: Path,
    report: LoadReport,
    advance: Progress,
    max_depth: int,
    step: Step,
) -> None:
    try:
        content = parse_json(path.read_bytes(), max_depth=max_depth)
    except (OSError, MalformedBody) as exc:
        reason = exc.issue.diagnostics if isinstance(exc, MalformedBody) else str(exc)
        report.rejected.append(Rejection(str(path), 400, reason))
        advance(1)
        return
    if not isinstance(content, dict):
        report.rejected.append(Rejection(str(path), 400, "not a JSON object"))
        advance(1)
        return
    if content.get("resourceType") != "Bundle":
        _load_items(engine, ctx, [(str(path), content)], report, advance, step)
        return
    kind = content.get("type")
    entries = content.get("entry") or []
    if kind == "transaction":
        try:
            with step(engine, ctx) as conn:
                results = transactions.run_transaction(conn, ctx, content, reads.get)
        except FhirError as exc:
            report.rejected.append(
                Rejection(f"{path} (whole transaction)", exc.status, _reason(exc))
            )
        else:
            for result in results:
                if result.version is not None and result.status in (200, 201):
                    report.loaded[result.version.resource_type] += 1
        advance(len(entries) or 1)
    elif kind == "batch":
        with step(engine, ctx) as conn:
            results = transactions.run_batch(conn, ctx, content, reads.get)
        for index, result in enumerate(results):
            if result.status >= 400:
                reason = "; ".join(i.diagnostics for i in result.issues)[:500]
                report.rejected.append(Rejection(f"{path} entry {index}", result.status, reason))
            elif result.version is not None:
                report.loaded[result.version.resource_type] += 1
        advance(len(entries) or 1)
    else:
        items = [
            (f"{path} entry {index}", entry.get("resource") if isinstance(entry, dict) else None)
            for index, entry in enumerate(entries)
        ]
        _load_items(engine, ctx, items, report, advance, step)


def _load_ndjson(
    engine: Engine,
    ctx: RequestContext,
    path: Path,
    report: LoadReport,
    advance: Progress,
    max_depth: int,
    step: Step,
) -> None:
    chunk: list[tuple[str, Any]] = []
    for number, line in ndjson_lines(path):
        where = f"{path}:{number}"
        try:
            chunk.append((where, parse_json(line, max_depth=max_depth)))
        except MalformedBody as exc:
            report.rejected.append(Rejection(where, 400, exc.issue.diagnostics))
            advance(1)
        if len(chunk) >= NDJSON_CHUNK:
            _load_items(engine, ctx, chunk, report, advance, step)
            chunk = []
    if chunk:
        _load_items(engine, ctx, chunk, report, advance, step)


def _load_items(
    engine: Engine,
    ctx: RequestContext,
    items: list[tuple[str, Any]],
    report: LoadReport,
    advance: Progress,
    step: Step,
) -> None:
    """Upsert resources one by one (each in a savepoint), keeping their ids when they have one."""
    references: dict[str, str] = {}
    with step(engine, ctx) as conn:
        for where, resource in items:
            try:
                with trails.undone_on_failure(), conn.begin_nested():
                    resource_type = _upsert(conn, ctx, resource, references)
                report.loaded[resource_type] += 1
            except FhirError as exc:
                report.rejected.append(Rejection(where, exc.status, _reason(exc)))
            advance(1)


def _upsert(
    conn: Connection, ctx: RequestContext, resource: Any, references: dict[str, str]
) -> str:
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise FhirError(400, error("structure", "The entry holds no resource."))
    transactions.rewrite_references(conn, ctx, resource, references)
    resource_id = resource.get("id")
    if isinstance(resource_id, str):
        result = interactions.update(conn, ctx, resource["resourceType"], resource_id, resource)
    else:
        result = interactions.create(conn, ctx, resource)
    return result.version.resource_type


def summary_rows(report: LoadReport) -> list[tuple[str, int]]:
    """Loaded counts by resource type, largest first."""
    return sorted(report.loaded.items(), key=lambda item: (-item[1], item[0]))


def rejection_json(report: LoadReport) -> bytes:
    """The rejections as JSON (for scripts)."""
    return orjson.dumps([r.__dict__ for r in report.rejected])
