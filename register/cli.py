"""The ``careregister`` command: serve, migrate, load (and more as features land)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from register import access_cli
from register.settings import get_settings

app = typer.Typer(
    name="careregister",
    help="Shared Care Register: a FHIR R4 server for integrated care teams.",
    no_args_is_help=True,
    add_completion=False,
)
access_cli.install(app)  # token, client, keys, break-glass


def _console() -> Console:
    """A rich console on stderr, sized for the terminal the command runs in."""
    return Console(stderr=True)


def _engine():  # type: ignore[no-untyped-def]
    from register.db import create_db_engine

    settings = get_settings()
    return create_db_engine(settings.resolved_database_url, pool_size=settings.db_pool_size)


@app.command()
def migrate() -> None:
    """Create the database or upgrade its schema in place to this version."""
    from register.migrate import schema_status, upgrade

    engine = _engine()
    before = schema_status(engine)
    upgrade(engine)
    after = schema_status(engine)
    if before.current == after.current:
        _console().print(f"[green]Database already current[/] ({after.head}).")
    else:
        _console().print(
            f"[green]Database upgraded[/] from {before.current or 'empty'} to {after.head}."
        )
    engine.dispose()


@app.command()
def reindex(
    resource_type: Annotated[
        str | None, typer.Option("--type", help="Only resources of this type.")
    ] = None,
    base_url: Annotated[
        list[str] | None,
        typer.Option(help="A base URL clients used (absolute references under it are local)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Rebuild the search indexes from the stored resources (after a parameter changes)."""
    from register.migrate import schema_status
    from register.search_index import reindex as rebuild

    settings = get_settings()
    engine = _engine()
    if not schema_status(engine).is_current:
        _console().print(f"[red]Not reindexing:[/] {schema_status(engine).describe()}.")
        raise typer.Exit(code=2)
    bases = tuple(
        dict.fromkeys([*(base_url or []), *([settings.base_url] if settings.base_url else [])])
    )
    with Progress(
        TextColumn("[bold]Reindexing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console(),
        disable=quiet,
    ) as progress:
        task = progress.add_task("reindex", total=None)
        report = rebuild(
            engine,
            resource_type=resource_type,
            local_bases=bases,
            progress=lambda n: progress.advance(task, n),
        )
    engine.dispose()
    _console().print(
        f"[green]Reindexed[/] {report.resources} resources ({report.rows} index rows)."
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (REGISTER_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (REGISTER_PORT).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (REGISTER_WORKERS).")
    ] = None,
) -> None:
    """Run the register's HTTP service (refuses an out-of-date database schema)."""
    import uvicorn

    from register.logs import configure_logging
    from register.migrate import schema_status

    settings = get_settings()
    engine = _engine()
    try:
        status = schema_status(engine)
    finally:
        engine.dispose()
    if not status.is_current:
        _console().print(f"[red]Not starting:[/] {status.describe()}.")
        raise typer.Exit(code=2)
    configure_logging(settings.log_level)
    bind_host = host or settings.host
    bind_port = port or settings.port
    _console().print(
        f"Shared Care Register on http://{bind_host}:{bind_port}/fhir "
        f"({'SQLite' if settings.is_sqlite else 'PostgreSQL'}, "
        f"{workers or settings.workers} worker(s))"
    )
    uvicorn.run(
        "register.app:create_app",
        factory=True,
        host=bind_host,
        port=bind_port,
        workers=workers or settings.workers,
        access_log=False,
        log_config=None,
        server_header=False,
    )


@app.command()
def load(
    paths: Annotated[list[Path], typer.Argument(help="Bundle/NDJSON files or folders.")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    org: Annotated[
        str | None,
        typer.Option(help="ODS code of the organisation the data comes from (its recorder)."),
    ] = None,
) -> None:
    """Load transaction/batch/collection Bundles and NDJSON files, then report what happened.

    The loading operator is recorded as the author of every resource (Provenance), on behalf of
    ``--org`` when given; that organisation then sees what was loaded as its own records. Each
    committed Bundle or chunk is audited (an ``import`` AuditEvent; one request id per run).
    """
    import secrets

    from auth.principal import ODS_CODE, OPERATOR
    from fhir_adapters.import_formats import count_items, discover
    from register.context import RequestContext
    from register.loader import load_sources, summary_rows
    from register.migrate import schema_status

    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        _console().print(f"[red]No such file or folder:[/] {', '.join(missing)}")
        raise typer.Exit(code=2)
    settings = get_settings()
    engine = _engine()
    if not schema_status(engine).is_current:
        _console().print(f"[red]Not loading:[/] {schema_status(engine).describe()}.")
        raise typer.Exit(code=2)
    sources = discover(paths)
    total = sum(count_items(s) for s in sources)
    if org is not None and not ODS_CODE.match(org):
        _console().print("[red]--org must be an ODS code (3-10 capitals and digits).[/]")
        raise typer.Exit(code=2)
    ctx = RequestContext(
        request_id=f"load-{secrets.token_hex(8)}",
        base_url=settings.base_url or "http://localhost/fhir",
        author_org=org,
        principal=OPERATOR,
    )
    with Progress(
        TextColumn("[bold]Loading"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console(),
        disable=quiet,
    ) as progress:
        task = progress.add_task("load", total=total)
        report = load_sources(
            engine,
            ctx,
            sources,
            progress=lambda n: progress.advance(task, n),
            max_depth=settings.max_json_depth,
            audited=settings.audit_enabled,
        )
    engine.dispose()
    table = Table(title=f"Loaded {report.total_loaded} resources from {report.files} file(s)")
    table.add_column("Resource type")
    table.add_column("Loaded", justify="right")
    for resource_type, count in summary_rows(report):
        table.add_row(resource_type, str(count))
    _console().print(table)
    if report.rejected:
        rejected = Table(title=f"Rejected: {len(report.rejected)}", title_style="red")
        rejected.add_column("Where")
        rejected.add_column("Status", justify="right")
        rejected.add_column("Why")
        for item in report.rejected[:50]:
            rejected.add_row(item.where, str(item.status), item.reason)
        _console().print(rejected)
        if len(report.rejected) > 50:
            _console().print(f"... and {len(report.rejected) - 50} more.")
        raise typer.Exit(code=1)


@app.command()
def review(
    by: Annotated[
        str,
        typer.Option(
            help="Dimensions: rule, code, group, repeat_org, original_org, "
            "service, month, source (comma-separated)."
        ),
    ] = "rule",
    trend: Annotated[
        str | None, typer.Option(help="Show the monthly XmR chart for this rule.")
    ] = None,
    csv_out: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False,
) -> None:
    """Duplicated actions for improvement review: counts, rates per 1,000 and trends."""
    import orjson

    from register.db import read_transaction
    from register.review.keys import review_key
    from register.review.report import load_review, to_csv

    settings = get_settings()
    engine = _engine()
    with read_transaction(engine) as conn:
        data = load_review(conn, review_key(settings.data_dir))
    engine.dispose()
    if trend:
        typer.echo(orjson.dumps(data.trend(rule=trend), option=orjson.OPT_INDENT_2).decode())
        return
    rows = data.counts([d.strip() for d in by.split(",") if d.strip()])
    if csv_out:
        typer.echo(to_csv(rows), nl=False)
        return
    if not rows:
        _console().print("No duplicated actions recorded.")
        return
    table = Table(title="Duplicated actions (counts under 5 shown as <5)")
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    _console().print(table)


@app.command()
def assets(
    with_test: Annotated[
        bool, typer.Option("--with-test/--no-test", help="Also axe-core (browser tests).")
    ] = True,
) -> None:
    """Fetch the pages' front-end packages from the npm registry (pinned, sha512-checked)."""
    from register.web.assets import AssetError, fetch

    folder = get_settings().web_assets_dir
    try:
        done = fetch(folder, include_test=with_test)
    except AssetError as exc:
        _console().print(f"[red]Front-end packages not installed[/]: {exc}")
        raise typer.Exit(code=1) from None
    _console().print(
        f"Front-end packages in {folder}: "
        + (", ".join(done) + " installed" if done else "up to date")
    )


audit_app = typer.Typer(help="The audit log: verify its hash chain.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit log's hash chain; name every edited, missing, inserted or moved event."""
    from register.audit.chain import verify
    from register.db import read_transaction

    engine = _engine()
    with read_transaction(engine) as conn:
        report = verify(conn)
    engine.dispose()
    if report.intact:
        _console().print(f"[green]Audit log intact[/]: {report.checked} events verified.")
        return
    _console().print(f"[red]Audit log tampered with[/] ({report.checked} events checked):")
    for problem in report.problems:
        _console().print(f"  - {problem}")
    raise typer.Exit(code=1)


def main() -> None:
    """Entry point of the ``careregister`` console script."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app(prog_name="careregister")


if __name__ == "__main__":
    sys.exit(main())
