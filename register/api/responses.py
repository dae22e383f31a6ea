"""Building FHIR HTTP responses from stored bytes."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response

from fhir_adapters.operation_outcome import Issue, outcome_bytes
from register.api.negotiation import Format, Prefer
from register.context import RequestContext
from register.http_dates import http_date
from register.storage import Version


def fhir_response(
    body: bytes | None,
    *,
    fmt: Format,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A response carrying FHIR JSON bytes (or nothing)."""
    if body is None:
        return Response(status_code=status, headers=dict(headers or {}))
    return Response(
        content=fmt.render(body),
        status_code=status,
        headers=dict(headers or {}),
        media_type=fmt.content_type,
    )


def version_headers(version: Version, ctx: RequestContext, *, location: bool) -> dict[str, str]:
    """ETag, Last-Modified and (after a write) Location for a version."""
    headers = {
        "ETag": version.etag,
        "Last-Modified": http_date(version.last_updated),
    }
    if location:
        headers["Location"] = ctx.url(
            f"{version.resource_type}/{version.resource_id}/_history/{version.version_id}"
        )
    return headers


def write_response(
    version: Version,
    status: int,
    *,
    ctx: RequestContext,
    fmt: Format,
    pref: Prefer,
    warnings: list[Issue] | None = None,
) -> Response:
    """The answer to a create/update/patch, shaped by ``Prefer: return=``."""
    headers = version_headers(version, ctx, location=True)
    if warnings:
        # The resource stays the body (clients expect it); each warning also travels as an HTTP
        # Warning header, and in full as an OperationOutcome with Prefer: return=OperationOutcome.
        headers["Warning"] = ", ".join(_warning_header(w) for w in warnings[:5])
    if pref.minimal:
        return fhir_response(None, fmt=fmt, status=status, headers=headers)
    if pref.return_ == "OperationOutcome":
        return fhir_response(outcome_bytes(warnings or []), fmt=fmt, status=status, headers=headers)
    return fhir_response(version.content, fmt=fmt, status=status, headers=headers)


def _warning_header(issue: Issue) -> str:
    text = issue.diagnostics.replace("\\", "").replace('"', "'")
    text = text.encode("ascii", "replace").decode()[:400]
    return f'299 careregister "{text}"'
