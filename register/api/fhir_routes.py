"""The FHIR REST API under ``/fhir``: a flat table of interactions, each a few lines.

Routes parse the request, call :mod:`register.interactions` / :mod:`register.reads` inside a
transaction, and shape the response. They know nothing of SQL or policy. The same table feeds
the CapabilityStatement, so what is advertised is what is routed.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fhir_adapters.capability import capability_statement
from register import access_gate, interactions, operations, reads, search, transactions
from register.api import audit_routes
from register.api.deps import context, in_read, in_write, json_body, settings_of
from register.api.dispatch import FhirDispatcher, Route
from register.api.negotiation import check_body_type, prefer, response_format
from register.api.responses import fhir_response, version_headers, write_response
from register.audit.requests import audited
from register.audit.trail import note_interaction
from register.errors import bad_request
from register.search_capabilities import searchable_parameters


def _params(request: Request) -> list[tuple[str, str]]:
    return list(request.query_params.multi_items())


def _limits(request: Request) -> dict[str, int]:
    settings = settings_of(request)
    return {"default_count": settings.default_page_size, "max_count": settings.max_page_size}


def _search_options(request: Request) -> search.SearchOptions:
    limits = _limits(request)
    return search.SearchOptions(
        limits["default_count"], limits["max_count"], prefer(request).handling == "strict"
    )


# --- system level ------------------------------------------------------------------------------


async def capabilities(request: Request) -> Response:
    """GET /metadata: the CapabilityStatement, generated from this module's tables."""
    fmt = response_format(request)
    ctx = context(request)
    settings = settings_of(request)
    body = capability_statement(
        base_url=ctx.base_url,
        interactions=[(r.interaction, r.level) for r in ROUTES],
        search_parameters=searchable_parameters(),
        operations=[
            (op.name, op.levels, op.resource_types, op.definition, op.documentation)
            for op in operations.all_operations()
        ],
        max_page_size=settings.max_page_size,
        default_page_size=settings.default_page_size,
    )
    return fhir_response(body, fmt=fmt)


async def transaction_or_batch(request: Request) -> Response:
    """POST / : a transaction (all or nothing) or batch (each entry alone) Bundle."""
    fmt = response_format(request)
    pref = prefer(request)
    ctx = context(request)
    bundle = await json_body(request)
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise bad_request("POST to the base URL takes a transaction or batch Bundle.")
    kind = bundle.get("type")
    if kind not in ("transaction", "batch"):
        raise bad_request(
            "Only transaction and batch Bundles can be posted to the base URL; "
            "post other Bundles to /Bundle.",
            "Bundle.type",
        )
    note_interaction(kind)  # POST / and POST "" route alike; the Bundle says which it is
    run = transactions.run_transaction if kind == "transaction" else transactions.run_batch
    results = await in_write(request, lambda conn: run(conn, ctx, bundle, reads.get))
    body = transactions.response_bundle(f"{kind}-response", results, ctx, prefer=pref.return_)
    return fhir_response(body, fmt=fmt)


async def history_system(request: Request) -> Response:
    """GET /_history."""
    fmt = response_format(request)
    ctx = context(request)
    params = _params(request)
    body = await in_read(
        request, lambda conn: reads.history_bundle(conn, ctx, params, **_limits(request))
    )
    return fhir_response(body, fmt=fmt)


async def system_operation(request: Request, name: str) -> Response:
    """GET|POST /$name."""
    if not name.startswith("$"):
        raise bad_request("Unknown system-level path.")
    op = operations.find(name[1:], "system", None, request.method)
    return await op.handler(request, None, None)


# --- type level --------------------------------------------------------------------------------


async def search_type(request: Request, resource_type: str) -> Response:
    """GET /{type}?params — or a type-level operation when the type is ``$name``."""
    if resource_type.startswith("$"):
        return await system_operation(request, resource_type)
    fmt = response_format(request)
    ctx = context(request)
    interactions.check_type(resource_type)
    params = _params(request)
    options = _search_options(request)
    body = await in_read(
        request, lambda conn: search.search_bundle(conn, ctx, resource_type, params, options)
    )
    return fhir_response(body, fmt=fmt)


