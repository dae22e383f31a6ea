"""Audit log: hash-chained events, the patients each touched, and the chain head.

Revision ID: 0005_audit
Revises: 0004_duplicates
Create Date: 2026-11-23 12:37:23.284014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import register.db_types

revision = "0005_audit"
down_revision = "0004_duplicates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("recorded", register.db_types.UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=4), nullable=False),
        sa.Column("agent_role", sa.String(length=32), nullable=True),
        sa.Column("agent_who", sa.String(length=200), nullable=True),
        sa.Column("agent_org", sa.String(length=64), nullable=True),
        sa.Column("client_id", sa.String(length=200), nullable=True),
        sa.Column("purpose", sa.String(length=16), nullable=True),
        sa.Column("break_glass", sa.Boolean(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_audit_org", ["agent_org", "seq"], unique=False)
        batch_op.create_index("ix_audit_recorded", ["recorded"], unique=False)

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "audit_patient",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", "patient_id"),
    )
    with op.batch_alter_table("audit_patient", schema=None) as batch_op:
        batch_op.create_index("ix_audit_patient", ["patient_id", "seq"], unique=False)

    op.bulk_insert(
        sa.table(
            "audit_head",
            sa.column("id", sa.Integer),
            sa.column("seq", sa.BigInteger),
            sa.column("hash", sa.String),
        ),
        [{"id": 1, "seq": 0, "hash": "0" * 64}],
    )


def downgrade() -> None:
    with op.batch_alter_table("audit_patient", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_patient")

    op.drop_table("audit_patient")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_recorded")
        batch_op.drop_index("ix_audit_org")

    op.drop_table("audit_event")
