"""``careregister`` commands for access: tokens, clients, keys, the break-glass review queue.

- ``careregister token --role clinician|system|patient|reviewer|admin|privacy-officer ...``:
  a token signed by the embedded issuer (for scripts and trying things out; whoever runs the
  command holds the signing keys anyway).
- ``careregister client add --org ODS --jwks FILE --scope ...`` / ``client list`` /
  ``client disable ID``; ``client keygen`` makes a key pair for a client, ``client assertion``
  signs a ``private_key_jwt`` assertion with it (what a backend system does for each token).
- ``careregister keys rotate`` / ``keys list``: the embedded issuer's signing keys.
- ``careregister break-glass list`` / ``break-glass review``: the review queue of emergency
  access.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from auth.client_assertion import client_jwks, sign_client_assertion
from auth.keys import generate_private_key
from auth.principal import TOKEN_ROLES, PurposeOfUse, Role
from register.settings import Settings, get_settings

client_app = typer.Typer(help="Registered backend (SMART Backend Services) clients.")
keys_app = typer.Typer(help="The embedded issuer's signing keys.")
glass_app = typer.Typer(help="Break-glass (emergency access) grants and their review.")

DEFAULT_SCOPES = {
    "clinician": "user/*.cruds",
    "system": "system/*.cruds",
    "patient": "patient/*.rs patient/Consent.cu patient/QuestionnaireResponse.c "
    "patient/Observation.c patient/Communication.c patient/DetectedIssue.c",
    "reviewer": "user/*.rs",
    "admin": "user/*.rs",
    "privacy_officer": "user/*.rs",
}


def _console() -> Console:
    return Console(stderr=True)


def default_base_url(settings: Settings) -> str:
    """The FHIR base URL tokens are issued for when none is configured: where ``serve`` binds."""
    return settings.base_url or f"http://{settings.host}:{settings.port}/fhir"


def _engine():  # type: ignore[no-untyped-def]
    from register.db import create_db_engine

    settings = get_settings()
    return create_db_engine(settings.resolved_database_url, pool_size=2)


def _fail(message: str) -> typer.Exit:
    _console().print(f"[red]{message}[/]")
    return typer.Exit(code=2)


# --- token -------------------------------------------------------------------------------------


def token(
    role: Annotated[
        str,
        typer.Option(help="clinician, system, patient, reviewer, admin or privacy-officer."),
    ],
    org: Annotated[str | None, typer.Option(help="ODS code of the organisation.")] = None,
    fhir_user: Annotated[
        str | None, typer.Option(help="Practitioner/x, PractitionerRole/y or Patient/z.")
    ] = None,
    scope: Annotated[str | None, typer.Option(help="SMART scopes (default: by role).")] = None,
    subject: Annotated[str | None, typer.Option(help="The token's sub.")] = None,
    client_id: Annotated[str, typer.Option(help="The token's client_id.")] = "careregister-cli",
    purpose: Annotated[
        str | None, typer.Option(help="Purpose of use: TREAT, ETREAT, BTG, ...")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Break-glass reason (BTG/ETREAT).")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="FHIR base URL the token is for (default: serve's).")
    ] = None,
) -> None:
    """Print an access token signed by the embedded issuer."""
    from register.access_service import AccessService

    try:
        chosen = Role(role.replace("-", "_"))  # privacy-officer or privacy_officer
    except ValueError:
        raise _fail(f"unknown role {role!r}") from None
    if chosen not in TOKEN_ROLES:
        raise _fail(f"a token cannot carry the role {role!r}")
    settings = get_settings()
    base = (base_url or default_base_url(settings)).rstrip("/")
    issuer = AccessService(settings).endpoints(base).issuer
    try:
        issued = issuer.issue(
            role=chosen,
            subject=subject or (fhir_user or f"cli-{chosen.value}"),
            client_id=client_id,
            scope=scope or DEFAULT_SCOPES.get(chosen.value, "user/*.rs"),
            fhir_user=fhir_user,
            organisation=org,
            purpose_of_use=PurposeOfUse(purpose) if purpose else None,
            break_glass_reason=reason,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    _console().print(
        f"{chosen.value} token for {base} (scope {issued.scope}), valid {issued.expires_in} s"
    )
    print(issued.access_token)


# --- clients -----------------------------------------------------------------------------------


@client_app.command("add")
def client_add(
    org: Annotated[str, typer.Option(help="ODS code of the client's organisation.")],
    scope: Annotated[str, typer.Option(help="system/ scopes it may be granted.")],
    jwks: Annotated[Path | None, typer.Option(help="File with its public JWK set.")] = None,
    jwks_url: Annotated[str | None, typer.Option(help="Or: its JWKS URL (https).")] = None,
    client_id: Annotated[str | None, typer.Option(help="Client id (default: generated).")] = None,
    name: Annotated[str | None, typer.Option(help="A name for people.")] = None,
) -> None:
    """Register a backend client of one organisation (prints its client id)."""
    from register.access_clients import RegistryError, add_client
    from register.db import write_transaction

    document = None
    if jwks is not None:
        try:
            document = json.loads(jwks.read_text())
        except (OSError, ValueError) as exc:
            raise _fail(f"cannot read a JWK set from {jwks}: {exc}") from None
    engine = _engine()
    try:
        with write_transaction(engine) as conn:
            record = add_client(
                conn,
                organisation=org,
                scope=scope,
                jwks=document,
                jwks_url=jwks_url,
                client_id=client_id,
                name=name,
            )
    except RegistryError as exc:
        raise _fail(str(exc)) from None
    finally:
        engine.dispose()
    _console().print(f"[green]Registered[/] {record.client_id} for {record.organisation}")
    print(record.client_id)


@client_app.command("list")
def client_list() -> None:
    """Show registered clients."""
    from register.access_clients import list_clients
    from register.db import read_transaction

    engine = _engine()
    with read_transaction(engine) as conn:
        records = list_clients(conn)
    engine.dispose()
    table = Table(title=f"{len(records)} client(s)")
    for column in ("client id", "organisation", "name", "scope", "keys", "enabled"):
        table.add_column(column)
    for r in records:
        keys = r.jwks_url or f"{len((r.jwks or {}).get('keys', []))} key(s)"
        table.add_row(
            r.client_id, r.organisation, r.name or "", r.scope, keys, "yes" if r.enabled else "no"
        )
    Console().print(table)


@client_app.command("disable")
def client_disable(
    client_id: Annotated[str, typer.Argument(help="The client to disable.")],
) -> None:
    """Stop a client getting new tokens (issued ones expire within their lifetime)."""
    from register.access_clients import disable_client
    from register.db import write_transaction

    engine = _engine()
    with write_transaction(engine) as conn:
        found = disable_client(conn, client_id)
    engine.dispose()
    if not found:
        raise _fail(f"no client {client_id!r}")
    _console().print(f"[green]Disabled[/] {client_id}")


@client_app.command("keygen")
def client_keygen(
    out: Annotated[Path, typer.Option(help="Folder for client-key.pem and client-jwks.json.")],
    alg: Annotated[str, typer.Option(help="ES384 (default) or RS384.")] = "ES384",
) -> None:
    """Make a key pair for a backend client: the private key (0600) and the JWKS to register."""
    from cryptography.hazmat.primitives import serialization

    out.mkdir(parents=True, exist_ok=True)
    key = generate_private_key(alg)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private = out / "client-key.pem"
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    (out / "client-jwks.json").write_text(json.dumps(client_jwks(pem), indent=2))
    _console().print(f"Wrote {private} (keep it secret) and {out / 'client-jwks.json'}")


@client_app.command("assertion")
def client_assertion(
    client_id: Annotated[str, typer.Option(help="The client's id.")],
    key: Annotated[Path, typer.Option(help="The client's private key (PEM).")],
    token_url: Annotated[
        str | None, typer.Option(help="The token endpoint (default: serve's /auth/token).")
    ] = None,
) -> None:
    """Print a signed client assertion (private_key_jwt), valid for five minutes, used once."""
    from register.access_service import server_root

    endpoint = token_url or server_root(default_base_url(get_settings())) + "/auth/token"
    print(
        sign_client_assertion(
            client_id=client_id, token_endpoint=endpoint, private_pem=key.read_bytes()
        )
    )


# --- keys --------------------------------------------------------------------------------------


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Retire the current signing key and start signing with a new one (the old one keeps
    verifying until the tokens it signed have expired)."""
    from register.access_service import AccessService

    key = AccessService(get_settings()).keys.rotate()
    _console().print(f"[green]New signing key[/] {key.kid} ({key.alg})")


