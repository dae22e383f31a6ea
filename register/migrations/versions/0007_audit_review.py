"""Audit entities (for AuditEvent?entity=) and the privacy officer's review queue.

Revision ID: 0007_audit_review
Revises: 0006_consent
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import register.db_types

revision = "0007_audit_review"
down_revision = "0006_consent"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_entity",
        sa.Column("seq", SEQ, autoincrement=False, nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("seq", "reference"),
    )
    op.create_index("ix_audit_entity", "audit_entity", ["reference", "seq"])
    op.create_table(
        "audit_review",
        sa.Column("seq", SEQ, autoincrement=False, nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("recorded", register.db_types.UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reviewer", sa.String(length=200), nullable=True),
        sa.Column("reviewed_at", register.db_types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_audit_review_status", "audit_review", ["status", "seq"])


def downgrade() -> None:
    op.drop_index("ix_audit_review_status", table_name="audit_review")
    op.drop_table("audit_review")
    op.drop_index("ix_audit_entity", table_name="audit_entity")
    op.drop_table("audit_entity")
