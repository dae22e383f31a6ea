"""The improvement review as service functions: what the review API, the command line and the
web pages call. Each takes an open connection and the pseudonym key and returns plain data
(lists of dicts) that is already de-identified: patients only as keyed pseudonyms, no names,
NHS numbers, resource ids or free text, counts under 5 shown as "<5".

Who may call them is decided by ``auth.policy.review_access`` before a caller gets here; these
functions never widen what the review shows, whoever calls them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, select

from register.duplicates.rules import RULES
from register.errors import bad_request
from register.review.report import (
    DIMENSIONS,
    SMALL_NUMBER,
    load_review,
    month_of,
    record_improvement_action,
    suppress,
)
from register.schema import improvement_table

MAX_NOTE = 2000


@dataclass(frozen=True)
class Period:
    """The period a review covers: findings whose repeat happened in [since, until)."""

    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(cls, since: str | None, until: str | None) -> Period:
        """A period from ISO dates (``2026-01-01``); a 400 naming the parameter at fault."""
        return cls(_day(since, "since"), _day(until, "until"))


def _day(value: str | None, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        raise bad_request(f"'{name}' must be a date (YYYY-MM-DD).", name) from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _rule(value: str | None, name: str = "rule") -> str | None:
    if value is None or value == "":
        return None
    if value not in RULES:
        raise bad_request(f"'{name}' must be one of {', '.join(RULES)}.", name)
    return value


def dimensions(text: str | None) -> list[str]:
    """The ``by`` dimensions from a comma-separated list; a 400 for an unknown one."""
    wanted = [d.strip() for d in (text or "rule").split(",") if d.strip()]
    unknown = [d for d in wanted if d not in DIMENSIONS]
    if unknown or not wanted:
        raise bad_request(f"'by' takes dimensions from: {', '.join(DIMENSIONS)}.", "by")
    return list(dict.fromkeys(wanted))


def counts(
    conn: Connection, key: bytes, by: list[str], period: Period = Period()
) -> list[dict[str, Any]]:
    """Findings counted by the ``by`` dimensions (rule, code, group, repeat_org, original_org,
    service, month, source), with the relevant actions and the rate per 1,000 of them where the
    row names a rule. Small numbers are suppressed so no count singles out a patient."""
    review = load_review(conn, key, since=period.since, until=period.until)
    return review.counts(by)


def trend(
    conn: Connection,
    key: bytes,
    *,
    rule: str | None = None,
    repeat_org: str | None = None,
    original_org: str | None = None,
    period: Period = Period(),
) -> dict[str, Any]:
    """The monthly XmR chart (rate per 1,000 relevant actions when a rule is given, else counts)
    with the Making Data Count special-cause markers on each point, split into before and after
    the first improvement action recorded against this rule or organisation pair."""
    review = load_review(conn, key, since=period.since, until=period.until)
    return review.trend(rule=_rule(rule), repeat_org=repeat_org, original_org=original_org)


def findings(
    conn: Connection, key: bytes, filters: dict[str, str], period: Period = Period()
) -> dict[str, Any]:
    """The de-identified findings behind one count (drill-down), or none when fewer than 5 would
    be shown (``suppressed``). ``filters`` are dimension = value pairs."""
    unknown = [name for name in filters if name not in DIMENSIONS]
    if unknown:
        raise bad_request(f"Drill down by dimensions from: {', '.join(DIMENSIONS)}.", unknown[0])
    review = load_review(conn, key, since=period.since, until=period.until)
    rows = review.drill_down(filters)
    matching = sum(
        1 for f in review.findings if all(str(getattr(f, k)) == v for k, v in filters.items())
    )
    return {
        "filters": filters,
        "total": suppress(matching),
        "suppressed": 0 < matching < SMALL_NUMBER,
        "findings": rows,
    }


def improvement_actions(conn: Connection) -> list[dict[str, Any]]:
    """Every improvement action recorded, oldest first ("You said, we did")."""
    table = improvement_table
    return [
        _action_json(row)
        for row in conn.execute(select(table).order_by(table.c.action_date, table.c.pk))
    ]


def _action_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.pk,
        "date": row.action_date.date().isoformat(),
        "month": month_of(row.action_date),
        "rule": row.rule,
        "repeat_org": row.repeat_org,
        "original_org": row.original_org,
        "note": row.note,
        "recorded_by": row.author,
    }


def record_action(conn: Connection, body: Any, *, author: str | None) -> dict[str, Any]:
    """Record an improvement action from a JSON body ``{"date", "note", "rule"?,
    "repeat_org"?, "original_org"?}`` against a rule or an organisation pair (at least one);
    the trend then shows before and after it. A 400 names the field at fault."""
    if not isinstance(body, dict):
        raise bad_request("Send a JSON object with date, note and a rule or organisations.")
    note = body.get("note")
    if not isinstance(note, str) or not note.strip() or len(note) > MAX_NOTE:
        raise bad_request(f"'note' must be text of 1 to {MAX_NOTE} characters.", "note")
    when = body.get("date")
    if not isinstance(when, str):
        raise bad_request("'date' must be a date (YYYY-MM-DD).", "date")
    action_date = _day(when, "date")
    assert action_date is not None
    rule = _rule(body.get("rule") if isinstance(body.get("rule"), str) else None)
    orgs: dict[str, str | None] = {}
    for name in ("repeat_org", "original_org"):
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 200):
            raise bad_request(f"'{name}' must be an organisation code.", name)
        orgs[name] = value
    if rule is None and not any(orgs.values()):
        raise bad_request(
            "An improvement action is recorded against a rule or an organisation pair.", "rule"
        )
    record_improvement_action(
        conn,
        note=note,
        action_date=action_date,
        author=author,
        rule=rule,
        repeat_org=orgs["repeat_org"],
        original_org=orgs["original_org"],
    )
    table = improvement_table
    latest = conn.execute(select(table).order_by(table.c.pk.desc()).limit(1)).one()
    return _action_json(latest)


def trend_rows(chart: dict[str, Any]) -> list[dict[str, Any]]:
    """A trend flattened to one row per month (for CSV)."""
    return [
        {
            "period": period["period"],
            "month": point["month"],
            "value": point["value"],
            "mean": period["mean"],
            "upper_limit": period["upper_limit"],
            "lower_limit": period["lower_limit"],
            "special_cause": ";".join(point["special_cause"]),
        }
        for period in chart["periods"]
        for point in period["points"]
    ]
