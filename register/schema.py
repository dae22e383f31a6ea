"""The register's tables, as SQLModel classes.

Every resource version lives in ``resource_version``; ``resource`` holds the current version of
each resource (a copy of its body, so a read is one primary-key lookup) and the facts the access
policy needs (whose record it is, which organisation recorded it). Alembic migrations in
``register/migrations`` create these tables; the classes here are what the code queries.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from register.db_types import FhirJson, UTCDateTime
from register.search_schema import (  # noqa: F401  (the search index tables, in their module)
    SearchCompartmentRow,
    SearchCompositeRow,
    SearchDateRow,
    SearchNumberRow,
    SearchQuantityRow,
    SearchReferenceRow,
    SearchStringRow,
    SearchTokenRow,
    SearchUriRow,
    VersionDateRow,
    VersionTokenRow,
)

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid; BigInteger keeps 64 bits on PG.
PK_TYPE = BigInteger().with_variant(Integer(), "sqlite")


class ResourceRow(SQLModel, table=True):
    """The current version of one resource (deleted ones keep a tombstone row)."""

    __tablename__ = "resource"
    __table_args__ = (
        UniqueConstraint("resource_type", "resource_id", name="uq_resource_type_id"),
        Index("ix_resource_type_updated", "resource_type", "last_updated"),
        Index("ix_resource_patient", "patient_id"),
        Index("ix_resource_type_pk", "resource_type", "pk"),  # a type walked in pk order (search)
    )

    pk: int | None = Field(default=None, sa_column=Column(PK_TYPE, primary_key=True))
    resource_type: str = Field(sa_column=Column(String(64), nullable=False))
    resource_id: str = Field(sa_column=Column(String(64), nullable=False))
    version_id: int = Field(sa_column=Column(Integer, nullable=False))
    last_updated: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    deleted: bool = Field(default=False, nullable=False)
    content: bytes | None = Field(default=None, sa_column=Column(FhirJson, nullable=True))
    # Facts for the access policy, kept in step with the content on every write.
    patient_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    author_org: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))


class ResourceVersionRow(SQLModel, table=True):
    """One version of a resource, as written; never changed once written."""

    __tablename__ = "resource_version"
    __table_args__ = (
        UniqueConstraint(
            "resource_type", "resource_id", "version_id", name="uq_version_type_id_version"
        ),
        Index("ix_version_updated", "last_updated"),
        Index("ix_version_type_updated", "resource_type", "last_updated"),
    )

    pk: int | None = Field(default=None, sa_column=Column(PK_TYPE, primary_key=True))
    resource_pk: int = Field(
        sa_column=Column(PK_TYPE, ForeignKey("resource.pk", ondelete="CASCADE"), nullable=False)
    )
    resource_type: str = Field(sa_column=Column(String(64), nullable=False))
    resource_id: str = Field(sa_column=Column(String(64), nullable=False))
    version_id: int = Field(sa_column=Column(Integer, nullable=False))
    last_updated: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    method: str = Field(sa_column=Column(String(8), nullable=False))
    deleted: bool = Field(default=False, nullable=False)
    content: bytes | None = Field(default=None, sa_column=Column(FhirJson, nullable=True))
    # What history and vread judge this version by (register/storage.py, _visible_versions;
    # its codes, labels and dates are in version_token and version_date): whose record it was in
    # (a resource can move to another patient's record when misfiled data is corrected) and the
    # organisation that recorded it (the resource row holds the current version's).
    patient_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    author_org: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))


resource_table = ResourceRow.__table__  # type: ignore[attr-defined]
version_table = ResourceVersionRow.__table__  # type: ignore[attr-defined]


class CareActionRow(SQLModel, table=True):
    """The action log: each care action a current resource records (for duplicate rules and
    the denominators of review rates). Kept in step with the resource on every write."""

    __tablename__ = "care_action"
    __table_args__ = (
        Index("ix_care_action_patient_group", "patient_id", "group_key", "kind"),
        Index("ix_care_action_resource", "resource_pk"),
        Index("ix_care_action_kind_time", "kind", "occurred_at"),
    )

    pk: int | None = Field(default=None, sa_column=Column(PK_TYPE, primary_key=True))
    resource_pk: int = Field(
        sa_column=Column(PK_TYPE, ForeignKey("resource.pk", ondelete="CASCADE"), nullable=False)
    )
    resource_type: str = Field(sa_column=Column(String(64), nullable=False))
    resource_id: str = Field(sa_column=Column(String(64), nullable=False))
    patient_id: str = Field(sa_column=Column(String(64), nullable=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    group_key: str = Field(sa_column=Column(String(200), nullable=False))
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    status: str = Field(sa_column=Column(String(32), nullable=False))
    codes: str = Field(default="", sa_column=Column(Text, nullable=False))
    ingredients: str = Field(default="", sa_column=Column(Text, nullable=False))
    classes: str = Field(default="", sa_column=Column(Text, nullable=False))
    org: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    practitioner: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    encounter: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    linked: str = Field(default="", sa_column=Column(Text, nullable=False))
    value: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    unit: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    confirmed: bool = Field(default=False, nullable=False)


class DuplicateFindingRow(SQLModel, table=True):
    """One duplicated action found, as counted by the improvement review (the DetectedIssue
    resource is the clinical record of it)."""

    __tablename__ = "duplicate_finding"
    __table_args__ = (
        Index("ix_finding_rule_time", "rule", "occurred_at"),
        Index("ix_finding_event", "patient_id", "rule", "group_key", "event_key"),
    )

    pk: int | None = Field(default=None, sa_column=Column(PK_TYPE, primary_key=True))
    issue_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    rule: str = Field(sa_column=Column(String(32), nullable=False))
    code: str = Field(sa_column=Column(String(32), nullable=False))
    group_key: str = Field(sa_column=Column(String(200), nullable=False))
    patient_id: str = Field(sa_column=Column(String(64), nullable=False))
    repeat_ref: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    original_ref: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    repeat_org: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    original_org: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    service: str = Field(default="unspecified", sa_column=Column(String(200), nullable=False))
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    detected_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    gap_days: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    severity: str = Field(sa_column=Column(String(16), nullable=False))
    mitigation: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    patient_reported: bool = Field(default=False, nullable=False)
    event_key: str = Field(sa_column=Column(String(250), nullable=False))


class PatientIdentityRow(SQLModel, table=True):
    """The demographics of each current Patient, for duplicate registrations and $match."""

    __tablename__ = "patient_identity"
    __table_args__ = (
        Index("ix_identity_nhs", "nhs_number"),
        Index("ix_identity_birth", "birth_date"),
    )

    resource_pk: int = Field(
        sa_column=Column(PK_TYPE, ForeignKey("resource.pk", ondelete="CASCADE"), primary_key=True)
    )
    patient_id: str = Field(sa_column=Column(String(64), nullable=False))
    nhs_number: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    family: str = Field(default="", sa_column=Column(String(200), nullable=False))
    given: str = Field(default="", sa_column=Column(String(200), nullable=False))
    birth_date: str | None = Field(default=None, sa_column=Column(String(10), nullable=True))
    gender: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    postcode: str = Field(default="", sa_column=Column(String(16), nullable=False))


class ImprovementActionRow(SQLModel, table=True):
    """An improvement action a reviewer recorded ("You said, we did")."""

    __tablename__ = "improvement_action"

    pk: int | None = Field(default=None, sa_column=Column(PK_TYPE, primary_key=True))
    rule: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    repeat_org: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    original_org: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    action_date: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    note: str = Field(sa_column=Column(Text, nullable=False))
    author: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    recorded_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


care_action_table = CareActionRow.__table__  # type: ignore[attr-defined]
finding_table = DuplicateFindingRow.__table__  # type: ignore[attr-defined]
identity_table = PatientIdentityRow.__table__  # type: ignore[attr-defined]
improvement_table = ImprovementActionRow.__table__  # type: ignore[attr-defined]


class AuditRow(SQLModel, table=True):
    """One audit event, hash-chained to the one before it (see register/audit/chain.py)."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_recorded", "recorded"),
        Index("ix_audit_org", "agent_org", "seq"),
    )

    seq: int = Field(sa_column=Column(PK_TYPE, primary_key=True, autoincrement=False))
    event_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    recorded: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    kind: str = Field(sa_column=Column(String(32), nullable=False))  # rest | token | consent ...
    action: str = Field(sa_column=Column(String(40), nullable=False))  # read, search-type, ...
    outcome: str = Field(sa_column=Column(String(4), nullable=False))  # 0, 4, 8, 12
    agent_role: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    agent_who: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    agent_org: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    client_id: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    purpose: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    break_glass: bool = Field(default=False, nullable=False)
    request_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    # Raw bytes (not JSONB): the hash chain covers exactly these bytes on every database.
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    prev_hash: str = Field(sa_column=Column(String(64), nullable=False))
    hash: str = Field(sa_column=Column(String(64), nullable=False))


class AuditPatientRow(SQLModel, table=True):
    """Which patients' data an audit event touched ("who looked at my record")."""

    __tablename__ = "audit_patient"
    __table_args__ = (Index("ix_audit_patient", "patient_id", "seq"),)

    seq: int = Field(sa_column=Column(PK_TYPE, primary_key=True, autoincrement=False))
    patient_id: str = Field(sa_column=Column(String(64), primary_key=True))


class AuditHeadRow(SQLModel, table=True):
    """The head of the audit chain: the last sequence number and hash (one row, locked by each
    appender so events chain in commit order on every database)."""

    __tablename__ = "audit_head"

    id: int = Field(sa_column=Column(Integer, primary_key=True))
    seq: int = Field(sa_column=Column(PK_TYPE, nullable=False))
    hash: str = Field(sa_column=Column(String(64), nullable=False))


audit_table = AuditRow.__table__  # type: ignore[attr-defined]
audit_patient_table = AuditPatientRow.__table__  # type: ignore[attr-defined]
audit_head_table = AuditHeadRow.__table__  # type: ignore[attr-defined]
