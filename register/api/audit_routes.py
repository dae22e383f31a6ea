"""The HTTP side of the audit log: ``AuditEvent`` read and search, the patient's access log and
the privacy officer's review queue. Thin: parse, ask the policy, call the service modules
(:mod:`register.audit.queries`, :mod:`register.audit.access_log`,
:mod:`register.audit.review_queue`), shape the response.

- ``GET /fhir/AuditEvent``, ``GET /fhir/AuditEvent/{id}``: what :func:`auth.policy.audit_sight`
  shows the requester. Creating, changing or deleting an AuditEvent is refused for everyone
  (``auth.policy.admit``: 403 with an OperationOutcome).
- ``GET /fhir/Patient/{id}/$access-log``: who looked at the record (the patient's own token),
  JSON with a plain-words ``text`` per entry.
- ``GET /fhir/AuditEvent/$review-queue``, ``POST /fhir/AuditEvent/{id}/$review``: the review queue
  (privacy officers).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth.policy import Refusal, access_log_refusal, audit_sight, review_refusal
from fhir_adapters.operation_outcome import error
from register import operations
from register.access_request import refusal_error
from register.api.deps import context, in_read, in_write, json_body, settings_of
from register.api.negotiation import check_body_type, response_format
from register.api.responses import fhir_response
from register.audit import queries
from register.audit.access_log import access_log
from register.audit.review_queue import ReviewError, list_queue, mark_reviewed
from register.errors import FhirError, bad_request, not_found


def _principal(request: Request) -> Any:
    access = getattr(request.state, "access", None)
    return access.principal if access is not None else None


def _refuse(refusal: Refusal | None) -> None:
    if refusal is not None:
        raise refusal_error(refusal)


def _count(request: Request, default: int | None = None) -> int:
    settings = settings_of(request)
    value = request.query_params.get("_count")
    if value is None:
        return default or settings.default_page_size
    if not value.isdigit():
        raise bad_request("_count must be a whole number.", "_count")
    return max(1, min(int(value), settings.max_page_size))


def _position(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise bad_request(f"{name} must be a position from a next link.", name)
    return int(value)


async def search(request: Request, resource_type: str = "AuditEvent") -> Response:
    """GET /AuditEvent?params (or POST /AuditEvent/_search with a form): the events the
    requester may see, newest first."""
    fmt = response_format(request)
    ctx = context(request)
    sight = audit_sight(_principal(request))
    params = list(request.query_params.multi_items())
    if request.method == "POST":
        check_body_type(request, form=True)
        form = await request.form()
        params += [(k, str(v)) for k, v in form.multi_items()]
    count = _count(request)
    body = await in_read(
        request,
        lambda conn: queries.search_bundle(conn, sight, params, base_url=ctx.base_url, count=count),
    )
    return fhir_response(body, fmt=fmt)


async def read(request: Request, resource_type: str, resource_id: str) -> Response:
    """GET /AuditEvent/{id} (or a type-level operation, ``/AuditEvent/$name``)."""
    if resource_id.startswith("$"):
        from register.api.fhir_routes import read as generic_read

        return await generic_read(request, resource_type, resource_id)
    fmt = response_format(request)
    sight = audit_sight(_principal(request))
    body = await in_read(request, lambda conn: queries.read_event(conn, sight, resource_id))
    if body is None:
        raise not_found(f"AuditEvent/{resource_id[:64]} is not known.")
    return fhir_response(body, fmt=fmt)


async def access_log_operation(
    request: Request, resource_type: str | None, resource_id: str | None
) -> Response:
    """GET /Patient/{id}/$access-log: accesses to the record by others, newest first."""
    assert resource_id is not None
    _refuse(access_log_refusal(_principal(request), resource_id))
    count = _count(request, 20)
    before = _position(request, "_before")
    page = await in_read(
        request, lambda conn: access_log(conn, resource_id, count=count, before=before)
    )
    ctx = context(request)
    body: dict[str, Any] = {
        "patient": f"Patient/{resource_id}",
        "entries": [entry.as_json() for entry in page.entries],
    }
    if page.next_before is not None:
        body["next"] = (
            f"{ctx.base_url}/Patient/{resource_id}/$access-log?_count={count}"
            f"&_before={page.next_before}"
        )
    return JSONResponse(body)


async def review_queue_operation(
    request: Request, resource_type: str | None, resource_id: str | None
) -> Response:
    """GET /AuditEvent/$review-queue?status=open|reviewed|all&category=&_count=&_after=."""
    _refuse(review_refusal(_principal(request)))
    count = _count(request, 50)
    after = _position(request, "_after")
    status = request.query_params.get("status", "open")
    category = request.query_params.get("category")

    def work(conn: Any) -> Any:
        try:
            return list_queue(conn, status=status, category=category, count=count, after=after)
        except ReviewError as exc:
            raise _review_error(exc) from None

    page = await in_read(request, work)
    ctx = context(request)
    body: dict[str, Any] = {"items": [item.as_json() for item in page.items]}
    if page.next_after is not None:
        body["next"] = (
            f"{ctx.base_url}/AuditEvent/$review-queue?status={status}&_count={count}"
            f"&_after={page.next_after}" + (f"&category={category}" if category else "")
        )
    return JSONResponse(body)


def _review_error(exc: ReviewError) -> FhirError:
    """The OperationOutcome answer to a review or queue request that cannot be honoured."""
    element = (exc.element,) if exc.element else ()
    return FhirError(exc.status, error(exc.code, str(exc), *element))


async def review_operation(
    request: Request, resource_type: str | None, resource_id: str | None
) -> Response:
    """POST /AuditEvent/{id}/$review with ``{"verdict": "appropriate"|"inappropriate",
    "note": "..."}``: mark the queue entry of that event reviewed."""
    assert resource_id is not None
    principal = _principal(request)
    _refuse(review_refusal(principal))
    body = await json_body(request)
    if not isinstance(body, dict):
        raise bad_request('Send {"verdict": ..., "note": ...}.')
    verdict, note = body.get("verdict"), body.get("note")
    for name, value in (("verdict", verdict), ("note", note)):
        if not isinstance(value, str):
            raise bad_request(f"{name} must be a string.", name)
    request_id = getattr(request.state, "request_id", None)

    def work(conn: Any) -> Any:
        try:
            return mark_reviewed(
                conn,
                resource_id,
                verdict=verdict,
                note=note,
                reviewer=principal,
                request_id=request_id,
            )
        except ReviewError as exc:
            raise _review_error(exc) from None

    item = await in_write(request, work)
    return JSONResponse(item.as_json())


operations.register(
    operations.Operation(
        name="access-log",
        levels=("instance",),
        resource_types=("Patient",),
        handler=access_log_operation,
        methods=("GET",),
        documentation=(
            "Who looked at this record: accesses by others, newest first, in plain words "
            "(the patient's own token). _count, _before."
        ),
    )
)
operations.register(
    operations.Operation(
        name="review-queue",
        levels=("type",),
        resource_types=("AuditEvent",),
        handler=review_queue_operation,
        methods=("GET",),
        documentation=(
            "Privacy officers: break-glass starts and accesses without a care relationship "
            "waiting for review (status=open|reviewed|all, category, _count, _after)."
        ),
    )
)
operations.register(
    operations.Operation(
        name="review",
        levels=("instance",),
        resource_types=("AuditEvent",),
        handler=review_operation,
        methods=("POST",),
        documentation=(
            'Privacy officers: mark an AuditEvent\'s queue entry reviewed: {"verdict": '
            '"appropriate"|"inappropriate", "note": "..."}.'
        ),
    )
)
