"""Registered clients, used client-assertion ids and embedded-login users, in the database.

- Clients (``auth_client``): SMART Backend Services clients, each of one organisation (ODS
  code), with the scopes it may be granted and its public keys (a JWKS, or a JWKS URL). Managed
  with ``careregister client add|list|disable``.
- Assertion ids (``auth_jti``): :class:`DbJtiStore` remembers each ``(client_id, jti)`` with one
  insert on the primary key, so two workers can never both accept the same assertion.
- Users (``auth_user``): people who may sign in at the embedded login (``grant_type=password``;
  the demo's clinicians, patients, reviewer and administrator). Passwords are kept as scrypt
  hashes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from auth.client_assertion import ClientKeys
from auth.jwks import JwkSet, RemoteJwks
from auth.principal import ODS_CODE, TOKEN_ROLES, Role, claims_for
from auth.scopes import ScopeContext, parse_scopes
from register.access_schema import client_table, jti_table, user_table
from register.audit.events import client_event
from register.audit.requests import record_now
from register.db import Database

K = client_table
J = jti_table
U = user_table


class RegistryError(ValueError):
    """A client or user that cannot be registered as asked (the message says why)."""


# --- clients -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientRecord:
    """One registered backend client."""

    client_id: str
    organisation: str
    name: str | None
    scope: str
    jwks: dict[str, Any] | None
    jwks_url: str | None
    enabled: bool
    created_at: datetime


def _client(row: Any) -> ClientRecord:
    return ClientRecord(
        client_id=row.client_id,
        organisation=row.organisation,
        name=row.name,
        scope=row.scope,
        jwks=json.loads(row.jwks) if row.jwks else None,
        jwks_url=row.jwks_url,
        enabled=bool(row.enabled),
        created_at=row.created_at,
    )


def check_client_scope(scope: str) -> str:
    """The scope string a client may be registered for: ``system/`` scopes only, all valid."""
    parsed = parse_scopes(scope)
    if parsed.invalid:
        raise RegistryError(f"malformed scopes: {' '.join(parsed.invalid)}")
    if not parsed.resource or any(s.context != ScopeContext.SYSTEM for s in parsed.resource):
        raise RegistryError("a backend client is registered for system/ scopes only")
    return str(parsed)


def check_jwks(document: Any) -> dict[str, Any]:
    """A JWKS a client may register: at least one RSA or EC public key with a kid, no private
    members."""
    try:
        keys = JwkSet.from_jwks(document)
    except ValueError as exc:
        raise RegistryError(str(exc)) from None
    if not keys.kids:
        raise RegistryError("the JWKS holds no RSA or EC key with a kid")
    for key in document["keys"]:
        if isinstance(key, dict) and any(m in key for m in ("d", "p", "q", "dp", "dq", "qi")):
            raise RegistryError("the JWKS holds a private key; register the public keys only")
    return dict(document)


def add_client(
    conn: Connection,
    *,
    organisation: str,
    scope: str,
    jwks: dict[str, Any] | None = None,
    jwks_url: str | None = None,
    client_id: str | None = None,
    name: str | None = None,
    actor: str = "command line",
) -> ClientRecord:
    """Register a client (or replace the registration of ``client_id``); audited in the same
    transaction (``actor``: who did it)."""
    if not ODS_CODE.match(organisation):
        raise RegistryError("the organisation must be an ODS code (3-10 capitals and digits)")
    if (jwks is None) == (jwks_url is None):
        raise RegistryError("give the client's keys as a JWKS or a JWKS URL (one of the two)")
    if jwks is not None:
        jwks = check_jwks(jwks)
    if jwks_url is not None:
        parts = urlsplit(jwks_url)
        if parts.scheme != "https" and parts.hostname not in ("localhost", "127.0.0.1"):
            raise RegistryError("a JWKS URL must use https")
    client_id = client_id or f"{organisation.lower()}-{secrets.token_hex(6)}"
    values = {
        "organisation": organisation,
        "name": name,
        "scope": check_client_scope(scope),
        "jwks": json.dumps(jwks) if jwks is not None else None,
        "jwks_url": jwks_url,
        "enabled": True,
        "created_at": datetime.now(UTC),
        "disabled_at": None,
    }
    conn.execute(delete(K).where(K.c.client_id == client_id))
    conn.execute(insert(K).values(client_id=client_id, **values))
    record_now(
        conn,
        client_event(
            action="register", client_id=client_id, organisation=organisation, actor=actor
        ),
    )
    found = get_client(conn, client_id)
    assert found is not None
    return found


def get_client(conn: Connection, client_id: str) -> ClientRecord | None:
    """A client's registration, enabled or not."""
    row = conn.execute(select(K).where(K.c.client_id == client_id)).first()
    return _client(row) if row is not None else None


def list_clients(conn: Connection) -> list[ClientRecord]:
    """Every registered client, by id."""
    return [_client(row) for row in conn.execute(select(K).order_by(K.c.client_id))]


