"""The gate in front of every FHIR route: who is asking, and may this request start?

The FHIR dispatcher calls :func:`guard` for every route that is not public (``/metadata`` is),
before the route's handler runs. The guard

1. reads the bearer token (``401`` with ``WWW-Authenticate: Bearer`` if there is none, or it is
   refused: bad signature, ``alg: none``, expired, wrong audience or issuer, unknown key...);
2. works out the FHIR interaction and resource type from the route;
3. asks the policy (``auth.policy.admit``, memoised per token) whether the request may start
   (``403`` if the role or scopes do not allow it);
4. handles a break-glass claim (``X-Break-Glass-Reason``, or a BTG/ETREAT token): only clinicians
   may; for a read, the grant for the patient in question is recorded before the read runs;
5. leaves the request's :class:`~register.access_request.RequestAccess` in ``request.state``,
   where :func:`register.api.deps.context` picks it up for the handler.

Handlers never check access themselves; reads apply the visibility in storage, writes are checked
in the write steps, Bundle entries in :mod:`register.transactions` via
:func:`admit_entry`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from auth.errors import TokenError, TokenErrorReason
from auth.policy import FhirInteraction, Refusal, break_glass_claim
from fhir_adapters.operation_outcome import error
from register.access_breakglass import (
    ensure_grant,
    grant_due,
    patient_in_search,
    patient_of_resource,
)
from register.access_request import RequestAccess, refusal_error
from register.api.deps import base_url
from register.context import RequestContext
from register.errors import FhirError

if TYPE_CHECKING:
    from auth.principal import Principal
    from register.access_service import AccessService
    from register.api.dispatch import Route

_ROUTE_INTERACTIONS: dict[str, FhirInteraction] = {
    "transaction": FhirInteraction.TRANSACTION,
    "batch": FhirInteraction.BATCH,
    "history-system": FhirInteraction.HISTORY_SYSTEM,
    "history-type": FhirInteraction.HISTORY_TYPE,
    "history-instance": FhirInteraction.HISTORY_INSTANCE,
    "search-type": FhirInteraction.SEARCH,
    "search-compartment": FhirInteraction.SEARCH,
    "create": FhirInteraction.CREATE,
    "update": FhirInteraction.UPDATE,
    "patch": FhirInteraction.PATCH,
    "delete": FhirInteraction.DELETE,
    "read": FhirInteraction.READ,
    "vread": FhirInteraction.VREAD,
    "operation": FhirInteraction.OPERATION,
    "capabilities": FhirInteraction.CAPABILITIES,
}


def interaction_of(
    route_interaction: str, params: dict[str, str]
) -> tuple[FhirInteraction, str | None]:
    """The FHIR interaction and resource type a routed request performs."""
    resource_type = params.get("resource_type")
    resource_id = params.get("resource_id", "")
    if route_interaction == "search-compartment":
        # /Patient/{id}/{type}: a search of that type; /Patient/{id}/$name: an operation on it
        if resource_type is not None and resource_type.startswith("$"):
            return FhirInteraction.OPERATION, params.get("compartment")
        return FhirInteraction.SEARCH, resource_type
    if resource_type is not None and resource_type.startswith("$"):
        return FhirInteraction.OPERATION, None  # /$name: a system-level operation
    if resource_id.startswith("$") or route_interaction == "operation":
        return FhirInteraction.OPERATION, resource_type
    return _ROUTE_INTERACTIONS[route_interaction], resource_type


def _headers(request: Request) -> tuple[str | None, str | None]:
    authorization = reason = None
    for name, value in request.scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"x-break-glass-reason":
            reason = value.decode("utf-8", "replace")
    return authorization, reason


_UNAUTHENTICATED = Refusal(401, "This request needs a bearer token (Authorization: Bearer ...).")


async def authenticate(request: Request) -> tuple[Principal, str]:
    """The verified principal and bearer token of a request, or the 401/503 FhirError that
    answers it. The FHIR routes get it through :func:`guard`; other APIs that need a token
    (the improvement review) call it and then ask the policy themselves."""
    authorization, _ = _headers(request)
    return await _authenticate(request, authorization)


async def _authenticate(request: Request, authorization: str | None) -> tuple[Principal, str]:
    service: AccessService = request.app.state.access
    if authorization is None:
        raise refusal_error(_UNAUTHENTICATED)
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise refusal_error(
            Refusal(401, "The Authorization header must be 'Bearer <token>'."),
            token_error="invalid_request",
        )
    endpoints = service.endpoints(base_url(request))
    principal = endpoints.tokens.cached(token)
    if principal is None:
        try:
            principal = await run_in_threadpool(endpoints.tokens.principal, token)
        except TokenError as exc:
            if exc.reason is TokenErrorReason.KEYS_UNAVAILABLE:
                raise FhirError(
                    503, error("transient", "The token's signing keys cannot be fetched now.")
                ) from None
            raise refusal_error(
                Refusal(401, f"The bearer token was refused ({exc.reason.value})."),
                token_error="invalid_token",
            ) from None
    request.state.principal = principal  # named in the audit event, even if refused below
    return principal, token


async def guard(request: Request, route: Route, params: dict[str, str]) -> None:
    """Authenticate and admit the request, or raise the FhirError that answers it."""
    service: AccessService = request.app.state.access
    authorization, reason_header = _headers(request)
    principal, token = await _authenticate(request, authorization)
    interaction, resource_type = interaction_of(route.interaction, params)
    decided = service.access_for(token, principal, interaction, resource_type)
    if isinstance(decided, Refusal):
        raise refusal_error(decided)
    access = decided
    if reason_header is not None or principal.break_glass_reason is not None:
        claim = break_glass_claim(principal, reason_header, service.config)
        if isinstance(claim, Refusal):
            raise refusal_error(claim)
        access = access.with_break_glass(claim)
        if claim is not None and not interaction.writes:
            await _grant_for_read(request, access, resource_type, params)
    request.state.access = access


async def _grant_for_read(
    request: Request, access: RequestAccess, resource_type: str | None, params: dict[str, str]
) -> None:
    """Record the break-glass grant for the patient a read is about, before the read runs."""
    claim = access.break_glass
    assert claim is not None
    db = request.app.state.db
    resource_id = params.get("compartment_id") or params.get("resource_id")
    query = list(request.query_params.multi_items())
    request_id = getattr(request.state, "request_id", None)

    window = access.config.encounter_window_days
    compartment = params.get("compartment_id")

    def work() -> None:
        if resource_type is None:
            return
        with db.read() as conn:  # most requests of a running override need no write
            if compartment:
                patient = compartment if params.get("compartment") == "Patient" else None
            elif resource_id and not resource_id.startswith("$"):
                patient = patient_of_resource(conn, resource_type, resource_id)
            else:
                patient = patient_in_search(resource_type, query)
            if patient is None or not grant_due(
                conn, access.principal, claim, patient, encounter_window_days=window
            ):
                return
        with db.write() as conn:
            ensure_grant(
                conn,
                access.principal,
                claim,
                patient,
                encounter_window_days=window,
                request_id=request_id,
            )

    await run_in_threadpool(work)


# --- Bundle entries ----------------------------------------------------------------------------


def get_interaction(url: str) -> tuple[FhirInteraction, str | None]:
    """The interaction and type of a GET inside a Bundle (``Patient/1``, ``Observation?x``)."""
    path = url.partition("?")[0]
    parts = [p for p in path.split("/") if p]
    if not parts or parts == ["_history"]:
        return FhirInteraction.HISTORY_SYSTEM, None
    resource_type = parts[0]
    if len(parts) == 1:
        return FhirInteraction.SEARCH, resource_type
    if len(parts) == 2:
        if parts[1] == "_history":
            return FhirInteraction.HISTORY_TYPE, resource_type
        if parts[1].startswith("$"):
            return FhirInteraction.OPERATION, resource_type
        return FhirInteraction.READ, resource_type
    if len(parts) == 3 and parts[2] == "_history":
        return FhirInteraction.HISTORY_INSTANCE, resource_type
    if len(parts) == 4 and parts[2] == "_history":
        return FhirInteraction.VREAD, resource_type
    if len(parts) == 3 and resource_type == "Patient" and not parts[2].startswith("$"):
        return FhirInteraction.SEARCH, parts[2]  # a compartment search
    return FhirInteraction.OPERATION, resource_type


_ENTRY_METHODS = {
    "POST": FhirInteraction.CREATE,
    "PUT": FhirInteraction.UPDATE,
    "PATCH": FhirInteraction.PATCH,
    "DELETE": FhirInteraction.DELETE,
}


def admit_entry(ctx: RequestContext, method: str, url: str) -> RequestContext:
    """Admit one entry of a transaction or batch: the context it runs in, or a 401/403
    FhirError. A GET entry gets the visibility of the read it performs."""
    access = ctx.access
    if access is None:
        return ctx
    path = url.partition("?")[0]
    if method in ("GET", "HEAD"):
        interaction, resource_type = get_interaction(url)
        access.admit(interaction, resource_type)
        return replace(ctx, visibility=access.visibility_for(interaction, resource_type))
    parts = [p for p in path.split("/") if p]
    access.admit(_ENTRY_METHODS[method], parts[0] if parts else None)
    return ctx
