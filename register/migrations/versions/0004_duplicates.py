"""Duplicate detection: the care-action log, findings, patient identities, improvement actions.

Revision ID: 0004_duplicates
Revises: 0003_access
Create Date: 2026-11-23 12:30:22.819474
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import register.db_types

revision = "0004_duplicates"
down_revision = "0003_access"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "duplicate_finding",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("issue_id", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("group_key", sa.String(length=200), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("repeat_ref", sa.String(length=200), nullable=True),
        sa.Column("original_ref", sa.String(length=200), nullable=True),
        sa.Column("repeat_org", sa.String(length=200), nullable=True),
        sa.Column("original_org", sa.String(length=200), nullable=True),
        sa.Column("service", sa.String(length=200), nullable=False),
        sa.Column("occurred_at", register.db_types.UTCDateTime(), nullable=False),
        sa.Column("detected_at", register.db_types.UTCDateTime(), nullable=False),
        sa.Column("gap_days", sa.Float(), nullable=True),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("mitigation", sa.Text(), nullable=True),
        sa.Column("patient_reported", sa.Boolean(), nullable=False),
        sa.Column("event_key", sa.String(length=250), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("issue_id"),
    )
    with op.batch_alter_table("duplicate_finding", schema=None) as batch_op:
        batch_op.create_index(
            "ix_finding_event", ["patient_id", "rule", "group_key", "event_key"], unique=False
        )
        batch_op.create_index("ix_finding_rule_time", ["rule", "occurred_at"], unique=False)

    op.create_table(
        "improvement_action",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=True),
        sa.Column("repeat_org", sa.String(length=200), nullable=True),
        sa.Column("original_org", sa.String(length=200), nullable=True),
        sa.Column("action_date", register.db_types.UTCDateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=True),
        sa.Column("recorded_at", register.db_types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_table(
        "care_action",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "resource_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("group_key", sa.String(length=200), nullable=False),
        sa.Column("occurred_at", register.db_types.UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("codes", sa.Text(), nullable=False),
        sa.Column("ingredients", sa.Text(), nullable=False),
        sa.Column("classes", sa.Text(), nullable=False),
        sa.Column("org", sa.String(length=200), nullable=True),
        sa.Column("practitioner", sa.String(length=200), nullable=True),
        sa.Column("encounter", sa.String(length=200), nullable=True),
        sa.Column("linked", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["resource_pk"], ["resource.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("pk"),
    )
    with op.batch_alter_table("care_action", schema=None) as batch_op:
        batch_op.create_index("ix_care_action_kind_time", ["kind", "occurred_at"], unique=False)
        batch_op.create_index(
            "ix_care_action_patient_group", ["patient_id", "group_key", "kind"], unique=False
        )
        batch_op.create_index("ix_care_action_resource", ["resource_pk"], unique=False)

    op.create_table(
        "patient_identity",
        sa.Column(
            "resource_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("nhs_number", sa.String(length=16), nullable=True),
        sa.Column("family", sa.String(length=200), nullable=False),
        sa.Column("given", sa.String(length=200), nullable=False),
        sa.Column("birth_date", sa.String(length=10), nullable=True),
        sa.Column("gender", sa.String(length=16), nullable=True),
        sa.Column("postcode", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["resource_pk"], ["resource.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("resource_pk"),
    )
    with op.batch_alter_table("patient_identity", schema=None) as batch_op:
        batch_op.create_index("ix_identity_birth", ["birth_date"], unique=False)
        batch_op.create_index("ix_identity_nhs", ["nhs_number"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("patient_identity", schema=None) as batch_op:
        batch_op.drop_index("ix_identity_nhs")
        batch_op.drop_index("ix_identity_birth")

    op.drop_table("patient_identity")
    with op.batch_alter_table("care_action", schema=None) as batch_op:
        batch_op.drop_index("ix_care_action_resource")
        batch_op.drop_index("ix_care_action_patient_group")
        batch_op.drop_index("ix_care_action_kind_time")

    op.drop_table("care_action")
    op.drop_table("improvement_action")
    with op.batch_alter_table("duplicate_finding", schema=None) as batch_op:
        batch_op.drop_index("ix_finding_rule_time")
        batch_op.drop_index("ix_finding_event")

    op.drop_table("duplicate_finding")