@keys_app.command("list")
def keys_list() -> None:
    """Show the keys tokens are verified with (newest first)."""
    from register.access_service import AccessService

    store = AccessService(get_settings()).keys
    current = store.current()
    table = Table(title="signing keys")
    for column in ("kid", "alg", "created", "signs until", ""):
        table.add_column(column)
    for key in store.verification_keys():
        table.add_row(
            key.kid,
            key.alg,
            datetime.fromtimestamp(key.created_at, UTC).isoformat(timespec="seconds"),
            datetime.fromtimestamp(key.not_after, UTC).isoformat(timespec="seconds"),
            "current" if key.kid == current.kid else "retired",
        )
    Console().print(table)


# --- break-glass review ------------------------------------------------------------------------


@glass_app.command("list")
def glass_list(
    all_: Annotated[bool, typer.Option("--all", help="Include reviewed grants.")] = False,
) -> None:
    """Show break-glass grants waiting for review (oldest first)."""
    from register.access_breakglass import list_grants
    from register.db import read_transaction

    engine = _engine()
    with read_transaction(engine) as conn:
        grants = list_grants(conn, unreviewed_only=not all_)
    engine.dispose()
    table = Table(title=f"{len(grants)} break-glass grant(s)")
    for column in ("id", "when", "who", "organisation", "patient", "reason", "review"):
        table.add_column(column)
    for g in grants:
        table.add_row(
            str(g.pk),
            g.started_at.isoformat(timespec="minutes"),
            g.practitioner or g.subject,
            g.organisation or "",
            g.patient_id,
            g.reason,
            f"{g.review_outcome} by {g.reviewed_by}" if g.reviewed_at else "waiting",
        )
    Console().print(table)