def disable_client(conn: Connection, client_id: str, *, actor: str = "command line") -> bool:
    """Stop a client getting tokens (tokens already issued run out within their lifetime);
    audited in the same transaction."""
    result = conn.execute(
        update(K)
        .where(K.c.client_id == client_id)
        .values(enabled=False, disabled_at=datetime.now(UTC))
    )
    if result.rowcount:
        record_now(
            conn,
            client_event(action="disable", client_id=client_id, organisation=None, actor=actor),
        )
    return bool(result.rowcount)


class DbClients:
    """``ClientKeyResolver`` over ``auth_client`` (enabled clients only)."""

    def __init__(self, conn: Connection, remote: dict[str, RemoteJwks]) -> None:
        self._conn = conn
        self._remote = remote

    def record(self, client_id: str) -> ClientRecord | None:
        """The enabled client's registration, or None."""
        found = get_client(self._conn, client_id)
        return found if found is not None and found.enabled else None

    def client_keys(self, client_id: str) -> ClientKeys | None:
        """The client's keys, or None if it is unknown or disabled."""
        found = self.record(client_id)
        if found is None:
            return None
        if found.jwks is not None:
            return ClientKeys(client_id, JwkSet.from_jwks(found.jwks))
        assert found.jwks_url is not None
        remote = self._remote.get(found.jwks_url)
        if remote is None:
            remote = RemoteJwks(found.jwks_url)
            self._remote[found.jwks_url] = remote
        return ClientKeys(client_id, remote, jwks_url=found.jwks_url)


class DbJtiStore:
    """``JtiStore`` over ``auth_jti``: one atomic insert per assertion, in its own short write
    transaction (so nothing else, such as fetching a client's JWKS, runs under the write lock)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def remember(self, client_id: str, jti: str, expires_at: float) -> bool:
        """Record the pair until ``expires_at``; False if it was recorded before."""
        now = datetime.now(UTC)
        try:
            with self._db.write() as conn:
                conn.execute(delete(J).where(J.c.expires_at < now))
                conn.execute(
                    insert(J).values(
                        client_id=client_id,
                        jti=jti,
                        expires_at=datetime.fromtimestamp(expires_at, UTC),
                    )
                )
        except IntegrityError:
            return False
        return True


# --- users -------------------------------------------------------------------------------------

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    """An scrypt hash of ``password`` with a fresh salt, as ``scrypt$n$r$p$salt$hash``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    encode = base64.b64encode
    return "scrypt${n}${r}${p}$".format(**_SCRYPT) + (
        f"{encode(salt).decode()}${encode(digest).decode()}"
    )


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a hash from :func:`hash_password` (constant time)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            dklen=len(expected),
            n=int(n),
            r=int(r),
            p=int(p),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


_DUMMY_HASH = hash_password(secrets.token_hex(8))


@dataclass(frozen=True)
class UserRecord:
    """A person who may sign in at the embedded login."""

    username: str
    role: Role
    fhir_user: str | None
    organisation: str | None
    scope: str
    display: str | None
    enabled: bool


def _user(row: Any) -> UserRecord:
    return UserRecord(
        username=row.username,
        role=Role(row.role),
        fhir_user=row.fhir_user,
        organisation=row.organisation,
        scope=row.scope,
        display=row.display,
        enabled=bool(row.enabled),
    )


def put_user(
    conn: Connection,
    *,
    username: str,
    password: str,
    role: str,
    scope: str,
    fhir_user: str | None = None,
    organisation: str | None = None,
    display: str | None = None,
) -> UserRecord:
    """Add or replace a user; refuses one whose tokens the register would reject."""
    chosen = Role(role)
    if chosen not in TOKEN_ROLES or chosen is Role.SYSTEM:
        raise RegistryError("users are clinicians, patients, reviewers, admins or privacy officers")
    parsed = parse_scopes(scope)
    if parsed.invalid:
        raise RegistryError(f"malformed scopes: {' '.join(parsed.invalid)}")
    try:
        claims_for(
            role=chosen,
            subject=username,
            client_id="careregister-login",
            scope=scope,
            fhir_user=fhir_user,
            organisation=organisation,
        )
    except ValueError as exc:
        raise RegistryError(str(exc)) from None
    conn.execute(delete(U).where(U.c.username == username))
    conn.execute(
        insert(U).values(
            username=username,
            password_hash=hash_password(password),
            role=chosen.value,
            fhir_user=fhir_user,
            organisation=organisation,
            scope=str(parsed),
            display=display,
            enabled=True,
            created_at=datetime.now(UTC),
        )
    )
    found = get_user(conn, username)
    assert found is not None
    return found


def get_user(conn: Connection, username: str) -> UserRecord | None:
    """A user, enabled or not."""
    row = conn.execute(select(U).where(U.c.username == username)).first()
    return _user(row) if row is not None else None


def authenticate_user(conn: Connection, username: str, password: str) -> UserRecord | None:
    """The enabled user with this password, or None (same work whether or not the user
    exists, so timing does not tell which usernames are real)."""
    row = conn.execute(select(U).where(U.c.username == username)).first()
    if row is None:
        verify_password(password, _DUMMY_HASH)
        return None
    if not verify_password(password, row.password_hash) or not row.enabled:
        return None
    return _user(row)
