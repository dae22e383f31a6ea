"""AuditEvent resources following the IHE Basic Audit Log Patterns (BALP).

One builder for every event the register records: RESTful interactions (type ``rest`` with the
interaction as subtype), token issuance and logins, client registration, break-glass starts.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

AUDIT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
BALP_ENTITY = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
ROLE_SYSTEM = "https://fhir.shared-care-register.nhs.uk/CodeSystem/register-role"
REGISTER_SUBTYPE = "https://fhir.shared-care-register.nhs.uk/CodeSystem/audit-subtype"
DATA_KINDS = "resource-types"
"""``entity.detail.type`` of a patient entity: the kinds of data (resource types) of theirs."""

# interaction -> CRUDE action
ACTIONS = {
    "create": "C",
    "read": "R",
    "vread": "R",
    "update": "U",
    "patch": "U",
    "delete": "D",
    "history-instance": "R",
    "history-type": "R",
    "history-system": "R",
    "search-type": "E",
    "search-system": "E",
    "transaction": "E",
    "batch": "E",
    "operation": "E",
    "capabilities": "R",
}
# kind -> (type coding, subtype coding) for events that are not REST interactions
SPECIAL = {
    "login": ((DCM, "110114", "User Authentication"), (DCM, "110122", "Login")),
    "token": ((DCM, "110114", "User Authentication"), (DCM, "110122", "Login")),
    "break-glass": (
        (DCM, "110113", "Security Alert"),
        (DCM, "110127", "Emergency Override Started"),
    ),
    "client-registration": (
        (DCM, "110113", "Security Alert"),
        (DCM, "110136", "Security Roles Changed"),
    ),
    "review": (
        (DCM, "110113", "Security Alert"),
        (REGISTER_SUBTYPE, "access-review", "Access reviewed by a privacy officer"),
    ),
}
OUTCOMES = {"0": "Success", "4": "Minor failure", "8": "Serious failure", "12": "Major failure"}


@dataclass(slots=True)  # not frozen: built for every request, and frozen init costs
class AuditFacts:
    """Everything one audit event records."""

    event_id: str
    recorded: str  # instant; empty: rendered from the event's time when the bytes are made
    kind: str  # rest | login | token | break-glass | client-registration
    action: str  # restful interaction code, or a short verb for other kinds
    outcome: str  # 0 | 4 | 8 | 12
    outcome_detail: str | None = None
    agent_who: str | None = None  # fhirUser reference
    agent_name: str | None = None
    agent_role: str | None = None
    agent_org: str | None = None  # ODS code
    client_id: str | None = None
    token_id: str | None = None
    purpose: str | None = None  # v3-ActReason code
    break_glass_reason: str | None = None
    source: str = "Shared Care Register"
    patients: tuple[str, ...] = ()  # Patient ids
    patient_types: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (Patient id, resource types)
    consent_change: bool = False  # a write that changed a Consent
    entities: tuple[str, ...] = ()  # Type/id of the resources touched
    query: str | None = None
    request_id: str | None = None
    address: str | None = None


def outcome_for_status(status: int) -> str:
    """The AuditEvent outcome code for an HTTP status."""
    if status < 400:
        return "0"
    if status < 500:
        return "4"
    return "8"


def audit_event(facts: AuditFacts) -> dict[str, Any]:
    """The AuditEvent resource for ``facts``."""
    if facts.kind in SPECIAL:
        (type_system, type_code, type_display), sub = SPECIAL[facts.kind]
        subtype = [{"system": sub[0], "code": sub[1], "display": sub[2]}]
        action = "E"
    else:
        type_system, type_code, type_display = AUDIT_TYPE, "rest", "RESTful Operation"
        subtype = [{"system": RESTFUL, "code": facts.action}]
        if facts.consent_change:
            subtype.append(
                {"system": REGISTER_SUBTYPE, "code": "consent-change", "display": "Consent changed"}
            )
        action = ACTIONS.get(facts.action, "E")
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": facts.event_id,
        "type": {"system": type_system, "code": type_code, "display": type_display},
        "subtype": subtype,
        "action": action,
        "recorded": facts.recorded,
        "outcome": facts.outcome,
    }
    if facts.outcome_detail:
        event["outcomeDesc"] = facts.outcome_detail[:500]
    if facts.purpose:
        purpose: dict[str, Any] = {"coding": [{"system": ACT_REASON, "code": facts.purpose}]}
        if facts.break_glass_reason:
            purpose["text"] = facts.break_glass_reason
        event["purposeOfEvent"] = [purpose]
    event["agent"] = _agents(facts)
    event["source"] = {
        "observer": {"display": facts.source},
        "type": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                "code": "4",
                "display": "Application Server",
            }
        ],
    }
    entities = _entities(facts)
    if entities:
        event["entity"] = entities
    return event


def _agents(facts: AuditFacts) -> list[dict[str, Any]]:
    agents: list[dict[str, Any]] = []
    user: dict[str, Any] = {
        "type": {
            "coding": [
                {"system": PARTICIPATION, "code": "IRCP", "display": "information recipient"}
            ]
        },
        "requestor": True,
    }
    who: dict[str, Any] = {}
    if facts.agent_who:
        who["reference"] = facts.agent_who
    if facts.agent_name:
        who["display"] = facts.agent_name
    if not who:
        who["display"] = "unauthenticated" if facts.agent_role is None else facts.agent_role
    user["who"] = who
    if facts.agent_role:
        user["role"] = [{"coding": [{"system": ROLE_SYSTEM, "code": facts.agent_role}]}]
    if facts.token_id:
        user["policy"] = [facts.token_id]
    if facts.address:
        user["network"] = {"address": facts.address, "type": "2"}
    agents.append(user)
    if facts.agent_org:
        agents.append(
            {
                "type": {
                    "coding": [{"system": PARTICIPATION, "code": "PRF", "display": "performer"}]
                },
                "who": {"identifier": {"system": ODS_SYSTEM, "value": facts.agent_org}},
                "requestor": False,
            }
        )
    if facts.client_id:
        agents.append(
            {
                "type": {"coding": [{"system": DCM, "code": "110150", "display": "Application"}]},
                "who": {"identifier": {"value": facts.client_id}},
                "requestor": False,
            }
        )
    return agents


def _entities(facts: AuditFacts) -> list[dict[str, Any]]:
    kinds = dict(facts.patient_types)
    patients = list(dict.fromkeys([*facts.patients, *kinds]))
    entities: list[dict[str, Any]] = []
    for patient in patients:
        entity: dict[str, Any] = {
            "what": {"reference": f"Patient/{patient}"},
            "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
            "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
        }
        if kinds.get(patient):
            entity["detail"] = [{"type": DATA_KINDS, "valueString": " ".join(kinds[patient])}]
        entities.append(entity)
    entities.extend(
        {
            "what": {"reference": ref},
            "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
        }
        for ref in facts.entities
    )
    if facts.query is not None:
        entities.append(
            {
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
                "query": base64.b64encode(facts.query.encode()).decode(),
            }
        )
    if facts.request_id:
        entities.append(
            {
                "what": {"identifier": {"value": facts.request_id}},
                "type": {"system": BALP_ENTITY, "code": "XrequestId", "display": "X-Request-Id"},
            }
        )
    return entities
