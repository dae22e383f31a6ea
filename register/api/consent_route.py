"""The HTTP side of ``Patient/[id]/$access-explain``, registered in the operation table.

Imported once by the app factory; the work is done by :mod:`register.consent_explain`.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from register import operations
from register.api.deps import context, in_read
from register.api.negotiation import response_format
from register.api.responses import fhir_response
from register.consent_explain import explain


async def access_explain(
    request: Request, resource_type: str | None, resource_id: str | None
) -> Response:
    """GET /Patient/{id}/$access-explain?resource=Type/id."""
    fmt = response_format(request)
    ctx = context(request)
    assert resource_id is not None
    reference = request.query_params.get("resource")
    answer = await in_read(request, lambda conn: explain(conn, ctx, resource_id, reference))
    return fhir_response(orjson.dumps(answer), fmt=fmt)


operations.register(
    operations.Operation(
        name="access-explain",
        levels=("instance",),
        resource_types=("Patient",),
        handler=access_explain,
        methods=("GET",),
        documentation=(
            "Why a resource (parameter resource=Type/id) of this patient's record is or is not "
            "visible to you: which rule, which Consent provision; never its content."
        ),
    )
)
