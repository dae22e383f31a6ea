"""OperationOutcome: the shape every error and warning takes on the wire."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

SEVERITIES = ("fatal", "error", "warning", "information")


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue: what went wrong, how badly, and where (FHIRPath)."""

    severity: str
    code: str
    diagnostics: str
    expression: tuple[str, ...] = field(default_factory=tuple)
    details_code: tuple[str, str, str] | None = None  # (system, code, display)

    def as_json(self) -> dict[str, Any]:
        """The issue as a FHIR JSON object."""
        out: dict[str, Any] = {"severity": self.severity, "code": self.code}
        if self.details_code:
            system, code, display = self.details_code
            out["details"] = {"coding": [{"system": system, "code": code, "display": display}]}
        out["diagnostics"] = self.diagnostics
        if self.expression:
            out["expression"] = list(self.expression)
        return out


def error(code: str, diagnostics: str, *expression: str) -> Issue:
    """An error issue, naming the elements at fault."""
    return Issue("error", code, diagnostics, tuple(expression))


def warning(code: str, diagnostics: str, *expression: str) -> Issue:
    """A warning issue (the request succeeded; the client should know this)."""
    return Issue("warning", code, diagnostics, tuple(expression))


def information(diagnostics: str) -> Issue:
    """An informational issue."""
    return Issue("information", "informational", diagnostics)


def operation_outcome(issues: Iterable[Issue], *, id: str | None = None) -> dict[str, Any]:
    """An OperationOutcome resource holding ``issues``."""
    body: dict[str, Any] = {"resourceType": "OperationOutcome"}
    if id:
        body["id"] = id
    items = [issue.as_json() for issue in issues]
    body["issue"] = items or [information("All OK").as_json()]
    return body


def outcome_bytes(issues: Iterable[Issue]) -> bytes:
    """An OperationOutcome serialised as JSON bytes."""
    return orjson.dumps(operation_outcome(issues))


class ResourceInvalid(Exception):
    """A resource failed validation; ``issues`` say which elements and why."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("; ".join(issue.diagnostics for issue in issues))
        self.issues = issues
