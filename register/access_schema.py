"""The access tables (migration ``0003_access``): what the policy needs to know beyond resources.

- ``access_identifier``: business identifiers of resources the access rules compare by value:
  an Organization's ODS code (tokens name organisations by ODS code, resources by reference) and
  a Patient's NHS number (a hospital opens a record by NHS number). Kept in step on every write.
- ``care_relationship``: who is caring for whom, derived from Encounter, EpisodeOfCare and
  CareTeam resources on every write (one row per organisation or practitioner taking part).
- ``break_glass_grant``: declared emergency access (who, which patient, why, until when) and its
  review (the queue privacy officers work through).
- ``auth_client``, ``auth_jti``: registered SMART Backend Services clients and the client
  assertion ids already used (replay protection).
- ``auth_user``: people who may sign in at the embedded login (the demo users).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from register.db_types import UTCDateTime

PK = BigInteger().with_variant(Integer(), "sqlite")
metadata = MetaData()

identifier_table = Table(
    "access_identifier",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("system", String(255), nullable=False),
    Column("value", String(255), nullable=False),
    UniqueConstraint(
        "resource_type", "resource_id", "system", "value", name="uq_access_identifier"
    ),
    Index("ix_access_identifier_value", "system", "value"),
)

relationship_table = Table(
    "care_relationship",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("source_type", String(64), nullable=False),
    Column("source_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # encounter | episode | careteam
    Column("patient_id", String(64), nullable=False),
    Column("org_ref", String(128), nullable=True),  # Organization/{id}
    Column("org_ods", String(16), nullable=True),  # its ODS code, once known
    Column("practitioner_ref", String(128), nullable=True),
    Column("active", Boolean, nullable=False),
    Column("ends_at", UTCDateTime, nullable=True),  # null: open-ended
    Index("ix_care_relationship_source", "source_type", "source_id"),
    Index("ix_care_relationship_patient", "patient_id"),
    Index("ix_care_relationship_org", "org_ods", "patient_id"),
    Index("ix_care_relationship_practitioner", "practitioner_ref", "patient_id"),
    Index("ix_care_relationship_org_ref", "org_ref"),
)

break_glass_table = Table(
    "break_glass_grant",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("holder", String(300), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("organisation", String(16), nullable=True),
    Column("practitioner", String(128), nullable=True),
    Column("client_id", String(255), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("request_id", String(64), nullable=True),
    Column("reviewed_at", UTCDateTime, nullable=True),
    Column("reviewed_by", String(255), nullable=True),
    Column("review_outcome", String(32), nullable=True),
    Column("review_note", Text, nullable=True),
    Index("ix_break_glass_holder", "holder", "patient_id", "expires_at"),
    Index("ix_break_glass_patient", "patient_id"),
    Index("ix_break_glass_unreviewed", "reviewed_at", "started_at"),
)

client_table = Table(
    "auth_client",
    metadata,
    Column("client_id", String(255), primary_key=True),
    Column("organisation", String(16), nullable=False),
    Column("name", String(255), nullable=True),
    Column("scope", Text, nullable=False),
    Column("jwks", Text, nullable=True),
    Column("jwks_url", String(1000), nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime, nullable=True),
)

jti_table = Table(
    "auth_jti",
    metadata,
    Column("client_id", String(255), nullable=False),
    Column("jti", String(255), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("client_id", "jti", name="pk_auth_jti"),
    Index("ix_auth_jti_expires", "expires_at"),
)

user_table = Table(
    "auth_user",
    metadata,
    Column("username", String(128), primary_key=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(32), nullable=False),
    Column("fhir_user", String(128), nullable=True),
    Column("organisation", String(16), nullable=True),
    Column("scope", Text, nullable=False),
    Column("display", String(255), nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
