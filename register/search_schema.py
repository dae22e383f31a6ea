"""The search index tables, as SQLModel classes (re-exported by :mod:`register.schema`).

One table per kind of index row (``fhir_adapters.search_extraction``: ``search_token``,
``search_string`` ...) plus ``search_compartment``: which Patients' compartments a resource is in.
Every row is keyed by ``resource.pk`` and describes the current version only; the rows are
replaced in the same transaction as the resource they describe (``register/search_index.py``).

Each lookup index starts with (resource_type, param) followed by the value columns a query
compares, and every table has an index on (resource_pk, param) so a test on one resource (a
correlated ``EXISTS``) or the removal of its rows is a short range scan. Dates are integer
microseconds (UTC) and decimals :class:`~register.search_types.IndexNumber`; see
``register/search_types.py``. On PostgreSQL the text columns compared by prefix use the "C"
collation, so ``>=``/``<`` ranges (and ``LIKE 'abc%'``) are answered from the B-tree.

``version_token`` and ``version_date`` are not search tables: they keep, for every stored version
(keyed by ``resource_version.pk``), the token and date rows the access policy reads, so earlier
versions are judged by their own facts (``register/version_facts.py``).
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import BigInteger, Column, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from register.search_types import IndexNumber

_PK = BigInteger().with_variant(Integer(), "sqlite")
_C_TEXT = Text().with_variant(Text(collation="C"), "postgresql")


def _key() -> int | None:
    return Field(default=None, sa_column=Column(_PK, primary_key=True))


def _resource_pk() -> int:
    return Field(sa_column=Column(_PK, nullable=False))


def _type() -> str:
    return Field(sa_column=Column(String(64), nullable=False))


def _param() -> str:
    return Field(sa_column=Column(String(64), nullable=False))


def _text(*, collate: bool = False) -> str | None:
    return Field(default=None, sa_column=Column(_C_TEXT if collate else Text, nullable=True))


def _number() -> Decimal | None:
    return Field(default=None, sa_column=Column(IndexNumber, nullable=True))


def _micros(nullable: bool = False) -> int | None:
    return Field(default=None, sa_column=Column(BigInteger, nullable=nullable))


class SearchTokenRow(SQLModel, table=True):
    """A coded value: ``system|code``, the normalised display/text, an identifier's type."""

    __tablename__ = "search_token"
    __table_args__ = (
        Index("ix_search_token_code", "resource_type", "param", "code", "system"),
        Index("ix_search_token_system", "resource_type", "param", "system"),
        Index("ix_search_token_resource", "resource_pk", "param"),
    )

    pk: int | None = _key()
    resource_pk: int = _resource_pk()
    resource_type: str = _type()
    param: str = _param()
    system: str | None = _text(collate=True)
    code: str | None = _text(collate=True)
    text: str | None = _text()
    type_system: str | None = _text()
    type_code: str | None = _text()


class SearchStringRow(SQLModel, table=True):
    """A string: normalised (case and accents folded) for matching, and as written."""

    __tablename__ = "search_string"
    __table_args__ = (
        Index("ix_search_string_value", "resource_type", "param", "value_norm"),
        Index("ix_search_string_resource", "resource_pk", "param"),
    )

    pk: int | None = _key()
    resource_pk: int = _resource_pk()
    resource_type: str = _type()
    param: str = _param()
    value_norm: str | None = _text(collate=True)
    value_exact: str | None = _text()


class SearchDateRow(SQLModel, table=True):
    """A date's implicit range ``[low, high)`` in microseconds since the epoch (UTC)."""

    __tablename__ = "search_date"
    __table_args__ = (
        Index("ix_search_date_low", "resource_type", "param", "low"),
        Index("ix_search_date_high", "resource_type", "param", "high"),
        Index("ix_search_date_resource", "resource_pk", "param"),
    )

    pk: int | None = _key()
    resource_pk: int = _resource_pk()
    resource_type: str = _type()
    param: str = _param()
    low: int | None = _micros()
    high: int | None = _micros()


class SearchReferenceRow(SQLModel, table=True):
    """A reference: local target (type and id), other URL, or logical identifier."""

    __tablename__ = "search_reference"
    __table_args__ = (
        Index("ix_search_reference_target", "resource_type", "param", "target_id", "target_type"),
        Index("ix_search_reference_url", "resource_type", "param", "url"),
        Index(
            "ix_search_reference_identifier",
            "resource_type",
            "param",
            "identifier_value",
            "identifier_system",
        ),
        Index("ix_search_reference_resource", "resource_pk", "param"),
    )

    pk: int | None = _key()
    resource_pk: int = _resource_pk()
    resource_type: str = _type()
    param: str = _param()
    target_type: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    target_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    url: str | None = _text(collate=True)
    identifier_system: str | None = _text(collate=True)
    identifier_value: str | None = _text(collate=True)


class SearchQuantityRow(SQLModel, table=True):
    """A quantity: value, implicit range (None: unbounded), unit system, code and text."""

    __tablename__ = "search_quantity"
    __table_args__ = (
        Index("ix_search_quantity_low", "resource_type", "param", "low"),
        Index("ix_search_quantity_resource", "resource_pk", "param"),
    )

    pk: int | None = _key()
    resource_pk: int = _resource_pk()
    resource_type: str = _type()
    param: str = _param()
    value: Decimal | None = _number()
    low: Decimal | None = _number()
    high: Decimal | None = _number()
    system: str | None = _text()
    code: str | None = _text()
    unit: str | None = _text()


