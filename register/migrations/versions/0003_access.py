"""Access: identifiers the policy compares, care relationships, break-glass grants and their
review, registered clients, used client-assertion ids, embedded-login users.

Independent of the search index tables (it touches only its own tables). The tables the code
queries are in ``register/access_schema.py``; this file is the frozen history of how they were
made.

Revision ID: 0003_access
Revises: 0002_search_index
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from register.db_types import UTCDateTime

revision = "0003_access"
down_revision = "0002_search_index"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "access_identifier",
        sa.Column("pk", PK, primary_key=True),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("system", sa.String(255), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.UniqueConstraint(
            "resource_type", "resource_id", "system", "value", name="uq_access_identifier"
        ),
    )
    op.create_index("ix_access_identifier_value", "access_identifier", ["system", "value"])

    op.create_table(
        "care_relationship",
        sa.Column("pk", PK, primary_key=True),
        sa.Column("source_type", sa.String(64), nullable=False),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("org_ref", sa.String(128), nullable=True),
        sa.Column("org_ods", sa.String(16), nullable=True),
        sa.Column("practitioner_ref", sa.String(128), nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("ends_at", UTCDateTime, nullable=True),
    )
    op.create_index(
        "ix_care_relationship_source", "care_relationship", ["source_type", "source_id"]
    )
    op.create_index("ix_care_relationship_patient", "care_relationship", ["patient_id"])
    op.create_index("ix_care_relationship_org", "care_relationship", ["org_ods", "patient_id"])
    op.create_index(
        "ix_care_relationship_practitioner",
        "care_relationship",
        ["practitioner_ref", "patient_id"],
    )
    op.create_index("ix_care_relationship_org_ref", "care_relationship", ["org_ref"])

    op.create_table(
        "break_glass_grant",
        sa.Column("pk", PK, primary_key=True),
        sa.Column("holder", sa.String(300), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("organisation", sa.String(16), nullable=True),
        sa.Column("practitioner", sa.String(128), nullable=True),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("reviewed_at", UTCDateTime, nullable=True),
        sa.Column("reviewed_by", sa.String(255), nullable=True),
        sa.Column("review_outcome", sa.String(32), nullable=True),
        sa.Column("review_note", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_break_glass_holder", "break_glass_grant", ["holder", "patient_id", "expires_at"]
    )
    op.create_index("ix_break_glass_patient", "break_glass_grant", ["patient_id"])
    op.create_index("ix_break_glass_unreviewed", "break_glass_grant", ["reviewed_at", "started_at"])

    op.create_table(
        "auth_client",
        sa.Column("client_id", sa.String(255), primary_key=True),
        sa.Column("organisation", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("jwks", sa.Text, nullable=True),
        sa.Column("jwks_url", sa.String(1000), nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("disabled_at", UTCDateTime, nullable=True),
    )

    op.create_table(
        "auth_jti",
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("jti", sa.String(255), nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("client_id", "jti", name="pk_auth_jti"),
    )
    op.create_index("ix_auth_jti_expires", "auth_jti", ["expires_at"])

    op.create_table(
        "auth_user",
        sa.Column("username", sa.String(128), primary_key=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("fhir_user", sa.String(128), nullable=True),
        sa.Column("organisation", sa.String(16), nullable=True),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("display", sa.String(255), nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "auth_user",
        "auth_jti",
        "auth_client",
        "break_glass_grant",
        "care_relationship",
        "access_identifier",
    ):
        op.drop_table(table)
