"""The HTTP side of ``Patient/[id]/$everything``, registered in the operation table.

Imported once by the app factory; the work is done by :mod:`register.everything`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from auth.policy import FhirInteraction
from register import operations
from register.api.deps import context, in_read, json_body, settings_of
from register.api.negotiation import prefer, response_format
from register.api.responses import fhir_response
from register.errors import bad_request
from register.everything import everything_bundle
from register.search import SearchOptions

_VALUE_KEYS = ("valueInstant", "valueDateTime", "valueString", "valueCode", "valueInteger")


async def everything(
    request: Request, resource_type: str | None, resource_id: str | None
) -> Response:
    """GET|POST /Patient/{id}/$everything (POST takes a Parameters resource, or nothing)."""
    fmt = response_format(request)
    ctx = notice_ctx = context(request)
    if ctx.access is not None:
        # Admitted as an operation on Patient; what it returns is of every type, so it gets the
        # policy's sight for reading any type (the token's read scopes per type), as a search of
        # each type would.
        ctx = replace(ctx, visibility=ctx.access.visibility_for(FhirInteraction.READ, None))
    assert resource_id is not None
    params = list(request.query_params.multi_items())
    if request.method == "POST" and request.headers.get("content-length", "0") != "0":
        params += _parameters(await json_body(request))
    settings = settings_of(request)
    options = SearchOptions(
        settings.default_page_size, settings.max_page_size, prefer(request).handling == "strict"
    )
    body = await in_read(
        request, lambda conn: everything_bundle(conn, ctx, resource_id, params, options, notice_ctx)
    )
    return fhir_response(body, fmt=fmt)


def _parameters(body: Any) -> list[tuple[str, str]]:
    """The (name, value) pairs of a Parameters resource with primitive values."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise bad_request("POST $everything takes a Parameters resource.", "Parameters")
    pairs = []
    for item in body.get("parameter") or []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        for key in _VALUE_KEYS:
            if key in item:
                pairs.append((item["name"], str(item[key])))
                break
    return pairs


operations.register(
    operations.Operation(
        name="everything",
        levels=("instance",),
        resource_types=("Patient",),
        handler=everything,
        methods=("GET", "POST"),
        definition="http://hl7.org/fhir/OperationDefinition/Patient-everything",
        documentation=(
            "Everything in the Patient's compartment, then the Practitioners, Organizations, "
            "Medications and Locations it refers to; _since, _type, _count and next links."
        ),
    )
)
