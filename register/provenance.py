"""Who recorded what: a FHIR Provenance for every version written (R4 ``Provenance``).

A write step (:func:`after_write`, from :mod:`register.write_hooks`) stores, in the same
transaction, a Provenance whose ``target`` is the new version (``Observation/1/_history/2``) and
whose agents say who wrote it, taken from the token:

- the author: the practitioner (``fhirUser``) for a clinician, the patient for a patient, the
  registered client for an organisation's system, the operator for ``careregister load``;
  ``onBehalfOf`` the organisation (by reference when the register holds it, always with its ODS
  code);
- the client software the request came through (its OAuth ``client_id``), when the author is a
  person;
- for loaded data, the resource's own ``meta.source`` as the source entity.

The Provenance is written straight through :mod:`register.storage`, not through the write steps
again (a Provenance of a Provenance would never end). It belongs to the same patient's record as
its target (``resource.patient_id``), so it is visible to exactly those who may see that record,
and to the organisation that wrote it.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import Connection

from auth.principal import Principal, Role
from register import storage
from register.context import RequestContext
from register.facts import primary_patient
from register.relationships import ODS_SYSTEM, organisation_with_code
from register.storage import Current, Version

CLIENT_ID_SYSTEM = "urn:careregister:oauth-client-id"
"""Identifier system of OAuth client ids (the register assigns them)."""
OPERATOR_SYSTEM = "urn:careregister:operator"
"""Identifier system of the local command line as an author."""
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
_ACTIVITY = {
    "POST": ("CREATE", "create"),
    "PUT": ("UPDATE", "revise"),
    "PATCH": ("UPDATE", "revise"),
    "DELETE": ("DELETE", "delete"),
}


def after_write(
    conn: Connection,
    ctx: RequestContext,
    version: Version,
    resource: dict[str, Any] | None,
    *,
    previous: Current | None,
) -> None:
    """Store the Provenance of ``version`` (nothing for the register's own unattributed work)."""
    principal = ctx.principal
    if principal is None or version.resource_type == "Provenance":
        return
    if resource is not None:
        patient_id = primary_patient(resource)
    elif previous is not None and previous.content:
        patient_id = primary_patient(orjson.loads(previous.content))
    else:
        patient_id = None
    method = version.method if version.version_id > 1 or version.deleted else "POST"
    body = provenance_for(
        conn,
        principal,
        target=f"{version.resource_type}/{version.resource_id}/_history/{version.version_id}",
        recorded=version.last_updated.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        method=method,
        organisation=ctx.author_org,
        source=_source(resource),
    )
    provenance_id = str(uuid.uuid4())
    stamped = {
        "resourceType": "Provenance",
        "id": provenance_id,
        "meta": {"versionId": "1", "lastUpdated": body["recorded"]},
        **{k: v for k, v in body.items() if k != "resourceType"},
    }
    storage.write_version(
        conn,
        resource_type="Provenance",
        resource_id=provenance_id,
        current=None,
        content=orjson.dumps(stamped),
        resource=stamped,
        last_updated=version.last_updated,
        method="POST",
        facts=storage.Facts(patient_id=patient_id, author_org=ctx.author_org),
    )


def _source(resource: dict[str, Any] | None) -> str | None:
    meta = resource.get("meta") if resource else None
    source = meta.get("source") if isinstance(meta, dict) else None
    return source if isinstance(source, str) and source else None


def provenance_for(
    conn: Connection,
    principal: Principal,
    *,
    target: str,
    recorded: str,
    method: str,
    organisation: str | None,
    source: str | None = None,
) -> dict[str, Any]:
    """The Provenance (without id and meta) of one write by ``principal``."""
    code, _ = _ACTIVITY.get(method, ("UPDATE", "revise"))
    on_behalf_of = _organisation_reference(conn, organisation) if organisation else None
    author: dict[str, Any] = {
        "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "author", "display": "Author"}]},
        "who": _author(principal),
    }
    if on_behalf_of is not None:
        author["onBehalfOf"] = on_behalf_of
    agents = [author]
    if principal.role in (Role.CLINICIAN, Role.PATIENT) or (
        principal.fhir_user is not None and principal.role is not Role.SYSTEM
    ):
        agents.append(
            {
                "type": {
                    "coding": [
                        {"system": PARTICIPANT_TYPE, "code": "assembler", "display": "Assembler"}
                    ]
                },
                "who": {
                    "identifier": {"system": CLIENT_ID_SYSTEM, "value": principal.client_id},
                    "display": f"client {principal.client_id}",
                },
            }
        )
    body: dict[str, Any] = {
        "resourceType": "Provenance",
        "target": [{"reference": target}],
        "recorded": recorded,
        "activity": {"coding": [{"system": DATA_OPERATION, "code": code}]},
        "agent": agents,
    }
    if principal.purpose_of_use is not None:
        body["reason"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                        "code": principal.purpose_of_use.value,
                    }
                ]
            }
        ]
    if source is not None:
        body["entity"] = [{"role": "source", "what": {"display": source[:500]}}]
    return body


def _author(principal: Principal) -> dict[str, Any]:
    if principal.role is Role.OPERATOR:
        return {
            "identifier": {"system": OPERATOR_SYSTEM, "value": principal.subject},
            "display": "careregister command line",
        }
    if principal.fhir_user is not None:
        return {"reference": principal.fhir_user}
    return {
        "identifier": {"system": CLIENT_ID_SYSTEM, "value": principal.client_id},
        "display": f"client {principal.client_id}",
    }


def _organisation_reference(conn: Connection, ods_code: str) -> dict[str, Any]:
    reference: dict[str, Any] = {"identifier": {"system": ODS_SYSTEM, "value": ods_code}}
    org_id = organisation_with_code(conn, ods_code)
    if org_id is not None:
        reference = {"reference": f"Organization/{org_id}", **reference}
    return reference
