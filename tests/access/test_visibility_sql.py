"""The SQL translation of a Sight selects exactly the rows the reference model says it should.

Random rows, care relationships, break-glass grants and Sights (hypothesis), on SQLite and
PostgreSQL; the rows ``register.visibility`` lets through must equal ``tests.access.reference``'s
answer, whatever the combination.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select

from auth.policy import CareParty, ScopeGrant, Sight
from register import storage
from register.access_schema import break_glass_table, relationship_table
from register.db import _begin
from register.schema import resource_table
from register.visibility import SightVisibility, has_relationship, patient_reachable
from tests.access.reference import Grant, Relationship, Row, visible

TYPES = ["Patient", "Observation", "Organization", "Practitioner", "Provenance", "Consent"]
PATIENTS = [None, "p1", "p2", "p3"]
ORGS = [None, "AAA01", "BBB02"]
PRACTITIONERS = [None, "Practitioner/x", "Practitioner/y%z"]
DAY = timedelta(days=1)

rows = st.lists(
    st.builds(
        Row,
        resource_type=st.sampled_from(TYPES),
        patient_id=st.sampled_from(PATIENTS),
        author_org=st.sampled_from(ORGS),
    ),
    max_size=12,
)
relationships = st.lists(
    st.builds(
        Relationship,
        patient_id=st.sampled_from(PATIENTS[1:]),
        kind=st.sampled_from(["encounter", "episode", "careteam"]),
        org_ods=st.sampled_from(ORGS),
        practitioner_ref=st.sampled_from(PRACTITIONERS),
        active=st.booleans(),
        # days from now: None (open), ended 40/20/1 days ago, ends tomorrow
        ends_at=st.sampled_from([None, -40, -20, -1, 1]),
    ),
    max_size=6,
)
grants = st.lists(
    st.builds(
        Grant,
        holder=st.sampled_from(["AAA01|alice", "AAA01|o'b%r"]),
        patient_id=st.sampled_from(PATIENTS[1:]),
        expires_at=st.sampled_from([-1, 1]),
    ),
    max_size=4,
)
scope_grants = st.one_of(
    st.none(),
    st.lists(
        st.one_of(
            st.builds(ScopeGrant, resource_type=st.sampled_from(TYPES)),
            st.builds(
                ScopeGrant,
                resource_type=st.none(),
                others_than=st.frozensets(st.sampled_from(TYPES), max_size=2),
            ),
        ),
        max_size=3,
    ).map(tuple),
)
sights = st.builds(
    Sight,
    scope=scope_grants,
    own_organisation=st.sampled_from(ORGS),
    care_of=st.one_of(
        st.none(),
        st.builds(
            CareParty,
            organisation=st.sampled_from(ORGS),
            practitioner=st.sampled_from(PRACTITIONERS),
            encounter_window_days=st.just(30),
        ),
    ),
    break_glass_holder=st.sampled_from([None, "AAA01|alice", "AAA01|o'b%r"]),
    own_patient=st.sampled_from(PATIENTS),
    shared_types=st.frozensets(st.sampled_from(TYPES), max_size=3),
)

RELAXED = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _at(now: datetime, days: int | None) -> datetime | None:
    return None if days is None else now + days * DAY


@RELAXED
@given(
    sight=sights, rows=rows, rels=relationships, grants=grants, deleted=st.sets(st.integers(0, 11))
)
def test_sql_matches_the_reference_model(engine: Engine, sight, rows, rels, grants, deleted):
    now = datetime.now(UTC)
    rels = [
        Relationship(
            r.patient_id, r.kind, r.org_ods, r.practitioner_ref, r.active, _at(now, r.ends_at)
        )
        for r in rels
    ]
    grants = [
        Grant(g.holder, g.patient_id, now + g.expires_at * timedelta(hours=1)) for g in grants
    ]
    with engine.connect() as conn:
        transaction = conn.begin()
        if engine.dialect.name == "sqlite":
            _begin(conn, "BEGIN")  # the register's SQLite connections issue BEGIN themselves
        try:
            for i, row in enumerate(rows):
                conn.execute(
                    insert(resource_table).values(
                        resource_type=row.resource_type,
                        resource_id=f"r{i}",
                        version_id=1,
                        last_updated=now,
                        deleted=i in deleted,
                        content=b"{}",
                        patient_id=row.patient_id,
                        author_org=row.author_org,
                    )
                )
            for i, rel in enumerate(rels):
                conn.execute(
                    insert(relationship_table).values(
                        source_type="Encounter",
                        source_id=f"e{i}",
                        kind=rel.kind,
                        patient_id=rel.patient_id,
                        org_ods=rel.org_ods,
                        practitioner_ref=rel.practitioner_ref,
                        active=rel.active,
                        ends_at=rel.ends_at,
                    )
                )
            for grant in grants:
                conn.execute(
                    insert(break_glass_table).values(
                        holder=grant.holder,
                        subject="s",
                        client_id="c",
                        patient_id=grant.patient_id,
                        reason="r",
                        purpose="BTG",
                        started_at=now - timedelta(hours=2),
                        expires_at=grant.expires_at,
                    )
                )
            # Combined with other conditions, as storage and search combine it.
            query = select(resource_table.c.resource_id).where(
                resource_table.c.deleted.is_(False), resource_table.c.version_id == 1
            )
            clause = SightVisibility(sight).resource_clause(resource_table)
            if clause is not None:
                query = query.where(clause)
            got = set(conn.execute(query).scalars())
            expected = {
                f"r{i}"
                for i, row in enumerate(rows)
                if i not in deleted and visible(sight, row, rels, grants, now)
            }
            assert got == expected
            visibility = SightVisibility(sight)
            for i, row in enumerate(rows):  # the read by id (run on the driver) agrees
                version = storage.read(conn, visibility, row.resource_type, f"r{i}")
                assert (version is not None) == visible(sight, row, rels, grants, now)
                if version is not None:
                    assert (version.version_id, version.deleted, version.content) == (
                        1,
                        i in deleted,
                        b"{}",
                    )
                    assert version.last_updated == now
            for patient in PATIENTS[1:]:
                reachable = patient_reachable(conn, sight, patient)
                probe = Row("Observation", patient, None)
                only_care = Sight(
                    care_of=sight.care_of, break_glass_holder=sight.break_glass_holder
                )
                assert reachable == visible(only_care, probe, rels, grants, now)
                if sight.care_of is not None:
                    assert has_relationship(conn, sight.care_of, patient) == visible(
                        Sight(care_of=sight.care_of), probe, rels, grants, now
                    )
        finally:
            transaction.rollback()
