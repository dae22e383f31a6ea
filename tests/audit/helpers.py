"""Reading back what the audit log recorded, for the audit tests."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, select

from register.audit.chain import verify
from register.audit.schema import audit_entity_table, audit_review_table
from register.db import read_transaction
from register.schema import audit_patient_table, audit_table


@dataclass
class Recorded:
    """One stored event: its columns, content, patients and entity rows."""

    seq: int
    kind: str
    action: str
    outcome: str
    agent_role: str | None
    agent_who: str | None
    agent_org: str | None
    client_id: str | None
    purpose: str | None
    break_glass: bool
    request_id: str | None
    content: dict[str, Any]
    patients: set[str]
    entities: set[str]

    @property
    def query(self) -> str | None:
        for entity in self.content.get("entity", []):
            if entity.get("query"):
                return base64.b64decode(entity["query"]).decode()
        return None

    @property
    def subtypes(self) -> set[str]:
        return {s["code"] for s in self.content.get("subtype", [])}

    def kinds_for(self, patient: str) -> set[str]:
        for entity in self.content.get("entity", []):
            if entity.get("what", {}).get("reference") == f"Patient/{patient}":
                for detail in entity.get("detail", []):
                    return set(detail["valueString"].split())
        return set()


def events(engine: Engine, after: int = 0) -> list[Recorded]:
    """Every event after position ``after``, oldest first."""
    with read_transaction(engine) as conn:
        rows = conn.execute(select(audit_table).where(audit_table.c.seq > after)).all()
        patients = conn.execute(select(audit_patient_table)).all()
        entities = conn.execute(select(audit_entity_table)).all()
    found = []
    for row in sorted(rows, key=lambda r: r.seq):
        found.append(
            Recorded(
                seq=row.seq,
                kind=row.kind,
                action=row.action,
                outcome=row.outcome,
                agent_role=row.agent_role,
                agent_who=row.agent_who,
                agent_org=row.agent_org,
                client_id=row.client_id,
                purpose=row.purpose,
                break_glass=bool(row.break_glass),
                request_id=row.request_id,
                content=orjson.loads(row.content),
                patients={p.patient_id for p in patients if p.seq == row.seq},
                entities={e.reference for e in entities if e.seq == row.seq},
            )
        )
    return found


def last_seq(engine: Engine) -> int:
    """The position of the newest event (0 when the log is empty)."""
    found = events(engine)
    return found[-1].seq if found else 0


def review_rows(engine: Engine) -> list[Any]:
    """The review queue's rows, oldest first."""
    with read_transaction(engine) as conn:
        return conn.execute(select(audit_review_table).order_by(audit_review_table.c.seq)).all()


def assert_log_intact(engine: Engine) -> None:
    """The whole audit log (chain, columns, patient and entity rows, review queue) verifies."""
    with read_transaction(engine) as conn:
        report = verify(conn)
    assert report.intact, report.problems
