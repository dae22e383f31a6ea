"""The ``web_session`` table (migration ``0010_web``): server-side sessions of the pages.

The browser holds only a random session key in an HttpOnly cookie; the row, keyed by the key's
SHA-256 (so a copy of the table cannot be replayed as cookies), holds who signed in, the CSRF
token bound to the session, any break-glass declared in it, and when it expires.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, MetaData, String, Table, Text

from register.db_types import UTCDateTime

metadata = MetaData()

web_session_table = Table(
    "web_session",
    metadata,
    Column("key_hash", String(64), primary_key=True),
    Column("username", String(128), nullable=False),
    Column("role", String(32), nullable=False),
    Column("fhir_user", String(128), nullable=True),
    Column("organisation", String(16), nullable=True),
    Column("display", String(255), nullable=True),
    Column("scope", Text, nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("break_glass", Text, nullable=False),  # JSON: {patient_id: reason}
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_web_session_expires", "expires_at"),
)
