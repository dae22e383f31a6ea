"""The duplicate check every write runs: log the new resource's care actions, compare them
with the patient's earlier ones across all organisations, and record each repeat found as a
DetectedIssue (and a row for the improvement review). The write itself always succeeds: the
register records, it does not block care; the writer gets each finding back as a warning.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from fhir_adapters.detected_issue import IssueFacts, detected_issue
from fhir_adapters.operation_outcome import Issue
from register import interactions, storage
from register.context import RequestContext
from register.duplicates import store
from register.duplicates.actions import CareAction, actions_of
from register.duplicates.config import DuplicateConfig, config_from
from register.duplicates.matching import STRONG_MATCH, Identity, score
from register.duplicates.rules import Finding, evaluate
from register.errors import FhirError
from register.facts import primary_patient
from register.storage import EVERYTHING, Current, Version

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
# The register's own records are not care actions and are never checked.
SKIPPED_TYPES = frozenset({"DetectedIssue", "Provenance", "AuditEvent", "Consent", "Bundle"})


def config_for(ctx: RequestContext) -> DuplicateConfig:
    """The duplicate rules' data files for the app serving this request."""
    directory = getattr(ctx.settings, "duplicates_dir", None)
    return config_from(directory)


def check_write(
    conn: Connection,
    ctx: RequestContext,
    version: Version,
    resource: dict[str, Any] | None,
    *,
    previous: Current | None,
) -> list[Issue]:
    """Log the write's care actions and record any duplicates; return warnings for the writer."""
    if version.resource_type in SKIPPED_TYPES:
        return []
    if resource is None:  # a deletion: its actions no longer stand
        store.replace_actions(conn, version.resource_pk, None, [])
        if version.resource_type == "Patient":
            store.replace_identity(conn, version.resource_pk, None)
        return []
    config = config_for(ctx)
    patient_id = primary_patient(resource)
    actions = actions_of(
        resource, config, author_org=ctx.author_org, recorded_at=version.last_updated
    )
    findings: list[Finding] = []
    if patient_id and actions:
        # Facts and registrations are compared with nothing (they are what later actions are
        # compared with), so only the other kinds need the patient's history.
        groups = {a.group for a in actions if a.kind not in ("fact", "registration")}
        if groups:
            earlier = store.earlier_actions(
                conn, patient_id, groups, exclude_pk=version.resource_pk
            )
            findings = evaluate(actions, earlier, config)
    store.replace_actions(conn, version.resource_pk, patient_id, actions, fresh=previous is None)
    warnings = [
        _record(conn, ctx, config, patient_id, finding)
        for finding in findings
        if patient_id and _is_new(conn, patient_id, finding)
    ]
    if version.resource_type == "Patient":
        warnings.extend(_check_registration(conn, ctx, version, resource, previous))
    return [w for w in warnings if w is not None]


def _is_new(conn: Connection, patient_id: str, finding: Finding) -> bool:
    repeat = finding.repeat
    if store.finding_exists(conn, patient_id, finding.rule, finding.group, store.event_key(repeat)):
        return False
    # A result fulfilling an order already logged as a repeat is the same repeat.
    return not (
        finding.rule == "repeat-test"
        and repeat.kind == "test"
        and store.findings_for_repeat(conn, repeat.linked, finding.group)
    )


def _now() -> datetime:
    return datetime.now(UTC)


def organisation_label(conn: Connection, org: str | None) -> str:
    """A human name for an organisation given by ODS code or reference."""
    if not org:
        return "an organisation not recorded"
    version: Version | None = None
    if org.startswith("Organization/"):
        version = storage.read(conn, EVERYTHING, "Organization", org.split("/", 1)[1])
    else:
        from register import search

        internal = RequestContext(request_id="duplicates", base_url="", visibility=EVERYTHING)
        try:
            matches = search.find_matches(
                conn, internal, "Organization", [("identifier", f"{ODS_SYSTEM}|{org}")]
            )
        except FhirError:
            matches = []
        version = matches[0] if matches else None
    if version is not None and version.content and not version.deleted:
        import orjson

        name = orjson.loads(version.content).get("name")
        if isinstance(name, str) and name:
            return name
    return f"organisation {org.split('/')[-1]}"


