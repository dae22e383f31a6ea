"""Patients' feedback about their care, and the de-identified theme counts reviewers see.

A patient's feedback is a QuestionnaireResponse to the shipped Questionnaire
``register/data/feedback/care-feedback.json`` (its ``theme`` item's answer options are the coded
themes, tuned in that file; ``comment`` is the patient's words). The response is written through
the FHIR API as the patient, so it sits in their own record. The improvement review sees only
:func:`theme_counts`: counts by theme and month, fewer than ``SMALL`` shown as "<5", never the
comment, the patient or the resource.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, select

from register.schema import resource_table as R

QUESTIONNAIRE_FILE = Path(__file__).parent / "data" / "feedback" / "care-feedback.json"
SMALL = 5
MAX_COMMENT = 1000


@cache
def questionnaire() -> dict[str, Any]:
    """The shipped feedback Questionnaire."""
    return dict(orjson.loads(QUESTIONNAIRE_FILE.read_bytes()))


def themes() -> dict[str, dict[str, str]]:
    """The coded themes a patient can choose (code -> coding), in the file's order."""
    [theme] = [i for i in questionnaire()["item"] if i["linkId"] == "theme"]
    return {o["valueCoding"]["code"]: o["valueCoding"] for o in theme["answerOption"]}


def response_for(patient_id: str, theme: str, comment: str) -> dict[str, Any]:
    """The QuestionnaireResponse recording one piece of feedback (``theme`` a known code)."""
    items: list[dict[str, Any]] = [
        {"linkId": "theme", "answer": [{"valueCoding": themes()[theme]}]}
    ]
    if comment:
        items.append({"linkId": "comment", "answer": [{"valueString": comment}]})
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": questionnaire()["url"],
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authored": datetime.now(UTC).isoformat(timespec="seconds"),
        "author": {"reference": f"Patient/{patient_id}"},
        "item": items,
    }


@dataclass(frozen=True)
class ThemeCount:
    """Feedback on one theme in one month: a count, or "<5" when fewer than five."""

    month: str
    theme: str
    count: str


def _theme_and_month(content: dict[str, Any]) -> tuple[str, str] | None:
    if str(content.get("questionnaire", "")).split("|")[0] != questionnaire()["url"]:
        return None
    codes = [
        (a.get("valueCoding") or {}).get("code")
        for item in content.get("item") or []
        if item.get("linkId") == "theme"
        for a in item.get("answer") or []
    ]
    month = str(content.get("authored", ""))[:7]
    if not codes or codes[0] not in themes() or len(month) != 7:
        return None
    return str(codes[0]), month


def count_themes(responses: Iterable[dict[str, Any]]) -> list[ThemeCount]:
    """Feedback responses counted by month and theme (other QuestionnaireResponses ignored),
    fewer than ``SMALL`` shown as "<5"; sorted by month, then the themes' order in the file."""
    counted: Counter[tuple[str, str]] = Counter()
    for content in responses:
        found = _theme_and_month(content)
        if found is not None:
            counted[found[1], found[0]] += 1
    order = list(themes())
    return [
        ThemeCount(month, theme, str(n) if n >= SMALL else f"<{SMALL}")
        for (month, theme), n in sorted(
            counted.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]))
        )
    ]


def theme_counts(conn: Connection) -> list[ThemeCount]:
    """The review's feedback counts from storage: only the theme code and month of each
    response are used, never who sent it or what they wrote."""
    rows = conn.execute(
        select(R.c.content).where(
            R.c.resource_type == "QuestionnaireResponse", R.c.deleted.is_(False)
        )
    ).scalars()
    return count_themes(orjson.loads(raw) for raw in rows if raw is not None)
