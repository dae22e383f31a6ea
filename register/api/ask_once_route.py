"""The HTTP side of ``Patient/{id}/$summary`` and ``Questionnaire[/{id}]/$populate``.

Registered in the operation table (so the CapabilityStatement lists them); the work is done by
:mod:`register.ask_once`. Parameters follow the specifications:

- IPS ``$summary`` (http://hl7.org/fhir/uv/ips/OperationDefinition/summary): ``GET`` (or
  ``POST`` with an empty Parameters); the answer is a ``document`` Bundle.
- SDC ``$populate`` (http://hl7.org/fhir/uv/sdc/OperationDefinition/Questionnaire-populate):
  ``subject`` (valueReference; in a GET, ``subject=Patient/x``), and the Questionnaire by
  ``questionnaire`` (the resource inline, or its canonical as valueCanonical/valueUri),
  ``questionnaireRef`` (valueReference, SDC STU3), ``canonical``, or the instance on the path;
  ``local`` is accepted (the register always answers from its own data). The answer is a
  Parameters with ``response`` (the QuestionnaireResponse) and ``issues`` when there were any.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from register import ask_once, operations
from register.api.deps import context, in_read, json_body
from register.api.negotiation import response_format
from register.api.responses import fhir_response
from register.errors import bad_request

_KNOWN = frozenset(
    {"subject", "questionnaire", "questionnaireRef", "canonical", "local", "_format", "_pretty"}
)


async def summary(request: Request, resource_type: str | None, resource_id: str | None) -> Response:
    """GET|POST /Patient/{id}/$summary: the patient's IPS document."""
    fmt = response_format(request)
    ctx = context(request)
    assert resource_id is not None
    if request.method == "POST" and request.headers.get("content-length", "0") != "0":
        _parameters(await json_body(request), "$summary")
    document = await in_read(request, lambda conn: ask_once.patient_summary(conn, ctx, resource_id))
    return fhir_response(orjson.dumps(document), fmt=fmt)


async def populate(
    request: Request, resource_type: str | None, resource_id: str | None
) -> Response:
    """GET|POST /Questionnaire[/{id}]/$populate: a QuestionnaireResponse pre-filled."""
    fmt = response_format(request)
    ctx = context(request)
    given: dict[str, Any] = {}
    for name, value in request.query_params.multi_items():
        if name not in _KNOWN:
            raise bad_request(f"{name[:40]} is not a parameter of $populate.", name[:40])
        if name in ("subject", "questionnaire", "questionnaireRef", "canonical"):
            given[name] = value
    if request.method == "POST":
        given.update(_populate_parameters(_parameters(await json_body(request), "$populate")))
    subject = ask_once.subject_patient_id(given.get("subject"))
    inline = given.get("questionnaire") if isinstance(given.get("questionnaire"), dict) else None
    canonical = given.get("canonical") or (
        given.get("questionnaire") if isinstance(given.get("questionnaire"), str) else None
    )
    reference = given.get("questionnaireRef")
    if resource_id is not None and (inline or canonical or reference):
        raise bad_request(
            "Questionnaire/{id}/$populate fills that Questionnaire; do not name another.",
            "questionnaire",
        )

    def work(conn: Any) -> dict[str, Any]:
        questionnaire = ask_once.resolve_questionnaire(
            conn,
            ctx,
            resource_id=resource_id,
            canonical=canonical,
            reference=reference,
            inline=inline,
        )
        return ask_once.populate_parameters(ask_once.populate(conn, ctx, questionnaire, subject))

    body = await in_read(request, work)
    return fhir_response(orjson.dumps(body), fmt=fmt)


def _parameters(body: Any, operation: str) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise bad_request(f"POST {operation} takes a Parameters resource.", "resourceType")
    parameters = body.get("parameter") or []
    if not isinstance(parameters, list) or not all(isinstance(p, dict) for p in parameters):
        raise bad_request("Parameters.parameter must be a list of parameters.", "parameter")
    return parameters


def _populate_parameters(parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """``subject``, ``questionnaire`` (resource or canonical), ``questionnaireRef``,
    ``canonical`` from a Parameters resource; any other name is refused (400)."""
    given: dict[str, Any] = {}
    for index, parameter in enumerate(parameters):
        name = parameter.get("name")
        where = f"Parameters.parameter[{index}]"
        if name not in _KNOWN:
            raise bad_request(f"{str(name)[:40]} is not a parameter of $populate.", where)
        if name == "subject" or name == "questionnaireRef":
            reference = (parameter.get("valueReference") or {}).get("reference")
            if not isinstance(reference, str):
                raise bad_request(f"{name} must be a valueReference with a reference.", where)
            given[name] = reference
        elif name == "questionnaire" and "resource" in parameter:
            given[name] = parameter["resource"]
        elif name in ("questionnaire", "canonical"):
            value = parameter.get("valueCanonical") or parameter.get("valueUri")
            if not isinstance(value, str):
                raise bad_request(
                    f"{name} must be a Questionnaire resource or a canonical URL.", where
                )
            given[name] = value
    return given


operations.register(
    operations.Operation(
        name="summary",
        levels=("instance",),
        resource_types=("Patient",),
        handler=summary,
        methods=("GET", "POST"),
        definition="http://hl7.org/fhir/uv/ips/OperationDefinition/summary",
        documentation=(
            "The International Patient Summary of what the requester may see: every entry with "
            "the organisation that recorded it and when; disagreements between organisations "
            "flagged."
        ),
    )
)
operations.register(
    operations.Operation(
        name="populate",
        levels=("type", "instance"),
        resource_types=("Questionnaire",),
        handler=populate,
        methods=("GET", "POST"),
        definition="http://hl7.org/fhir/uv/sdc/OperationDefinition/Questionnaire-populate",
        documentation=(
            "A QuestionnaireResponse pre-filled from what the requester may see of the subject's "
            "record; each answer says where it came from; stale ones offered as last known."
        ),
    )
)
