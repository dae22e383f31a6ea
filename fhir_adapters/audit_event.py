"""AuditEvent resources following the IHE Basic Audit Log Patterns (BALP).

One builder for every event the register records: RESTful interactions (type ``rest`` with the
interaction as subtype), token issuance, client registration, break-glass starts and privacy
officers' reviews; and its inverse, :func:`index_of`, which reads back from an event what the
register indexes it by, so that ``careregister audit verify`` can hold every indexed column to
the hashed bytes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
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
REGISTER_ACTION = "https://fhir.shared-care-register.nhs.uk/CodeSystem/audit-action"
"""Subtype coding naming the register's own action for events that are not REST interactions
(``token``, ``break-glass``, ``register``, ``disable``, ``review``, ``load``)."""
REVIEW_ALERT = "https://fhir.shared-care-register.nhs.uk/StructureDefinition/audit-review-alert"
"""Extension: why this event is in the privacy officer's review queue (category, patient,
reason). Part of the hashed bytes, so the queue entry cannot be removed unnoticed."""
REVIEW_VERDICT = "https://fhir.shared-care-register.nhs.uk/StructureDefinition/audit-review-verdict"
"""Extension on a review event: the verdict and the privacy officer's note."""
CONSENT_CHANGE = "consent-change"
DATA_KINDS = "resource-types"
"""``entity.detail.type`` of a patient entity: the kinds of data (resource types) of theirs."""

# interaction (or the register's own action) -> CRUDE action; anything else is E
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
    "load": "C",
}
# kind -> (type coding, subtype coding) for events that are not REST interactions
SPECIAL = {
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
    "import": ((DCM, "110107", "Import"), (REGISTER_SUBTYPE, "bulk-load", "Loaded from files")),
}
OUTCOMES = {"0": "Success", "4": "Minor failure", "8": "Serious failure", "12": "Major failure"}


@dataclass(slots=True)  # not frozen: built for every request, and frozen init costs
class AuditFacts:
    """Everything one audit event records."""

    event_id: str
    recorded: str  # instant; empty: rendered from the event's time when the bytes are made
    kind: str  # rest | token | break-glass | client-registration | review | import
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
    consent_change: bool = False  # a write (or a load step) that changed a Consent
    entities: tuple[str, ...] = ()  # Type/id of the resources touched
    query: str | None = None
    request_id: str | None = None
    address: str | None = None
    alerts: tuple[tuple[str, str | None, str | None], ...] = ()
    """Review-queue entries it raises: (category, patient id, reason)."""
    verdict: tuple[str, str] | None = None  # a review event's (verdict, note)


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
        subtype = [
            {"system": sub[0], "code": sub[1], "display": sub[2]},
            {"system": REGISTER_ACTION, "code": facts.action},
        ]
    else:
        type_system, type_code, type_display = AUDIT_TYPE, "rest", "RESTful Operation"
        subtype = [{"system": RESTFUL, "code": facts.action}]
    if facts.consent_change:
        subtype.append(
            {"system": REGISTER_SUBTYPE, "code": CONSENT_CHANGE, "display": "Consent changed"}
        )
    action = ACTIONS.get(facts.action, "E")
    event: dict[str, Any] = {"resourceType": "AuditEvent", "id": facts.event_id}
    if facts.alerts or facts.verdict is not None:
        extensions = [_alert_extension(*alert) for alert in facts.alerts]
        if facts.verdict is not None:
            verdict, note = facts.verdict
            parts = [{"url": "verdict", "valueCode": verdict}, {"url": "note", "valueString": note}]
            extensions.append({"url": REVIEW_VERDICT, "extension": parts})
        event["extension"] = extensions
    event |= {
        "type": {"system": type_system, "code": type_code, "display": type_display},
        "subtype": subtype,
        "action": action,
        "recorded": facts.recorded,
        "outcome": facts.outcome,
    }
    if facts.outcome_detail:
        event["outcomeDesc"] = facts.outcome_detail[:500]
    if facts.purpose or facts.break_glass_reason:
        purpose: dict[str, Any] = {}
        if facts.purpose:
            purpose["coding"] = [{"system": ACT_REASON, "code": facts.purpose}]
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


def _alert_extension(category: str, patient: str | None, reason: str | None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"url": "category", "valueCode": category}]
    if patient is not None:
        parts.append({"url": "patient", "valueReference": {"reference": f"Patient/{patient}"}})
    if reason:
        parts.append({"url": "reason", "valueString": reason})
    return {"url": REVIEW_ALERT, "extension": parts}


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


_KIND_OF = {(type_[1], sub[1]): kind for kind, (type_, sub) in SPECIAL.items()}


@dataclass(slots=True)
class AuditIndex:
    """What an AuditEvent says about itself in the terms the register indexes it by (the
    ``audit_event`` columns, its patients and entities, its review-queue entry and verdict)."""

    event_id: str | None
    recorded: datetime | None
    kind: str | None
    action: str | None
    outcome: str | None
    agent_role: str | None
    agent_who: str | None
    agent_name: str | None
    agent_org: str | None
    client_id: str | None
    purpose: str | None
    break_glass: bool
    break_glass_reason: str | None
    request_id: str | None
    patients: set[str]
    entities: list[str]
    alerts: list[tuple[str, str | None, str | None]]
    verdict: tuple[str, str] | None


