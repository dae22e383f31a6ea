"""Review counts, rates, suppression, drill-down and trends over stored findings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from register import storage
from register.db import read_transaction, write_transaction
from register.review.report import load_review, record_improvement_action, to_csv
from register.schema import care_action_table, finding_table

KEY = b"k" * 32


def seed(engine, findings, actions):
    with write_transaction(engine) as conn:
        storage.erase_everything(conn)
        conn.execute(finding_table.delete())
        rpk = conn.execute(
            insert(storage.R)
            .values(
                resource_type="Basic",
                resource_id="x",
                version_id=1,
                last_updated=datetime.now(UTC),
                deleted=False,
                content=b"{}",
            )
            .returning(storage.R.c.pk)
        ).scalar_one()
        for i, (rule, org, month, patient) in enumerate(findings):
            conn.execute(
                insert(finding_table).values(
                    issue_id=f"i{i}",
                    rule=rule,
                    code="MINFREQ",
                    group_key="hba1c",
                    patient_id=patient,
                    repeat_org=org,
                    original_org="GP",
                    service="diabetes",
                    occurred_at=datetime(2026, month, 10, tzinfo=UTC),
                    detected_at=datetime.now(UTC),
                    gap_days=20.0,
                    severity="moderate",
                    mitigation="secret free text" if i == 0 else None,
                    patient_reported=False,
                    event_key=f"e{i}",
                )
            )
        for kind, org, month, n in actions:
            conn.execute(
                insert(care_action_table),
                [
                    dict(
                        resource_pk=rpk,
                        resource_type="Observation",
                        resource_id=f"{kind}{j}",
                        patient_id="p",
                        kind=kind,
                        group_key="hba1c",
                        status="final",
                        occurred_at=datetime(2026, month, 1, tzinfo=UTC) + timedelta(hours=j),
                        org=org,
                        codes="",
                        ingredients="",
                        classes="",
                        linked="",
                    )
                    for j in range(n)
                ],
            )


def test_counts_rates_and_suppression(engine):
    findings = [("repeat-test", "HOSP", 3, f"p{i}") for i in range(12)]
    findings += [("repeat-test", "DT", 3, "p1"), ("repeat-question", "HOSP", 3, "p2")]
    seed(
        engine,
        findings,
        [("test", "HOSP", 3, 400), ("order", "HOSP", 3, 100), ("test", "DT", 3, 50)],
    )
    with read_transaction(engine) as conn:
        review = load_review(conn, KEY)
    rows = {(r["rule"], r["repeat_org"]): r for r in review.counts(["rule", "repeat_org"])}
    hosp = rows[("repeat-test", "HOSP")]
    assert hosp["findings"] == 12 and hosp["actions"] == 500
    assert hosp["per_1000"] == 24.0
    assert rows[("repeat-test", "DT")]["findings"] == "<5"
    assert rows[("repeat-test", "DT")]["per_1000"] == "<5"
    assert rows[("repeat-question", "HOSP")]["findings"] == "<5"


def test_drill_down_is_deidentified_and_small_groups_hidden(engine):
    findings = [("repeat-test", "HOSP", 3, f"patient-{i}") for i in range(6)]
    findings.append(("repeat-test", "DT", 3, "patient-x"))
    seed(engine, findings, [])
    with read_transaction(engine) as conn:
        review = load_review(conn, KEY)
    rows = review.drill_down({"repeat_org": "HOSP"})
    assert len(rows) == 6
    text = to_csv(rows)
    for secret in ("patient-", "secret free text"):
        assert secret not in text
    assert rows[0]["mitigated"] is True
    assert len({r["pseudonym"] for r in rows}) == 6
    assert review.drill_down({"repeat_org": "DT"}) == []
    with read_transaction(engine) as conn:
        again = load_review(conn, KEY).drill_down({"repeat_org": "HOSP"})
        other_key = load_review(conn, b"z" * 32).drill_down({"repeat_org": "HOSP"})
    assert [r["pseudonym"] for r in again] == [r["pseudonym"] for r in rows]
    assert {r["pseudonym"] for r in other_key}.isdisjoint({r["pseudonym"] for r in rows})


def test_trend_is_split_at_an_improvement_action(engine):
    findings = []
    for month in range(1, 13):
        per = 8 if month <= 6 else 2
        findings += [("repeat-test", "HOSP", month, f"p{month}-{i}") for i in range(per)]
    seed(engine, findings, [("test", "HOSP", m, 100) for m in range(1, 13)])
    with write_transaction(engine) as conn:
        record_improvement_action(
            conn,
            note="Shared HbA1c results with the hospital lab",
            action_date=datetime(2026, 7, 1, tzinfo=UTC),
            author="QI lead",
            rule="repeat-test",
        )
    with read_transaction(engine) as conn:
        review = load_review(conn, KEY)
    trend = review.trend(rule="repeat-test")
    before, after = trend["periods"]
    assert (before["period"], after["period"]) == ("before", "after")
    assert [p["value"] for p in before["points"]] == [80.0] * 6
    assert [p["value"] for p in after["points"]] == [20.0] * 6
    assert trend["improvement_actions"][0]["note"].startswith("Shared HbA1c")
