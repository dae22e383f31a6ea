"""Errors the service raises; one handler turns each into an OperationOutcome response."""

from __future__ import annotations

from collections.abc import Mapping

from fhir_adapters.operation_outcome import Issue, error


class FhirError(Exception):
    """A request that cannot be honoured: an HTTP status and the issues to report."""

    def __init__(
        self,
        status: int,
        issues: list[Issue] | Issue,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.issues = issues if isinstance(issues, list) else [issues]
        super().__init__("; ".join(issue.diagnostics for issue in self.issues))
        self.status = status
        self.headers = dict(headers or {})


def bad_request(diagnostics: str, *expression: str, code: str = "invalid") -> FhirError:
    """400: the request itself is wrong."""
    return FhirError(400, error(code, diagnostics, *expression))


def not_found(diagnostics: str = "Resource not found.") -> FhirError:
    """404: nothing there (or nothing the requester may know is there)."""
    return FhirError(404, error("not-found", diagnostics))


def gone(resource_type: str, resource_id: str, version_id: int) -> FhirError:
    """410: the resource was deleted; its history keeps it."""
    return FhirError(
        410,
        error("deleted", f"{resource_type}/{resource_id} was deleted (version {version_id})."),
        headers={"ETag": f'W/"{version_id}"'},
    )


def precondition_failed(diagnostics: str) -> FhirError:
    """412: a version or conditional precondition did not hold."""
    return FhirError(412, error("conflict", diagnostics))


def conflict(diagnostics: str) -> FhirError:
    """409: the write collided with another."""
    return FhirError(409, error("conflict", diagnostics))