async def search_type_post(request: Request, resource_type: str) -> Response:
    """POST /{type}/_search with form-encoded parameters (and any in the URL)."""
    fmt = response_format(request)
    ctx = context(request)
    interactions.check_type(resource_type)
    check_body_type(request, form=True)
    form = await request.form()
    params = _params(request) + [(k, str(v)) for k, v in form.multi_items()]
    options = _search_options(request)
    body = await in_read(
        request, lambda conn: search.search_bundle(conn, ctx, resource_type, params, options)
    )
    return fhir_response(body, fmt=fmt)


async def create(request: Request, resource_type: str) -> Response:
    """POST /{type} (with optional If-None-Exist) — or POST /$name for system operations."""
    if resource_type.startswith("$"):
        return await system_operation(request, resource_type)
    fmt = response_format(request)
    pref = prefer(request)
    ctx = context(request)
    interactions.check_type(resource_type)
    resource = await json_body(request)
    if_none_exist = request.headers.get("if-none-exist")
    result = await in_write(
        request,
        lambda conn: interactions.create(
            conn, ctx, resource, resource_type=resource_type, if_none_exist=if_none_exist
        ),
    )
    return write_response(
        result.version, result.status, ctx=ctx, fmt=fmt, pref=pref, warnings=result.warnings
    )


async def conditional_update(request: Request, resource_type: str) -> Response:
    """PUT /{type}?criteria."""
    fmt = response_format(request)
    pref = prefer(request)
    ctx = context(request)
    interactions.check_type(resource_type)
    query = request.url.query
    if not query:
        raise bad_request("PUT on a type needs search criteria (a conditional update).")
    resource = await json_body(request)
    if_match = request.headers.get("if-match")
    result = await in_write(
        request,
        lambda conn: interactions.conditional_update(
            conn, ctx, resource_type, query, resource, if_match=if_match
        ),
    )
    return write_response(
        result.version, result.status, ctx=ctx, fmt=fmt, pref=pref, warnings=result.warnings
    )


async def conditional_delete(request: Request, resource_type: str) -> Response:
    """DELETE /{type}?criteria: deletes the one match (412 if several)."""
    response_format(request)
    ctx = context(request)
    interactions.check_type(resource_type)
    query = request.url.query
    if not query:
        raise bad_request("DELETE on a type needs search criteria (a conditional delete).")

    def work(conn: Any) -> Any:
        matches = interactions.find_matches(conn, ctx, resource_type, query)
        if len(matches) > 1:
            from register.errors import precondition_failed

            raise precondition_failed(
                f"The conditional delete matched {len(matches)} resources; it must match one."
            )
        if not matches:
            return None
        return interactions.delete(conn, ctx, resource_type, matches[0].resource_id)

    result = await in_write(request, work)
    headers = {"ETag": result.version.etag} if result is not None else {}
    return Response(status_code=204, headers=headers)


async def history_type(request: Request, resource_type: str) -> Response:
    """GET /{type}/_history."""
    fmt = response_format(request)
    ctx = context(request)
    params = _params(request)
    body = await in_read(
        request,
        lambda conn: reads.history_bundle(
            conn, ctx, params, resource_type=resource_type, **_limits(request)
        ),
    )
    return fhir_response(body, fmt=fmt)


# --- instance level ----------------------------------------------------------------------------