def _parts(extension: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for part in extension.get("extension") or []:
        for key, value in part.items():
            if key.startswith("value"):
                found[part.get("url")] = value
    return found


def _instant_of(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def index_of(event: dict[str, Any]) -> AuditIndex:
    """Read back from an AuditEvent made by :func:`audit_event` what it says about itself, so
    that the columns stored beside its hashed bytes can be checked against them."""
    type_code = (event.get("type") or {}).get("code")
    codes = {(c.get("system"), c.get("code")) for c in event.get("subtype") or []}
    if type_code == "rest":
        kind = "consent" if (REGISTER_SUBTYPE, CONSENT_CHANGE) in codes else "rest"
        action = next((code for system, code in codes if system == RESTFUL), None)
    else:
        kinds = (_KIND_OF.get((type_code, code)) for _, code in codes)
        kind = next((k for k in kinds if k is not None), None)
        action = next((code for system, code in codes if system == REGISTER_ACTION), None)
    index = AuditIndex(
        event_id=event.get("id"),
        recorded=_instant_of(event.get("recorded")),
        kind=kind,
        action=action,
        outcome=event.get("outcome"),
        agent_role=None,
        agent_who=None,
        agent_name=None,
        agent_org=None,
        client_id=None,
        purpose=None,
        break_glass=False,
        break_glass_reason=None,
        request_id=None,
        patients=set(),
        entities=[],
        alerts=[],
        verdict=None,
    )
    for purpose in event.get("purposeOfEvent") or []:
        coding = purpose.get("coding") or [{}]
        index.purpose = coding[0].get("code")
        index.break_glass_reason = purpose.get("text")
        index.break_glass = bool(index.break_glass_reason)
    for agent in event.get("agent") or []:
        who = agent.get("who") or {}
        agent_type = {c.get("code") for c in (agent.get("type") or {}).get("coding") or []}
        if agent.get("requestor"):
            index.agent_who = who.get("reference")
            index.agent_name = who.get("display")
            for role in agent.get("role") or []:
                for coding in role.get("coding") or []:
                    if coding.get("system") == ROLE_SYSTEM:
                        index.agent_role = coding.get("code")
        elif "PRF" in agent_type:
            index.agent_org = (who.get("identifier") or {}).get("value")
        elif "110150" in agent_type:
            index.client_id = (who.get("identifier") or {}).get("value")
    for entity in event.get("entity") or []:
        reference = (entity.get("what") or {}).get("reference")
        role = (entity.get("role") or {}).get("code")
        if role == "1" and reference and reference.startswith("Patient/"):
            index.patients.add(reference[8:])
        elif role == "4" and reference:
            index.entities.append(reference)
        elif (entity.get("type") or {}).get("code") == "XrequestId":
            index.request_id = ((entity.get("what") or {}).get("identifier") or {}).get("value")
    for extension in event.get("extension") or []:
        parts = _parts(extension)
        if extension.get("url") == REVIEW_ALERT:
            patient = (parts.get("patient") or {}).get("reference") or ""
            index.alerts.append((parts.get("category"), patient[8:] or None, parts.get("reason")))
        elif extension.get("url") == REVIEW_VERDICT:
            index.verdict = (parts.get("verdict"), parts.get("note"))
    return index


REDACTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "REDACTED",
    "display": "redacted",
}


def deidentified(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` as an improvement reviewer may see it: what was done, when, by which role,
    organisation and client, to which kinds of resource, and how it ended; never who was
    looked at or who looked (no references, identifiers of people, queries, request ids,
    addresses, free text or review alerts). Marked ``REDACTED`` in ``meta.security``.

    A projection that keeps named safe elements, rather than one that removes known unsafe
    ones, so that an element added to events later is withheld until someone decides it is
    safe."""
    out: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": event.get("id"),
        "meta": {"security": [REDACTED]},
    }
    for key in ("type", "subtype", "action", "recorded", "outcome", "source"):
        if key in event:
            out[key] = event[key]
    purposes = [
        {"coding": purpose["coding"]}
        for purpose in event.get("purposeOfEvent") or []
        if purpose.get("coding")
    ]
    if purposes:
        out["purposeOfEvent"] = purposes
    # A refused token request names the client id its caller typed, which may be anything.
    typed = (event.get("type") or {}).get("code") == "110114" and event.get("outcome") != "0"
    out["agent"] = [_deidentified_agent(agent, typed) for agent in event.get("agent") or []]
    kinds: dict[tuple[str, str | None], dict[str, Any]] = {}
    for entity in event.get("entity") or []:
        reference = (entity.get("what") or {}).get("reference")
        if not reference or "/" not in reference:
            continue
        resource_type = reference.split("/", 1)[0]
        role = entity.get("role") or {}
        kinds.setdefault(
            (resource_type, role.get("code")),
            {"what": {"type": resource_type}, "type": entity.get("type"), "role": role},
        )
    if kinds:
        out["entity"] = list(kinds.values())
    return out


def _deidentified_agent(agent: dict[str, Any], typed: bool) -> dict[str, Any]:
    kept: dict[str, Any] = {"type": agent.get("type"), "requestor": bool(agent.get("requestor"))}
    if agent.get("role"):
        kept["role"] = agent["role"]
    codes = {c.get("code") for c in (agent.get("type") or {}).get("coding") or []}
    identifier = (agent.get("who") or {}).get("identifier")
    kept_codes = {"PRF"} if typed else {"PRF", "110150"}
    if not agent.get("requestor") and identifier and codes & kept_codes:
        kept["who"] = {"identifier": identifier}  # the organisation (ODS) or the client system
    else:
        kept["who"] = {"display": "redacted"}
    return kept
