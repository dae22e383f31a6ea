"""Query plans: the realistic searches start from an index, never from a scan.

SQLite plans without statistics are the same on an empty database as on a full one, so this
checks them directly (``EXPLAIN QUERY PLAN``); docs/search.md records the PostgreSQL plans.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from register.db import create_db_engine
from register.migrate import upgrade
from register.search_plan import plan_search
from register.storage import EVERYTHING

QUERIES = [
    ("Patient", [("identifier", "https://fhir.nhs.uk/Id/nhs-number|9000000009")]),
    ("Patient", [("family", "smi"), ("birthdate", "1961-04-02")]),
    ("Observation", [("patient", "p1"), ("code", "http://loinc.org|4548-4")]),
    ("Observation", [("patient", "p1"), ("date", "ge2020"), ("_sort", "-date")]),
    ("Observation", [("subject:Patient.identifier", "https://fhir.nhs.uk/Id/nhs-number|1")]),
    ("Patient", [("_has:Observation:patient:code", "4548-4")]),
    ("Encounter", [("service-provider", "Organization/o1"), ("date", "ge2020")]),
    ("Observation", []),
    ("Observation", [("_lastUpdated", "ge2024-01-01")]),
]


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = create_db_engine(f"sqlite:///{tmp_path_factory.mktemp('plans') / 'p.sqlite3'}")
    upgrade(engine)
    return engine


@pytest.mark.parametrize(("resource_type", "params"), QUERIES)
def test_sqlite_plans_use_indexes(
    sqlite_engine: Engine, resource_type: str, params: list[tuple[str, str]]
) -> None:
    plan = plan_search(resource_type, params, visibility=EVERYTHING)
    for statement in (plan.page(20, None, reverse=False), plan.count()):
        sql = str(statement.compile(sqlite_engine, compile_kwargs={"literal_binds": True}))
        with sqlite_engine.connect() as conn:
            steps = [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
        scans = [step for step in steps if step.startswith("SCAN") and "CONSTANT" not in step]
        assert scans == [], steps
