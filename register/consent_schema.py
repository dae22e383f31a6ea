"""The consent table (migration ``0006_consent``): a patient's sharing Consent as flat rules.

``consent_provision`` holds, per patient, the rules of the Consent in force (the most recently
written active Consent with scope ``patient-privacy``), flattened by
:func:`fhir_adapters.consent.rules_of` and rewritten in the same transaction as every Consent
write (:mod:`register.consent_facts`). The read filter (``register/visibility.py``) evaluates
them at query time. Null criteria mean "any". ``data_start_us``/``data_end_us`` are the
dataPeriod in the search index's microseconds (compared with ``search_date``), and
``data_start``/``data_end`` the same instants for resources without a clinical date (compared
with ``resource.last_updated``).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table

from register.db_types import UTCDateTime

PK = BigInteger().with_variant(Integer(), "sqlite")
metadata = MetaData()

provision_table = Table(
    "consent_provision",
    metadata,
    Column("pk", PK, primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("consent_id", String(64), nullable=False),
    Column("path", String(255), nullable=False),
    Column("depth", Integer, nullable=False),
    Column("effect", String(8), nullable=False),  # permit | deny
    Column("actor", String(16), nullable=True),  # ODS code of the recipient organisation
    Column("purpose", String(16), nullable=True),  # v3-ActReason code
    Column("resource_type", String(64), nullable=True),
    Column("code_system", String(255), nullable=True),
    Column("code", String(255), nullable=True),
    Column("label_system", String(255), nullable=True),
    Column("label_code", String(255), nullable=True),
    Column("data_start_us", BigInteger, nullable=True),
    Column("data_end_us", BigInteger, nullable=True),
    Column("data_start", UTCDateTime, nullable=True),
    Column("data_end", UTCDateTime, nullable=True),
    Column("valid_from", UTCDateTime, nullable=True),
    Column("valid_to", UTCDateTime, nullable=True),
    Index("ix_consent_provision_patient", "patient_id", "effect", "depth"),
    Index("ix_consent_provision_consent", "consent_id"),
)
