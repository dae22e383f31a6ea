"""The improvement review: duplicated actions counted, rated and charted, de-identified.

What a reviewer sees never identifies a patient: no names, NHS numbers, resource ids or free
text; patients appear only as keyed pseudonyms; any count under 5 (and any rate computed from
one) is shown as "<5". Rates are per 1,000 of the actions the rule applies to, by the
organisation that did the repeat, so organisations of different size compare fairly.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select

from register.review.spc import XmRChart, xmr
from register.schema import care_action_table, finding_table, improvement_table

F = finding_table
A = care_action_table
IA = improvement_table

SMALL_NUMBER = 5
# The actions each rule applies to: the denominator of its rate.
DENOMINATOR_KINDS = {
    "repeat-test": ("test", "order"),
    "repeat-question": ("question",),
    "duplicate-therapy": ("prescription",),
    "duplicate-registration": ("registration",),
    "repeat-referral": ("referral",),
}
DIMENSIONS = (
    "rule",
    "code",
    "group",
    "repeat_org",
    "original_org",
    "service",
    "month",
    "source",
)
PATIENT_REPORTED = "patient-reported"
DETECTED = "detected"


def month_of(moment: datetime) -> str:
    """The calendar month (YYYY-MM) of a moment, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m")


def suppress(count: int) -> int | str:
    """A count as a reviewer may see it: small numbers hidden."""
    return "<5" if 0 < count < SMALL_NUMBER else count


@dataclass(frozen=True)
class FindingRow:
    """One finding as the review reads it (identifiers already removed)."""

    rule: str
    code: str
    group: str
    repeat_org: str
    original_org: str
    service: str
    month: str
    severity: str
    gap_days: float | None
    mitigated: bool
    patient_reported: bool
    pseudonym: str

    @property
    def source(self) -> str:
        """Who found it: the register (``detected``) or the patient (``patient-reported``)."""
        return PATIENT_REPORTED if self.patient_reported else DETECTED


def _findings(
    conn: Connection, key: bytes, since: datetime | None, until: datetime | None
) -> list[FindingRow]:
    query = select(F)
    if since is not None:
        query = query.where(F.c.occurred_at >= since)
    if until is not None:
        query = query.where(F.c.occurred_at < until)
    return [
        FindingRow(
            rule=row.rule,
            code=row.code,
            group=row.group_key,
            repeat_org=row.repeat_org or "unknown",
            original_org=row.original_org or "unknown",
            service=row.service,
            month=month_of(row.occurred_at),
            severity=row.severity,
            gap_days=None if row.gap_days is None else round(float(row.gap_days), 1),
            mitigated=bool(row.mitigation),
            patient_reported=bool(row.patient_reported),
            pseudonym=pseudonym(key, row.patient_id),
        )
        for row in conn.execute(query.order_by(F.c.occurred_at))
    ]


def pseudonym(key: bytes, patient_id: str) -> str:
    """A stable key for a patient that cannot be turned back into the patient without ``key``."""
    return hmac.new(key, patient_id.encode(), hashlib.sha256).hexdigest()[:16]


def _denominators(
    conn: Connection, since: datetime | None, until: datetime | None
) -> dict[tuple[str, str, str], int]:
    """Actions by (kind, organisation, month)."""
    query = select(A.c.kind, A.c.org, A.c.occurred_at)
    if since is not None:
        query = query.where(A.c.occurred_at >= since)
    if until is not None:
        query = query.where(A.c.occurred_at < until)
    counts: Counter[tuple[str, str, str]] = Counter()
    for kind, org, moment in conn.execute(query):
        counts[(kind, org or "unknown", month_of(moment))] += 1
    return dict(counts)


