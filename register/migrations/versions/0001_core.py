"""Core storage: current resources and every version of each.

Revision ID: 0001_core
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from register.db_types import FhirJson, UTCDateTime

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "resource",
        sa.Column("pk", PK, primary_key=True),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", UTCDateTime, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("content", FhirJson, nullable=True),
        sa.Column("patient_id", sa.String(64), nullable=True),
        sa.Column("author_org", sa.String(64), nullable=True),
        sa.UniqueConstraint("resource_type", "resource_id", name="uq_resource_type_id"),
    )
    op.create_index("ix_resource_type_updated", "resource", ["resource_type", "last_updated"])
    op.create_index("ix_resource_patient", "resource", ["patient_id"])
    op.create_table(
        "resource_version",
        sa.Column("pk", PK, primary_key=True),
        sa.Column(
            "resource_pk", PK, sa.ForeignKey("resource.pk", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", UTCDateTime, nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("content", FhirJson, nullable=True),
        sa.UniqueConstraint(
            "resource_type", "resource_id", "version_id", name="uq_version_type_id_version"
        ),
    )
    op.create_index("ix_version_updated", "resource_version", ["last_updated"])
    op.create_index(
        "ix_version_type_updated", "resource_version", ["resource_type", "last_updated"]
    )


def downgrade() -> None:
    op.drop_table("resource_version")
    op.drop_table("resource")
