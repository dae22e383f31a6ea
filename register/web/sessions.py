"""Server-side sessions of the pages: a random key in an HttpOnly cookie, the rest in the database.

- The cookie (``careregister_session``) holds 32 random bytes; the table stores their SHA-256,
  so reading the table gives nobody a usable cookie.
- Flags: ``HttpOnly``, ``SameSite=Lax`` (the session must survive the top-level redirect back
  from an external sign-in), ``Path=/``, and ``Secure`` whenever the register is reached over
  https (the configured base URL, or the request's own scheme).
- A session expires after ``REGISTER_WEB_SESSION_MINUTES`` without use; each use moves the
  expiry on (written at most once a minute).
- The session carries a CSRF token of its own (:mod:`register.web.csrf`) and the break-glass
  reasons declared in it, per patient, so the pages mark that access for the rest of the session.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update
from starlette.requests import Request
from starlette.responses import Response

from register.api.deps import db_of, settings_of
from register.web.session_schema import web_session_table as S

COOKIE = "careregister_session"


@dataclass(frozen=True)
class Identity:
    """Who signed in: what their access tokens will say."""

    username: str
    role: str
    scope: str
    fhir_user: str | None = None
    organisation: str | None = None
    display: str | None = None


@dataclass
class WebSession:
    """A signed-in session as the pages use it."""

    key_hash: str
    identity: Identity
    csrf: str
    expires_at: datetime
    break_glass: dict[str, str] = field(default_factory=dict)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("ascii", "replace")).hexdigest()


def is_https(request: Request) -> bool:
    """Whether pages are served over https (then cookies are ``Secure``)."""
    configured = settings_of(request).base_url
    if configured:
        return configured.lower().startswith("https://")
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """Set a cookie with the flags every cookie of the pages carries."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )


def start(request: Request, response: Response, identity: Identity) -> WebSession:
    """Open a session for ``identity`` and set its cookie on ``response``."""
    key = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    minutes = settings_of(request).web_session_minutes
    session = WebSession(
        key_hash=_hash(key),
        identity=identity,
        csrf=secrets.token_urlsafe(32),
        expires_at=now + timedelta(minutes=minutes),
    )
    with db_of(request).write() as conn:
        conn.execute(delete(S).where(S.c.expires_at < now))  # tidy as we go
        conn.execute(
            insert(S).values(
                key_hash=session.key_hash,
                username=identity.username,
                role=identity.role,
                fhir_user=identity.fhir_user,
                organisation=identity.organisation,
                display=identity.display,
                scope=identity.scope,
                csrf=session.csrf,
                break_glass="{}",
                created_at=now,
                expires_at=session.expires_at,
            )
        )
    set_cookie(response, request, COOKIE, key, minutes * 60)
    return session


def load(request: Request) -> WebSession | None:
    """The unexpired session the request's cookie names, or None (expiry moved on)."""
    key = request.cookies.get(COOKIE)
    if not key or len(key) > 128:
        return None
    key_hash = _hash(key)
    with db_of(request).read() as conn:
        row = conn.execute(select(S).where(S.c.key_hash == key_hash)).first()
    now = datetime.now(UTC)
    if row is None or row.expires_at <= now:
        return None
    session = WebSession(
        key_hash=key_hash,
        identity=Identity(
            username=row.username,
            role=row.role,
            scope=row.scope,
            fhir_user=row.fhir_user,
            organisation=row.organisation,
            display=row.display,
        ),
        csrf=row.csrf,
        expires_at=row.expires_at,
        break_glass=json.loads(row.break_glass or "{}"),
    )
    minutes = settings_of(request).web_session_minutes
    renewed = now + timedelta(minutes=minutes)
    if renewed - session.expires_at > timedelta(minutes=1):
        with db_of(request).write() as conn:
            conn.execute(update(S).where(S.c.key_hash == key_hash).values(expires_at=renewed))
        session.expires_at = renewed
    return session


def record_break_glass(request: Request, session: WebSession, patient_id: str, reason: str) -> None:
    """Remember in the session that break-glass was declared for ``patient_id``."""
    session.break_glass[patient_id] = reason
    with db_of(request).write() as conn:
        conn.execute(
            update(S)
            .where(S.c.key_hash == session.key_hash)
            .values(break_glass=json.dumps(session.break_glass))
        )


def end(request: Request, response: Response | None, session: WebSession | None) -> None:
    """Delete the session row, and the cookie when ``response`` is given."""
    if session is not None:
        with db_of(request).write() as conn:
            conn.execute(delete(S).where(S.c.key_hash == session.key_hash))
    if response is not None:
        response.delete_cookie(COOKIE, path="/", secure=is_https(request), httponly=True)
