"""Each stored version keeps what the access policy reads about it: the organisation that
recorded it (``resource_version.author_org``) and its codes, security labels and dates
(``version_token``, ``version_date``; ``register/version_facts.py``).

History and vread then judge an earlier version by its own facts, not by the current version's:
a correction that removed a sensitive code or label no longer exposes the version that had it.
Existing versions take the organisation of their resource (no earlier record of who wrote each
version is kept) and their facts are extracted from their own content.

Revision ID: 0012_version_facts
Revises: 0011_version_patient
"""

from __future__ import annotations

import orjson
import sqlalchemy as sa
from alembic import op

from register.version_facts import COLUMNS, fact_rows

revision = "0012_version_facts"
down_revision = "0011_version_patient"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
C_TEXT = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
BATCH = 1000


def upgrade() -> None:
    op.add_column("resource_version", sa.Column("author_org", sa.String(64), nullable=True))
    op.create_table(
        "version_token",
        sa.Column("pk", PK, primary_key=True),
        sa.Column("version_pk", PK, nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        sa.Column("system", C_TEXT),
        sa.Column("code", C_TEXT),
    )
    op.create_index("ix_version_token_version", "version_token", ["version_pk", "param"])
    op.create_table(
        "version_date",
        sa.Column("pk", PK, primary_key=True),
        sa.Column("version_pk", PK, nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        sa.Column("low", sa.BigInteger, nullable=False),
        sa.Column("high", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_version_date_version", "version_date", ["version_pk", "param"])
    conn = op.get_bind()
    conn.execute(
        sa.text(
            "UPDATE resource_version SET author_org = "
            "(SELECT r.author_org FROM resource r WHERE r.pk = resource_version.resource_pk)"
        )
    )
    content = "CAST(content AS TEXT)" if conn.dialect.name == "postgresql" else "content"
    query = sa.text(
        f"SELECT pk, {content} AS content FROM resource_version "
        "WHERE content IS NOT NULL AND pk > :after ORDER BY pk LIMIT :batch"
    )
    inserts = {
        kind: sa.text(
            f"INSERT INTO version_{kind} (version_pk, {', '.join(columns)}) "
            f"VALUES (:version_pk, {', '.join(':' + c for c in columns)})"
        )
        for kind, columns in COLUMNS.items()
    }
    after = 0
    while True:
        rows = conn.execute(query, {"after": after, "batch": BATCH}).all()
        if not rows:
            break
        found: dict[str, list[dict[str, object]]] = {kind: [] for kind in COLUMNS}
        for pk, body in rows:
            raw = body.encode() if isinstance(body, str) else bytes(body)
            for kind, facts in fact_rows(orjson.loads(raw)).items():
                found[kind].extend({"version_pk": pk, **fact} for fact in facts)
        for kind, facts in found.items():
            if facts:
                conn.execute(inserts[kind], facts)
        after = rows[-1][0]


def downgrade() -> None:
    op.drop_index("ix_version_date_version", table_name="version_date")
    op.drop_table("version_date")
    op.drop_index("ix_version_token_version", table_name="version_token")
    op.drop_table("version_token")
    op.drop_column("resource_version", "author_org")
