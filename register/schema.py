"""The register's tables, as SQLModel classes.

Every resource version lives in ``resource_version``; ``resource`` holds the current version of
each resource (a copy of its body, so a read is one primary-key lookup) and the facts the access
policy needs (whose record it is, which organisation recorded it). Alembic migrations in
``register/migrations`` create these tables; the classes here are what the code queries.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, UniqueConstraint
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


resource_table = ResourceRow.__table__  # type: ignore[attr-defined]
version_table = ResourceVersionRow.__table__  # type: ignore[attr-defined]