@dataclass(frozen=True)
class Review:
    """Findings and their denominators over a period, ready to be counted any way."""

    findings: list[FindingRow]
    denominators: dict[tuple[str, str, str], int]
    actions: list[dict[str, Any]]

    def counts(self, by: Sequence[str]) -> list[dict[str, Any]]:
        """Findings counted by the given dimensions, with rates per 1,000 where they apply."""
        unknown = [d for d in by if d not in DIMENSIONS]
        if unknown:
            raise ValueError(f"cannot count by {unknown}; choose from {DIMENSIONS}")
        tally: Counter[tuple[str, ...]] = Counter(
            tuple(str(getattr(f, d)) for d in by) for f in self.findings
        )
        rows = []
        for values, count in sorted(tally.items()):
            row: dict[str, Any] = dict(zip(by, values, strict=True))
            row["findings"] = suppress(count)
            denominator = self._denominator(row)
            if denominator is not None:
                row["actions"] = suppress(denominator)
                row["per_1000"] = (
                    round(1000 * count / denominator, 1)
                    if denominator and count >= SMALL_NUMBER and denominator >= SMALL_NUMBER
                    else "<5"
                    if denominator
                    else None
                )
            rows.append(row)
        return rows

    def _denominator(self, row: dict[str, Any]) -> int | None:
        """Relevant actions for a row: needs the rule; narrowed by repeating org and month."""
        rule = row.get("rule")
        if rule not in DENOMINATOR_KINDS:
            return None
        kinds = DENOMINATOR_KINDS[rule]
        org = row.get("repeat_org")
        month = row.get("month")
        return sum(
            n
            for (kind, o, m), n in self.denominators.items()
            if kind in kinds and (org is None or o == org) and (month is None or m == month)
        )

    def trend(
        self,
        *,
        rule: str | None = None,
        repeat_org: str | None = None,
        original_org: str | None = None,
        months: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Monthly rate (per 1,000 relevant actions, or counts without a rule) as an XmR chart,
        split at the first improvement action that applies, so before and after compare."""
        chosen = [
            f
            for f in self.findings
            if (rule is None or f.rule == rule)
            and (repeat_org is None or f.repeat_org == repeat_org)
            and (original_org is None or f.original_org == original_org)
        ]
        per_month = Counter(f.month for f in chosen)
        if months is None:
            # The chart spans the months with findings or with actions the measure counts.
            kinds = DENOMINATOR_KINDS.get(rule or "")
            relevant = {
                m
                for (kind, org, m) in self.denominators
                if (kinds is None or kind in kinds) and (repeat_org is None or org == repeat_org)
            }
            all_months = sorted(set(per_month) | relevant)
            months = _month_range(all_months)
        values: list[float] = []
        for month in months:
            count = per_month.get(month, 0)
            if rule is not None:
                denominator = (
                    self._denominator({"rule": rule, "repeat_org": repeat_org, "month": month}) or 0
                )
                values.append(round(1000 * count / denominator, 2) if denominator else 0.0)
            else:
                values.append(float(count))
        applicable = [
            a
            for a in self.actions
            if (a["rule"] in (None, rule))
            and (a["repeat_org"] in (None, repeat_org))
            and (a["original_org"] in (None, original_org))
        ]
        split = min((a["month"] for a in applicable), default=None)
        charts: list[tuple[str, XmRChart]] = []
        if split is not None and split in months and months.index(split) > 0:
            cut = months.index(split)
            charts.append(("before", xmr(months[:cut], values[:cut])))
            charts.append(("after", xmr(months[cut:], values[cut:])))
        else:
            charts.append(("all", xmr(list(months), values)))
        return {
            "rule": rule,
            "repeat_org": repeat_org,
            "original_org": original_org,
            "measure": "per 1,000 relevant actions" if rule else "findings",
            "improvement_actions": applicable,
            "periods": [_chart_json(name, chart) for name, chart in charts],
        }

    def drill_down(self, by: dict[str, str]) -> list[dict[str, Any]]:
        """The de-identified findings behind one count (no ids, no free text)."""
        rows = [
            f
            for f in self.findings
            if all(str(getattr(f, k)) == v for k, v in by.items() if k in DIMENSIONS)
        ]
        if 0 < len(rows) < SMALL_NUMBER:
            return []  # too few to show without risk of identifying someone
        return [{**f.__dict__, "source": f.source} for f in rows]


def _month_range(months: list[str]) -> list[str]:
    if not months:
        return []
    start_year, start_month = map(int, months[0].split("-"))
    end_year, end_month = map(int, months[-1].split("-"))
    out = []
    year, month = start_year, start_month
    while (year, month) <= (end_year, end_month) and len(out) < 600:
        out.append(f"{year:04d}-{month:02d}")
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return out


def _chart_json(name: str, chart: XmRChart) -> dict[str, Any]:
    return {
        "period": name,
        "mean": round(chart.mean, 3),
        "upper_limit": round(chart.upper_limit, 3),
        "lower_limit": round(chart.lower_limit, 3),
        "variation": chart.variation(higher_is_worse=True),
        "points": [
            {"month": p.label, "value": p.value, "special_cause": list(p.flags)}
            for p in chart.points
        ],
    }


def load_review(
    conn: Connection,
    key: bytes,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Review:
    """Everything the review needs for a period, read in one go."""
    actions = [
        {
            "rule": row.rule,
            "repeat_org": row.repeat_org,
            "original_org": row.original_org,
            "month": month_of(row.action_date),
            "date": row.action_date.date().isoformat(),
            "note": row.note,
        }
        for row in conn.execute(select(IA).order_by(IA.c.action_date))
    ]
    return Review(_findings(conn, key, since, until), _denominators(conn, since, until), actions)


def record_improvement_action(
    conn: Connection,
    *,
    note: str,
    action_date: datetime,
    author: str | None,
    rule: str | None = None,
    repeat_org: str | None = None,
    original_org: str | None = None,
) -> None:
    """Log an improvement action ("You said, we did") against a rule or organisation pair."""
    if not note.strip():
        raise ValueError("an improvement action needs a note")
    conn.execute(
        insert(IA).values(
            rule=rule,
            repeat_org=repeat_org,
            original_org=original_org,
            action_date=action_date,
            note=note.strip()[:2000],
            author=author,
            recorded_at=datetime.now(UTC),
        )
    )


def to_csv(rows: Iterable[dict[str, Any]], columns: Sequence[str] = ()) -> str:
    """Rows as CSV text (``columns`` first, then any others in first-seen order); with no rows,
    just the header of ``columns``."""
    rows = list(rows)
    columns = list(columns)
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return out.getvalue()


def finding_totals(conn: Connection) -> dict[str, int]:
    """Findings by rule (operators' quick look; not suppressed, no dimensions)."""
    return dict(conn.execute(select(F.c.rule, func.count()).group_by(F.c.rule)).all())


def by_month(values: Iterable[FindingRow]) -> dict[str, int]:
    """Findings per month."""
    out: defaultdict[str, int] = defaultdict(int)
    for f in values:
        out[f.month] += 1
    return dict(out)