@glass_app.command("review")
def glass_review(
    grant: Annotated[int, typer.Argument(help="The grant's id.")],
    outcome: Annotated[str, typer.Option(help="justified, not-justified or referred.")],
    note: Annotated[str, typer.Option(help="What the reviewer found.")] = "",
    reviewer: Annotated[
        str | None, typer.Option(help="Who reviewed it (default: your login name).")
    ] = None,
) -> None:
    """Record the review of a break-glass grant."""
    from register.access_breakglass import review_grant
    from register.db import write_transaction

    who = reviewer or os.environ.get("USER") or "privacy officer"
    engine = _engine()
    try:
        with write_transaction(engine) as conn:
            found = review_grant(conn, grant, outcome=outcome, reviewer=who, note=note)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    finally:
        engine.dispose()
    if not found:
        raise _fail(f"no break-glass grant {grant}")
    _console().print(f"[green]Reviewed[/] grant {grant}: {outcome}")


# --- demo --------------------------------------------------------------------------------------


def demo() -> None:
    """Load a small demo register (three organisations, their clinicians, four patients with
    type 2 diabetes, demo users and a backend client) and print how to try each role. Safe to
    run again."""
    from register.demo import _data, instructions, load_demo
    from register.migrate import schema_status

    settings = get_settings()
    engine = _engine()
    try:
        status = schema_status(engine)
        if not status.is_current:
            raise _fail(f"Not loading the demo: {status.describe()}.")
        base = default_base_url(settings)
        report = load_demo(engine, settings, base)
    finally:
        engine.dispose()
    _console().print(
        f"[green]Demo ready:[/] {report.written} resource(s) written, {report.unchanged} "
        f"already there; {report.users} demo users; backend client {report.client_id}."
    )
    print(instructions(report, base, _data("demo.json")["password"]))


def install(app: typer.Typer) -> None:
    """Add the access commands to the ``careregister`` command."""
    app.command()(token)
    app.command()(demo)
    app.add_typer(client_app, name="client")
    app.add_typer(keys_app, name="keys")
    app.add_typer(glass_app, name="break-glass")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(0)