class SearchNumberRow(SQLModel, table=True):
    """A number and its implicit precision range."""

    __tablename__ = "search_number"
    __table_args__ = (
        Index("ix_search_number_low", "resource_type", "param", "low"),
        Index("ix_search_number_resource", "resource_pk", "param"),
    )

    pk: int | None = _key()
    resource_pk: int = _resource_pk()
    resource_type: str = _type()
    param: str = _param()
    value: Decimal | None = _number()
    low: Decimal | None = _number()
    high: Decimal | None = _number()


class SearchUriRow(SQLModel, table=True):
    """A URI as written."""

    __tablename__ = "search_uri"
    __table_args__ = (
        Index("ix_search_uri_uri", "resource_type", "param", "uri"),
        Index("ix_search_uri_resource", "resource_pk", "param"),
    )

    pk: int | None = _key()
    resource_pk: int = _resource_pk()
    resource_type: str = _type()
    param: str = _param()
    uri: str | None = _text(collate=True)


class SearchCompositeRow(SQLModel, table=True):
    """One combination of a two-part composite (every R4 composite has two parts).

    The first part is a token (or a reference, kept as ``Type/id`` or its URL in ``c1_code``);
    the second is a token (``c2_system``/``c2_code``), a quantity (``c2_low``/``c2_high`` with
    its unit in ``c2_system``/``c2_code``/``c2_unit``), a date (``c2_date_low``/``c2_date_high``)
    or a string (``c2_text``, normalised).
    """

    __tablename__ = "search_composite"
    __table_args__ = (
        Index("ix_search_composite_code", "resource_type", "param", "c1_code"),
        Index("ix_search_composite_resource", "resource_pk", "param"),
    )

    pk: int | None = _key()
    resource_pk: int = _resource_pk()
    resource_type: str = _type()
    param: str = _param()
    c1_system: str | None = _text(collate=True)
    c1_code: str | None = _text(collate=True)
    c2_system: str | None = _text()
    c2_code: str | None = _text()
    c2_unit: str | None = _text()
    c2_low: Decimal | None = _number()
    c2_high: Decimal | None = _number()
    c2_date_low: int | None = _micros(nullable=True)
    c2_date_high: int | None = _micros(nullable=True)
    c2_text: str | None = _text()


class SearchCompartmentRow(SQLModel, table=True):
    """A resource in a Patient's compartment (R4 Patient CompartmentDefinition)."""

    __tablename__ = "search_compartment"
    __table_args__ = (
        Index("ix_search_compartment_patient", "patient_id", "resource_pk"),
        Index("ix_search_compartment_resource", "resource_pk"),
    )

    pk: int | None = _key()
    resource_pk: int = _resource_pk()
    resource_type: str = _type()
    patient_id: str = Field(sa_column=Column(String(64), nullable=False))


class VersionTokenRow(SQLModel, table=True):
    """A coded value of one stored version (``resource_version.pk``): its codes and security
    labels, kept for the access policy so that history and vread judge an earlier version by
    what it said, not by what the current version says (``register/version_facts.py``).
    Written with the version and never changed, like the version itself."""

    __tablename__ = "version_token"
    __table_args__ = (Index("ix_version_token_version", "version_pk", "param"),)

    pk: int | None = _key()
    version_pk: int = Field(sa_column=Column(_PK, nullable=False))
    param: str = _param()
    system: str | None = _text(collate=True)
    code: str | None = _text(collate=True)


class VersionDateRow(SQLModel, table=True):
    """A date of one stored version (as ``search_date`` holds them), for the access policy's
    data periods (see :class:`VersionTokenRow`)."""

    __tablename__ = "version_date"
    __table_args__ = (Index("ix_version_date_version", "version_pk", "param"),)

    pk: int | None = _key()
    version_pk: int = Field(sa_column=Column(_PK, nullable=False))
    param: str = _param()
    low: int | None = _micros()
    high: int | None = _micros()


token_table = SearchTokenRow.__table__  # type: ignore[attr-defined]
string_table = SearchStringRow.__table__  # type: ignore[attr-defined]
date_table = SearchDateRow.__table__  # type: ignore[attr-defined]
reference_table = SearchReferenceRow.__table__  # type: ignore[attr-defined]
quantity_table = SearchQuantityRow.__table__  # type: ignore[attr-defined]
number_table = SearchNumberRow.__table__  # type: ignore[attr-defined]
uri_table = SearchUriRow.__table__  # type: ignore[attr-defined]
composite_table = SearchCompositeRow.__table__  # type: ignore[attr-defined]
compartment_table = SearchCompartmentRow.__table__  # type: ignore[attr-defined]
version_token_table = VersionTokenRow.__table__  # type: ignore[attr-defined]
version_date_table = VersionDateRow.__table__  # type: ignore[attr-defined]

INDEX_TABLES = {
    "token": token_table,
    "string": string_table,
    "date": date_table,
    "reference": reference_table,
    "quantity": quantity_table,
    "number": number_table,
    "uri": uri_table,
    "composite": composite_table,
}
"""Index tables by the ``kind`` of the extraction row that fills them."""

ALL_TABLES = (*INDEX_TABLES.values(), compartment_table)
"""Every table whose rows describe a resource (all are cleared when it is re-indexed)."""

VERSION_FACT_TABLES = {"token": version_token_table, "date": version_date_table}
"""The index rows kept for every stored version, by the ``kind`` of extraction row (the kinds
the access policy reads: codes, security labels, clinical dates)."""
