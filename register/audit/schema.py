"""The audit tables added by migration ``0007_audit_review`` (the chain itself is in
``register/schema.py``, migration ``0005_audit``).

- ``audit_entity``: the resources each event names (``Type/id``), so ``AuditEvent?entity=`` is an
  index lookup. Derived from the event's content when it is appended; the chain covers the
  content, so a changed row here is caught by comparing it with the verified content.
- ``audit_review``: the privacy officer's review queue: one row per event that needs a look
  (break-glass, a write or access without a care relationship), with the reviewer's verdict.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text

from register.db_types import UTCDateTime

SEQ = BigInteger().with_variant(Integer(), "sqlite")
metadata = MetaData()

audit_entity_table = Table(
    "audit_entity",
    metadata,
    Column("seq", SEQ, primary_key=True, autoincrement=False),
    Column("reference", String(200), primary_key=True),
    Index("ix_audit_entity", "reference", "seq"),
)

audit_review_table = Table(
    "audit_review",
    metadata,
    Column("seq", SEQ, primary_key=True, autoincrement=False),
    Column("category", String(32), nullable=False),  # break-glass | no-relationship
    Column("patient_id", String(64), nullable=True),
    Column("reason", Text, nullable=True),
    Column("recorded", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),  # open | appropriate | inappropriate
    Column("note", Text, nullable=True),
    Column("reviewer", String(200), nullable=True),
    Column("reviewed_at", UTCDateTime, nullable=True),
    Index("ix_audit_review_status", "status", "seq"),
)