def _service(conn: Connection, action: CareAction) -> str:
    """The service the repeat happened in: its encounter's service type or class."""
    if not action.encounter or not action.encounter.startswith("Encounter/"):
        return "unspecified"
    version = storage.read(conn, EVERYTHING, "Encounter", action.encounter.split("/", 1)[1])
    if version is None or not version.content:
        return "unspecified"
    import orjson

    encounter = orjson.loads(version.content)
    for concept in (encounter.get("serviceType"), *(encounter.get("type") or [])):
        if isinstance(concept, dict):
            text = concept.get("text") or next(
                (c.get("display") for c in concept.get("coding", []) if c.get("display")), None
            )
            if text:
                return str(text)[:200]
    klass = encounter.get("class")
    if isinstance(klass, dict) and (klass.get("display") or klass.get("code")):
        return str(klass.get("display") or klass.get("code"))[:200]
    return "unspecified"


def _days(finding: Finding) -> str:
    days = round(finding.gap_days)
    if days == 0:
        return "the same day"
    return "1 day earlier" if days == 1 else f"{days} days earlier"


def _detail(conn: Connection, config: DuplicateConfig, finding: Finding) -> str:
    original, repeat = finding.original, finding.repeat
    by_original = organisation_label(conn, original.org)
    by_repeat = organisation_label(conn, repeat.org)
    if finding.rule == "repeat-test":
        group = config.group(finding.group)
        did = "ordered" if original.kind == "order" else "measured"
        again = "ordered" if repeat.kind == "order" else "measured"
        return (
            f"{group.name} was {did} by {by_original} {_days(finding)}; {again} again by "
            f"{by_repeat} inside the {group.interval_days}-day minimum retesting interval."
        )
    if finding.rule == "duplicate-therapy":
        shared = sorted(repeat.ingredients & original.ingredients)
        what = {
            "DUPTHPY": "the same medicine",
            "DUPTHPGEN": f"the same ingredient ({', '.join(shared) or 'same ingredient'})",
            "DUPTHPCLS": "a medicine of the same class ("
            + ", ".join(
                config.class_names.get(c, c) for c in sorted(repeat.classes & original.classes)
            )
            + ")",
        }[finding.code]
        return (
            f"{what[0].upper()}{what[1:]} is already active for this patient, prescribed by "
            f"{by_original} {_days(finding)}; prescribed again by {by_repeat}."
        )
    if finding.rule == "repeat-question":
        name = config.concept(finding.group).name
        return (
            f"{name[0].upper()}{name[1:]}: already recorded by {by_original} {_days(finding)}; "
            f"asked again by {by_repeat} instead of being confirmed."
        )
    return (
        f"An order for the same thing is already open at {by_original} (placed "
        f"{_days(finding)}); ordered again by {by_repeat}."
    )


def _record(
    conn: Connection,
    ctx: RequestContext,
    config: DuplicateConfig,
    patient_id: str,
    finding: Finding,
) -> Issue:
    now = _now()
    repeat, original = finding.repeat, finding.original
    detail = _detail(conn, config, finding)
    service = _service(conn, repeat)
    facts = IssueFacts(
        rule=finding.rule,
        code=finding.code,
        severity=finding.severity,
        patient=f"Patient/{patient_id}",
        identified=now.isoformat().replace("+00:00", "Z"),
        implicated=(repeat.reference, original.reference),
        detail=detail,
        group=finding.group,
        repeat_org=repeat.org,
        original_org=original.org,
        service=service,
        gap_days=finding.gap_days,
        mitigation=finding.mitigation,
        mitigation_author=repeat.practitioner if finding.mitigation else None,
    )
    version = interactions.record_internal(conn, detected_issue(facts))
    store.save_finding(
        conn,
        {
            "issue_id": version.resource_id,
            "rule": finding.rule,
            "code": finding.code,
            "group_key": finding.group,
            "patient_id": patient_id,
            "repeat_ref": repeat.reference,
            "original_ref": original.reference,
            "repeat_org": repeat.org,
            "original_org": original.org,
            "service": service,
            "occurred_at": repeat.occurred_at,
            "detected_at": now,
            "gap_days": finding.gap_days,
            "severity": finding.severity,
            "mitigation": finding.mitigation,
            "patient_reported": False,
            "event_key": store.event_key(repeat),
        },
    )
    return _warning(conn, ctx, finding, detail, version.resource_id)


