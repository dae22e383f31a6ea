"""Consent: the flat provision rules of each patient's sharing Consent in force.

The table the code queries is in ``register/consent_schema.py``; this file is the frozen history
of how it was made.

Revision ID: 0006_consent
Revises: 0005_audit
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from register.db_types import UTCDateTime

revision = "0006_consent"
down_revision = "0005_audit"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "consent_provision",
        sa.Column("pk", PK, primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("consent_id", sa.String(64), nullable=False),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("depth", sa.Integer, nullable=False),
        sa.Column("effect", sa.String(8), nullable=False),
        sa.Column("actor", sa.String(16), nullable=True),
        sa.Column("purpose", sa.String(16), nullable=True),
        sa.Column("resource_type", sa.String(64), nullable=True),
        sa.Column("code_system", sa.String(255), nullable=True),
        sa.Column("code", sa.String(255), nullable=True),
        sa.Column("label_system", sa.String(255), nullable=True),
        sa.Column("label_code", sa.String(255), nullable=True),
        sa.Column("data_start_us", sa.BigInteger, nullable=True),
        sa.Column("data_end_us", sa.BigInteger, nullable=True),
        sa.Column("data_start", UTCDateTime, nullable=True),
        sa.Column("data_end", UTCDateTime, nullable=True),
        sa.Column("valid_from", UTCDateTime, nullable=True),
        sa.Column("valid_to", UTCDateTime, nullable=True),
    )
    op.create_index(
        "ix_consent_provision_patient", "consent_provision", ["patient_id", "effect", "depth"]
    )
    op.create_index("ix_consent_provision_consent", "consent_provision", ["consent_id"])


def downgrade() -> None:
    op.drop_index("ix_consent_provision_consent", table_name="consent_provision")
    op.drop_index("ix_consent_provision_patient", table_name="consent_provision")
    op.drop_table("consent_provision")
