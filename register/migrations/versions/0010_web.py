"""Server-side sessions of the pages (``register/web/session_schema.py``).

Revision ID: 0010_web
Revises: 0007_audit_review
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from register.db_types import UTCDateTime

revision = "0010_web"
down_revision = "0007_audit_review"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_session",
        sa.Column("key_hash", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("fhir_user", sa.String(128), nullable=True),
        sa.Column("organisation", sa.String(16), nullable=True),
        sa.Column("display", sa.String(255), nullable=True),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("break_glass", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_web_session_expires", "web_session", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_web_session_expires", table_name="web_session")
    op.drop_table("web_session")
