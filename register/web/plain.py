"""FHIR values in plain words for people: concepts, dates, quantities, names."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def concept(value: Any) -> str:
    """The text a person reads for a CodeableConcept, Coding or reference (or '' if none)."""
    if isinstance(value, list):
        return ", ".join(filter(None, (concept(v) for v in value)))
    if not isinstance(value, Mapping):
        return "" if value is None else str(value)
    if value.get("text"):
        return str(value["text"])
    if value.get("display"):
        return str(value["display"])
    for coding in value.get("coding") or []:
        if isinstance(coding, Mapping) and (coding.get("display") or coding.get("code")):
            return str(coding.get("display") or coding.get("code"))
    if value.get("code"):
        return str(value["code"])
    return ""


def _parse(value: Any) -> datetime | date | None:
    if isinstance(value, datetime | date):
        return value
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    try:
        if len(text) == 4:
            return date(int(text), 1, 1)
        if len(text) == 7:
            return date(int(text[:4]), int(text[5:7]), 1)
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def day(value: Any) -> str:
    """``2025-03-12...`` as ``12 March 2025`` (partial dates as far as they go)."""
    if isinstance(value, str) and len(value) == 4 and value.isdigit():
        return value
    if isinstance(value, str) and len(value) == 7:
        parsed = _parse(value)
        return f"{_MONTHS[parsed.month - 1]} {parsed.year}" if parsed else value
    parsed = _parse(value)
    if parsed is None:
        return "" if value is None else str(value)
    return f"{parsed.day} {_MONTHS[parsed.month - 1]} {parsed.year}"


def moment(value: Any) -> str:
    """A date and time as ``12 March 2025 at 14:05`` (UTC as stored)."""
    parsed = _parse(value)
    if isinstance(parsed, datetime):
        return f"{day(parsed)} at {parsed:%H:%M}"
    return day(value)


def quantity(value: Any) -> str:
    """A Quantity as ``48 mmol/mol``."""
    if not isinstance(value, Mapping) or value.get("value") is None:
        return ""
    unit = value.get("unit") or value.get("code") or ""
    number = value["value"]
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    return f"{number} {unit}".strip()


def human_name(resource: Mapping[str, Any]) -> str:
    """The first name of a Patient or Practitioner as ``Given Family``."""
    for name in resource.get("name") or []:
        if name.get("text"):
            return str(name["text"])
        parts = [*(name.get("given") or []), name.get("family") or ""]
        text = " ".join(p for p in parts if p)
        if text:
            return text
    return ""


def sortable(value: Any) -> str:
    """A string that sorts dates of any precision in time order ('' sorts first)."""
    parsed = _parse(value)
    if parsed is None:
        return ""
    return parsed.isoformat()
