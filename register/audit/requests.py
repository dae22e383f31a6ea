"""Auditing every FHIR request: one AuditEvent per interaction, granted or refused.

The FHIR dispatcher hands each routed request to :func:`audited`, which runs it with a fresh
:class:`~register.audit.trail.Trail` and records its event before the response leaves:

- a write records its event inside its own transaction (:func:`append_in_write`, called by
  ``register.api.deps.in_write`` just before commit), so the change and its event commit or
  roll back together;
- everything else (reads, searches, operations, and every refused or failed request) hands its
  event to the group-commit writer (:class:`register.audit.writer.AuditWriter`) and waits until
  the batch holding it is committed. If the log cannot be written the request is answered 503
  and its data is not sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from auth.policy import FhirInteraction
from fhir_adapters.json_body import MalformedBody
from fhir_adapters.operation_outcome import error
from register.audit import trail as trails
from register.audit.chain import PreparedEvent
from register.audit.events import rest_event
from register.audit.recorder import append_events
from register.audit.writer import AuditUnavailable
from register.errors import FhirError

if TYPE_CHECKING:
    from register.access_request import RequestAccess
    from register.api.dispatch import Route

log = logging.getLogger("register.audit")
_QUERIED = ("search-type", "search-compartment", "history-type", "history-system")
_CONDITIONAL = ("create", "update", "delete")


def _status_of(exc: BaseException) -> tuple[int, str | None]:
    if isinstance(exc, FhirError):
        texts = [i.diagnostics for i in exc.issues if getattr(i, "diagnostics", None)]
        return exc.status, (texts[0] if texts else None)
    if isinstance(exc, MalformedBody):
        return 400, "malformed body"
    if type(exc).__name__ == "BodyTooLarge":
        return 413, "body too large"
    return 500, type(exc).__name__


def _target(route: Route, params: dict[str, str]) -> str | None:
    rtype = params.get("resource_type") or params.get("compartment")
    rid = params.get("resource_id") or params.get("compartment_id")
    if rtype and rid and not rid.startswith("$"):
        return f"{rtype}/{rid}"
    return None


def _interaction(route: Route, params: dict[str, str], access: RequestAccess | None) -> str:
    """The interaction's code: the one the access gate admitted, when it got that far."""
    if access is not None:
        return _CODES[access.interaction]
    from register.access_gate import interaction_of

    return _CODES[interaction_of(route.interaction, params)[0]]


_CODES = {interaction: interaction.value for interaction in FhirInteraction}
"""Each interaction's code as a plain string (an enum member's ``value`` is a slow lookup)."""


def _event(
    request: Request,
    route: Route,
    params: dict[str, str],
    trail: trails.Trail,
    status: int,
    detail: str | None,
) -> PreparedEvent:
    state = request.scope["state"]  # the dict behind request.state, read without its wrapper
    access = state.get("access")
    principal = access.principal if access is not None else state.get("principal")
    query = None
    if route.interaction in _QUERIED:
        path = route.template.format(**params)[len(route.prefix) :].lstrip("/")
        query = f"{path}?{request.url.query}" if request.url.query else path
    elif route.level == "type" and route.interaction in _CONDITIONAL:
        # a conditional create, update or delete: its criteria are a search (an NHS number...)
        criteria = (
            request.headers.get("if-none-exist")
            if route.interaction == "create"
            else request.url.query
        )
        if criteria:
            query = f"{params.get('resource_type', '')}?{criteria}"
    client = request.scope.get("client")
    return rest_event(
        interaction=trail.interaction or _interaction(route, params, access),
        status=status,
        principal=principal,
        break_glass=access.break_glass if access is not None else None,
        trail=trail,
        target=_target(route, params),
        query=query,
        request_id=state.get("request_id"),
        address=client[0] if client else None,
        detail=detail,
        encounter_window_days=access.config.encounter_window_days if access else 30,
    )


async def audited(
    request: Request,
    route: Route,
    params: dict[str, str],
    call: Callable[[], Awaitable[Response]],
) -> Response | AuditedResponse:
    """Run the request (``call``: the gate, then the handler) and record its audit event before
    the response is sent (see :class:`AuditedResponse`). Refusals and errors are recorded too,
    then re-raised."""
    settings = request.app.state.settings
    if not settings.audit_enabled:
        return await call()
    trail, opened = trails.enter()
    try:
        # The closure refers to the trail that holds it: the cycle is broken once the handler
        # is done, so the request's objects are freed when it ends, not by the cycle collector.
        trail.event_for = lambda status: _event(request, route, params, trail, status, None)
        try:
            response = await call()
        except Exception as exc:  # refused or failed: recorded too, then answered as before
            await _record_failure(request, route, params, trail, exc)
            raise
        finally:
            trail.event_for = None
        if trail.recorded:  # a write: its event committed with it
            return response
        event = _event(request, route, params, trail, response.status_code, None)
        return AuditedResponse(response, request.app.state.audit.submit(event))
    finally:
        trails.leave(opened)


async def _record_failure(
    request: Request,
    route: Route,
    params: dict[str, str],
    trail: trails.Trail,
    exc: BaseException,
) -> None:
    if trail.recorded:
        return
    status, detail = _status_of(exc)
    try:
        await request.app.state.audit.record(_event(request, route, params, trail, status, detail))
    except AuditUnavailable:
        log.error("audit event of a refused request could not be recorded")


def append_in_write(conn: Connection) -> None:
    """Inside a write transaction, just before it commits: append the request's event (and any
    events that waited for it, such as a break-glass start) to the chain."""
    trail = trails.current()
    if trail is None:
        return
    events = list(trail.pending)
    trail.pending.clear()
    if trail.event_for is not None and not trail.recorded:
        events.append(trail.event_for(200))
    append_events(conn, events)


def committed() -> None:
    """The write transaction holding the request's event has committed."""
    trail = trails.current()
    if trail is not None and trail.event_for is not None:
        trail.recorded = True


def record_now(conn: Connection, event: PreparedEvent) -> None:
    """Record ``event`` in the caller's transaction: at its end when that transaction is a
    request's write (the chain head is locked last, after every row the write locks), at once
    otherwise (the command line, a break-glass grant recorded before a read)."""
    trail = trails.current()
    if trail is not None and trail.deferring:
        trail.pending.append(event)
    else:
        append_events(conn, [event])


class AuditedResponse:
    """A response that is sent only once its request's audit event is committed.

    The request's handler has returned by the time this waits, so its frames and the objects
    they held are freed while the event commits (waiting inside the handler kept every waiting
    request's whole call stack alive). If the event cannot be committed the response is not sent:
    the client gets a 503 OperationOutcome instead.
    """

    def __init__(self, response: Response, committed: asyncio.Future[None]) -> None:
        self.response = response
        self.committed = committed
        self.status_code = response.status_code

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.committed
        except AuditUnavailable:
            raise _unavailable() from None
        await self.response(scope, receive, send)


def _unavailable() -> FhirError:
    return FhirError(
        503, error("transient", "The access could not be recorded; it was not served.")
    )
