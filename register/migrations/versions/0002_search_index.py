"""Search index tables: one per kind of indexed value, plus Patient compartment membership.

Also an index on resource (resource_type, pk): a search without a selective criterion walks one
type in pk order. After this migration the tables are empty; ``careregister reindex`` fills them
from the stored resources (new writes index themselves in their own transaction).

Revision ID: 0002_search_index
Revises: 0001_core
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from register.search_types import IndexNumber

revision = "0002_search_index"
down_revision = "0001_core"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
C_TEXT = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def _common() -> list[sa.Column]:
    return [
        sa.Column("pk", PK, primary_key=True),
        sa.Column("resource_pk", PK, nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
    ]


def _table(name: str, *columns: sa.Column, indexes: dict[str, list[str]]) -> None:
    op.create_table(name, *_common(), sa.Column("param", sa.String(64), nullable=False), *columns)
    for index_name, index_columns in indexes.items():
        op.create_index(index_name, name, index_columns)
    op.create_index(f"ix_{name}_resource", name, ["resource_pk", "param"])


def upgrade() -> None:
    _table(
        "search_token",
        sa.Column("system", C_TEXT),
        sa.Column("code", C_TEXT),
        sa.Column("text", sa.Text),
        sa.Column("type_system", sa.Text),
        sa.Column("type_code", sa.Text),
        indexes={
            "ix_search_token_code": ["resource_type", "param", "code", "system"],
            "ix_search_token_system": ["resource_type", "param", "system"],
        },
    )
    _table(
        "search_string",
        sa.Column("value_norm", C_TEXT),
        sa.Column("value_exact", sa.Text),
        indexes={"ix_search_string_value": ["resource_type", "param", "value_norm"]},
    )
    _table(
        "search_date",
        sa.Column("low", sa.BigInteger, nullable=False),
        sa.Column("high", sa.BigInteger, nullable=False),
        indexes={
            "ix_search_date_low": ["resource_type", "param", "low"],
            "ix_search_date_high": ["resource_type", "param", "high"],
        },
    )
    _table(
        "search_reference",
        sa.Column("target_type", sa.String(64)),
        sa.Column("target_id", sa.String(64)),
        sa.Column("url", C_TEXT),
        sa.Column("identifier_system", C_TEXT),
        sa.Column("identifier_value", C_TEXT),
        indexes={
            "ix_search_reference_target": ["resource_type", "param", "target_id", "target_type"],
            "ix_search_reference_url": ["resource_type", "param", "url"],
            "ix_search_reference_identifier": [
                "resource_type",
                "param",
                "identifier_value",
                "identifier_system",
            ],
        },
    )
    _table(
        "search_quantity",
        sa.Column("value", IndexNumber),
        sa.Column("low", IndexNumber),
        sa.Column("high", IndexNumber),
        sa.Column("system", sa.Text),
        sa.Column("code", sa.Text),
        sa.Column("unit", sa.Text),
        indexes={"ix_search_quantity_low": ["resource_type", "param", "low"]},
    )
    _table(
        "search_number",
        sa.Column("value", IndexNumber),
        sa.Column("low", IndexNumber),
        sa.Column("high", IndexNumber),
        indexes={"ix_search_number_low": ["resource_type", "param", "low"]},
    )
    _table(
        "search_uri",
        sa.Column("uri", C_TEXT),
        indexes={"ix_search_uri_uri": ["resource_type", "param", "uri"]},
    )
    _table(
        "search_composite",
        sa.Column("c1_system", C_TEXT),
        sa.Column("c1_code", C_TEXT),
        sa.Column("c2_system", sa.Text),
        sa.Column("c2_code", sa.Text),
        sa.Column("c2_unit", sa.Text),
        sa.Column("c2_low", IndexNumber),
        sa.Column("c2_high", IndexNumber),
        sa.Column("c2_date_low", sa.BigInteger),
        sa.Column("c2_date_high", sa.BigInteger),
        sa.Column("c2_text", sa.Text),
        indexes={"ix_search_composite_code": ["resource_type", "param", "c1_code"]},
    )
    op.create_table(
        "search_compartment",
        *_common(),
        sa.Column("patient_id", sa.String(64), nullable=False),
    )
    op.create_index(
        "ix_search_compartment_patient", "search_compartment", ["patient_id", "resource_pk"]
    )
    op.create_index("ix_search_compartment_resource", "search_compartment", ["resource_pk"])
    op.create_index("ix_resource_type_pk", "resource", ["resource_type", "pk"])


def downgrade() -> None:
    op.drop_index("ix_resource_type_pk", "resource")
    for name in (
        "search_compartment",
        "search_composite",
        "search_uri",
        "search_number",
        "search_quantity",
        "search_reference",
        "search_date",
        "search_string",
        "search_token",
    ):
        op.drop_table(name)
