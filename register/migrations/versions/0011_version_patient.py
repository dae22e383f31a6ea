"""Each version records whose record it was in (``resource_version.patient_id``).

A resource can move to another patient's record (misfiled data corrected); its earlier versions
were in the first patient's record. History and vread use this column so that such a version is
never served as part of the record the resource is in now, and audit events name the right
patient. Existing versions take their resource's current patient, except where a version's own
content names another patient (a resource that already moved).

Revision ID: 0011_version_patient
Revises: 0010_web
"""

from __future__ import annotations

import orjson
import sqlalchemy as sa
from alembic import op

from fhir_adapters.compartments import primary_patient

revision = "0011_version_patient"
down_revision = "0010_web"
branch_labels = None
depends_on = None

BATCH = 2000


def upgrade() -> None:
    op.add_column("resource_version", sa.Column("patient_id", sa.String(64), nullable=True))
    conn = op.get_bind()
    conn.execute(
        sa.text(
            "UPDATE resource_version SET patient_id = "
            "(SELECT r.patient_id FROM resource r WHERE r.pk = resource_version.resource_pk)"
        )
    )
    # Versions of resources with several versions: a version's own content may name another
    # patient (deletions keep the patient of the version before them).
    content = "CAST(v.content AS TEXT)" if conn.dialect.name == "postgresql" else "v.content"
    query = sa.text(
        f"SELECT v.pk, v.resource_pk, v.deleted, {content} AS content, v.patient_id "
        "FROM resource_version v JOIN resource r ON r.pk = v.resource_pk "
        "WHERE r.version_id > 1 AND v.pk > :after ORDER BY v.pk LIMIT :batch"
    )
    # In pk order a resource's versions come in version order, so a deletion follows the
    # version before it.
    after = 0
    last: dict[int, str | None] = {}
    changed: list[dict[str, object]] = []
    while True:
        rows = conn.execute(query, {"after": after, "batch": BATCH}).all()
        if not rows:
            break
        for pk, resource_pk, deleted, body, stored in rows:
            if deleted or body is None:
                patient = last.get(resource_pk, stored)
            else:
                raw = body.encode() if isinstance(body, str) else bytes(body)
                patient = primary_patient(orjson.loads(raw)) or stored
            last[resource_pk] = patient
            if patient != stored:
                changed.append({"patient": patient, "pk": pk})
        after = max(row[0] for row in rows)
    for start in range(0, len(changed), BATCH):
        conn.execute(
            sa.text("UPDATE resource_version SET patient_id = :patient WHERE pk = :pk"),
            changed[start : start + BATCH],
        )


def downgrade() -> None:
    op.drop_column("resource_version", "patient_id")