async def read(request: Request, resource_type: str, resource_id: str) -> Response:
    """GET /{type}/{id} — or GET /{type}/$name for a type-level operation."""
    if resource_id.startswith("$"):
        op = operations.find(resource_id[1:], "type", resource_type, request.method)
        interactions.check_type(resource_type)
        return await op.handler(request, resource_type, None)
    fmt = response_format(request)
    ctx = context(request)
    version = await in_read(
        request, lambda conn: interactions.read(conn, ctx, resource_type, resource_id), quick=True
    )
    headers = version_headers(version, ctx, location=False)
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and interactions.parse_etag(if_none_match, "If-None-Match") == (
        version.version_id
    ):
        return Response(status_code=304, headers=headers)
    return fhir_response(version.content, fmt=fmt, headers=headers)


async def type_operation_post(request: Request, resource_type: str, name: str) -> Response:
    """POST /{type}/$name."""
    if not name.startswith("$"):
        raise bad_request("POST to this path is not a FHIR interaction.")
    interactions.check_type(resource_type)
    op = operations.find(name[1:], "type", resource_type, request.method)
    return await op.handler(request, resource_type, None)


async def update(request: Request, resource_type: str, resource_id: str) -> Response:
    """PUT /{type}/{id}: update, or create at a client-chosen id."""
    fmt = response_format(request)
    pref = prefer(request)
    ctx = context(request)
    interactions.check_type(resource_type)
    resource = await json_body(request)
    if_match = request.headers.get("if-match")
    result = await in_write(
        request,
        lambda conn: interactions.update(
            conn, ctx, resource_type, resource_id, resource, if_match=if_match
        ),
    )
    return write_response(
        result.version, result.status, ctx=ctx, fmt=fmt, pref=pref, warnings=result.warnings
    )


async def patch(request: Request, resource_type: str, resource_id: str) -> Response:
    """PATCH /{type}/{id} with a JSON Patch document."""
    fmt = response_format(request)
    pref = prefer(request)
    ctx = context(request)
    interactions.check_type(resource_type)
    operations_doc = await json_body(request, patch=True)
    if_match = request.headers.get("if-match")
    result = await in_write(
        request,
        lambda conn: interactions.patch(
            conn, ctx, resource_type, resource_id, operations_doc, if_match=if_match
        ),
    )
    return write_response(
        result.version, result.status, ctx=ctx, fmt=fmt, pref=pref, warnings=result.warnings
    )


async def delete(request: Request, resource_type: str, resource_id: str) -> Response:
    """DELETE /{type}/{id}: a new, deleted version; 204 whether or not there was one."""
    response_format(request)
    ctx = context(request)
    if_match = request.headers.get("if-match")
    result = await in_write(
        request,
        lambda conn: interactions.delete(conn, ctx, resource_type, resource_id, if_match=if_match),
    )
    headers = {"ETag": result.version.etag} if result is not None else {}
    return Response(status_code=204, headers=headers)


async def history_instance(request: Request, resource_type: str, resource_id: str) -> Response:
    """GET /{type}/{id}/_history."""
    fmt = response_format(request)
    ctx = context(request)
    params = _params(request)
    body = await in_read(
        request,
        lambda conn: reads.history_bundle(
            conn,
            ctx,
            params,
            resource_type=resource_type,
            resource_id=resource_id,
            **_limits(request),
        ),
    )
    return fhir_response(body, fmt=fmt)


async def instance_operation(
    request: Request, resource_type: str, resource_id: str, name: str
) -> Response:
    """GET|POST /{type}/{id}/$name."""
    if not name.startswith("$"):
        raise bad_request(f"'{name[:40]}' is neither an operation ($name) nor _history.")
    interactions.check_type(resource_type)
    interactions.check_id(resource_id)
    op = operations.find(name[1:], "instance", resource_type, request.method)
    return await op.handler(request, resource_type, resource_id)


