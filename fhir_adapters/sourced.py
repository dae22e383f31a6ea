"""A resource as the register holds it: the body, the organisation that recorded it, and when.

$populate and $summary never read the database. The server hands them :class:`Sourced` records
through a ``fetch`` callable that runs the register's own search under the requester's access
rules, so whatever the policy withholds never reaches these builders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"


@dataclass(frozen=True, slots=True)
class Sourced:
    """One visible resource with the facts the register keeps beside it.

    ``org`` is the ODS code of the organisation that recorded it (``resource.author_org``);
    ``recorded`` is when the register received it (the version's ``last_updated``).
    """

    resource: Mapping[str, Any]
    org: str | None = None
    recorded: datetime | None = None
    # Worked out once: the builders sort and compare by it many times per document (measured).
    _when: datetime | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_when", clinical_date(self.resource) or self.recorded)

    @property
    def reference(self) -> str:
        """``Type/id`` of the resource."""
        return f"{self.resource.get('resourceType')}/{self.resource.get('id')}"

    @property
    def when(self) -> datetime | None:
        """The date the record speaks for (its clinical date), else when it was recorded."""
        return self._when


# fetch(resource_type, [(name, value), ...]) -> the visible matches, as a FHIR search would give.
Fetch = Callable[[str, Sequence[tuple[str, str]]], Sequence[Sourced]]

# Where each type keeps the date its content is true for, in order of preference.
_DATE_ELEMENTS = (
    "effectiveDateTime",
    "effectivePeriod",
    "effectiveInstant",
    "performedDateTime",
    "performedPeriod",
    "occurrenceDateTime",
    "authoredOn",
    "recordedDate",
    "onsetDateTime",
    "onsetPeriod",
    "lastOccurrence",
    "dateAsserted",
    "issued",
    "recorded",
    "period",
    "date",
)


def parse_instant(value: Any) -> datetime | None:
    """A FHIR date, dateTime or instant as an aware datetime (partial dates at their start, UTC)."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    text = value.replace("Z", "+00:00")
    if len(text) == 4:
        text += "-01-01"
    elif len(text) == 7:
        text += "-01"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def clinical_date(resource: Mapping[str, Any]) -> datetime | None:
    """When a clinical record's content holds (effective, performed, authored, onset, ...)."""
    for name in _DATE_ELEMENTS:
        value = resource.get(name)
        if isinstance(value, dict):  # Period: the end when it has ended, else the start
            value = value.get("end") or value.get("start")
        moment = parse_instant(value)
        if moment is not None:
            return moment
    return None


def organisation_reference(org: str | None, names: Mapping[str, str] | None = None) -> dict:
    """A logical Reference to an organisation by ODS code, with its name when known."""
    if not org:
        return {"display": "unknown organisation"}
    reference: dict[str, Any] = {"identifier": {"system": ODS_SYSTEM, "value": org}}
    name = (names or {}).get(org)
    if name:
        reference["display"] = name
    return reference


def fhir_datetime(moment: datetime) -> str:
    """A FHIR dateTime for ``moment`` (seconds precision, UTC offset kept)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