def _warning(
    conn: Connection, ctx: RequestContext, finding: Finding, detail: str, issue_id: str
) -> Issue:
    """The writer's warning; it names the earlier action only if the writer may see it."""
    original = finding.original
    visible = storage.read(conn, ctx.visibility, original.resource_type, original.resource_id)
    if visible is None or visible.deleted:
        detail = (
            "This may repeat an action already recorded for this patient elsewhere; the "
            "details are outside your access."
        )
    return Issue(
        "warning",
        "business-rule",
        f"{detail} (DetectedIssue/{issue_id})",
        (),
        (
            "https://fhir.shared-care-register.nhs.uk/CodeSystem/duplicate-rule",
            finding.rule,
            finding.rule,
        ),
    )


def _check_registration(
    conn: Connection,
    ctx: RequestContext,
    version: Version,
    resource: dict[str, Any],
    previous: Current | None,
) -> list[Issue]:
    identity = Identity.of(resource)
    store.replace_identity(conn, version.resource_pk, identity, fresh=previous is None)
    if previous is not None and not previous.deleted:
        return []  # only a new registration can duplicate one
    candidates = store.identity_candidates(
        conn, identity, exclude_pk=version.resource_pk, strong_only=True
    )
    scored = sorted(((score(identity, c), c) for c in candidates), key=lambda pair: -pair[0])
    strong = [(s, c) for s, c in scored if s >= STRONG_MATCH]
    if not strong:
        return []
    value, match = strong[0]
    same_number = bool(identity.nhs_number) and identity.nhs_number == match.nhs_number
    now = _now()
    new_ref = f"Patient/{version.resource_id}"
    old_ref = f"Patient/{match.patient_id}"
    by_new = organisation_label(conn, ctx.author_org)
    detail = (
        f"A patient with the same NHS number is already registered; registered again by {by_new}."
        if same_number
        else f"A registered patient matches on name, birth date, gender and postcode (score "
        f"{value:.2f}); registered again by {by_new}."
    )
    facts = IssueFacts(
        rule="duplicate-registration",
        code="duplicate-registration",
        severity="high",
        patient=new_ref,
        identified=now.isoformat().replace("+00:00", "Z"),
        implicated=(new_ref, old_ref),
        detail=detail,
        group="patient",
        repeat_org=ctx.author_org,
        original_org=None,
        service="registration",
        gap_days=None,
    )
    issue = interactions.record_internal(conn, detected_issue(facts))
    store.save_finding(
        conn,
        {
            "issue_id": issue.resource_id,
            "rule": "duplicate-registration",
            "code": "duplicate-registration",
            "group_key": "patient",
            "patient_id": version.resource_id,
            "repeat_ref": new_ref,
            "original_ref": old_ref,
            "repeat_org": ctx.author_org,
            "original_org": None,
            "service": "registration",
            "occurred_at": version.last_updated,
            "detected_at": now,
            "gap_days": None,
            "severity": "high",
            "mitigation": None,
            "patient_reported": False,
            "event_key": f"patient:{version.resource_id}",
        },
    )
    return [
        Issue(
            "warning",
            "business-rule",
            f"{detail} (DetectedIssue/{issue.resource_id})",
            (),
            (
                "https://fhir.shared-care-register.nhs.uk/CodeSystem/duplicate-rule",
                "duplicate-registration",
                "duplicate-registration",
            ),
        )
    ]