async def search_compartment(
    request: Request, compartment: str, compartment_id: str, resource_type: str
) -> Response:
    """GET /Patient/{id}/{type}?params: a search inside a Patient's compartment.

    The same path shape as an instance operation (``/{type}/{id}/$name``), which it hands on.
    """
    if resource_type.startswith("$"):
        return await instance_operation(request, compartment, compartment_id, resource_type)
    if compartment != "Patient":
        raise bad_request("Only the Patient compartment can be searched.", code="not-supported")
    fmt = response_format(request)
    ctx = context(request)
    interactions.check_id(compartment_id)
    interactions.check_type(resource_type)
    params = _params(request)
    options = _search_options(request)
    body = await in_read(
        request,
        lambda conn: search.search_bundle(
            conn, ctx, resource_type, params, options, compartment=compartment_id
        ),
    )
    return fhir_response(body, fmt=fmt)


async def vread(
    request: Request, resource_type: str, resource_id: str, version_id: str
) -> Response:
    """GET /{type}/{id}/_history/{vid}."""
    fmt = response_format(request)
    ctx = context(request)
    version = await in_read(
        request,
        lambda conn: interactions.vread(conn, ctx, resource_type, resource_id, version_id),
        quick=True,
    )
    return fhir_response(
        version.content, fmt=fmt, headers=version_headers(version, ctx, location=False)
    )


async def _read_or_audit(request: Request, resource_type: str, resource_id: str) -> Response:
    """GET /{type}/{id}: AuditEvents come from the audit log, everything else from storage."""
    if resource_type == "AuditEvent":
        return await audit_routes.read(request, resource_type, resource_id)
    return await read(request, resource_type, resource_id)


# The table. Order matters where paths overlap: literal segments come before parameters.
ROUTES: list[Route] = [
    Route("capabilities", "system", "GET", "/metadata", capabilities, public=True),
    # AuditEvent is served from the audit log (register/api/audit_routes.py), not from storage.
    Route("search-type", "type", "GET", "/AuditEvent", audit_routes.search),
    Route("search-type", "type", "POST", "/AuditEvent/_search", audit_routes.search),
    Route("transaction", "system", "POST", "", transaction_or_batch),
    Route("batch", "system", "POST", "/", transaction_or_batch),
    Route("history-system", "system", "GET", "/_history", history_system),
    Route("history-type", "type", "GET", "/{resource_type}/_history", history_type),
    Route("search-type", "type", "POST", "/{resource_type}/_search", search_type_post),
    Route("search-type", "type", "GET", "/{resource_type}", search_type),
    Route("create", "type", "POST", "/{resource_type}", create),
    Route("update", "type", "PUT", "/{resource_type}", conditional_update),
    Route("delete", "type", "DELETE", "/{resource_type}", conditional_delete),
    Route("read", "instance", "GET", "/{resource_type}/{resource_id}", _read_or_audit),
    Route("operation", "type", "POST", "/{resource_type}/{name}", type_operation_post),
    Route("update", "instance", "PUT", "/{resource_type}/{resource_id}", update),
    Route("patch", "instance", "PATCH", "/{resource_type}/{resource_id}", patch),
    Route("delete", "instance", "DELETE", "/{resource_type}/{resource_id}", delete),
    Route(
        "history-instance",
        "instance",
        "GET",
        "/{resource_type}/{resource_id}/_history",
        history_instance,
    ),
    Route(
        "vread",
        "instance",
        "GET",
        "/{resource_type}/{resource_id}/_history/{version_id}",
        vread,
    ),
    Route(
        "search-compartment",
        "compartment",
        "GET",
        "/{compartment}/{compartment_id}/{resource_type}",
        search_compartment,
    ),
    Route(
        "operation",
        "instance",
        "GET",
        "/{resource_type}/{resource_id}/{name}",
        instance_operation,
    ),
    Route(
        "operation",
        "instance",
        "POST",
        "/{resource_type}/{resource_id}/{name}",
        instance_operation,
    ),
]


def build_dispatcher() -> FhirDispatcher:
    """The ASGI app serving every route of the table under ``/fhir``; every route but the
    public ones passes the access gate first, and is audited."""
    return FhirDispatcher(ROUTES, guard=access_gate.guard, audit=audited)
