"""The policy decision point: who may do what to which resources. Pure functions, no I/O.

Three questions, asked in this order for every request:

1. **May the request start at all?** :func:`admit` looks at the principal's role and SMART scopes
   for the interaction and resource type: no principal is a ``401``, a role or scope that does
   not allow it is a ``403`` (a statement about the caller, never about a resource).
2. **What may be seen?** :func:`sight` answers with a :class:`Sight`: a small description of the
   rows the caller may see (scope grants by type, own organisation's records, patients in a care
   relationship, break-glass patients, the patient's own record, shared directory data). The
   service turns it into one SQL condition (``register/visibility.py``) that every read applies
   before paging, so what is hidden is absent, exactly like what does not exist (``404``, never
   ``403``, and no count that includes it).
3. **May this write happen?** :func:`may_write` decides on facts the service loads about the one
   resource being written (:class:`WriteFacts`).

Break-glass: :func:`break_glass_claim` says whether a request claims emergency access (header or
token purpose ``BTG``/``ETREAT``) and whether the caller may; :func:`should_record_grant` whether
a new time-limited grant must be recorded for the patient in question.

A :class:`Sight` is a *union of grants* (any grant makes a row visible), narrowed by scopes, with
*withholdings* on top (docs/consent.md, README "What is shared: consent"):

- :attr:`Sight.consent` (a :class:`ConsentRule`): a row reached only through a care relationship
  is shared only as the patient's Consent allows (provisions by organisation, data class, code,
  security label, data period and purpose, nested as R4 defines; the deepest matching provision
  decides, deny winning a tie; no matching provision: the default model, opt-out shares and
  opt-in does not), and a *sensitive* row (a sensitive security label) only when a permit
  names its label or code. An organisation's own records and break-glass are not withheld.
- :attr:`Sight.not_for_patient`: rows carrying one of these labels are withheld from the
  patient's own view (safeguarding), and only from it.

The Consent provisions are facts loaded like care relationships (``consent_provision`` rows
derived on every Consent write) and evaluated by the database at query time, so the patient's
current choice applies to the very next request.

Relationships and break-glass grants are described, not enumerated: a ``Sight`` says "patients
in an active care relationship with organisation X or practitioner Y (encounters count for N
days after they end)", and the database evaluates that as of the moment of the query. A GP
practice's ten thousand patients never travel through Python, and a relationship recorded a
moment ago counts at once.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from auth.principal import BREAK_GLASS_PURPOSES, Principal, PurposeOfUse, Role
from auth.scopes import Constraint, Interaction, ScopeContext, TokenValues, access


class FhirInteraction(StrEnum):
    """FHIR RESTful interactions as the policy sees them (https://hl7.org/fhir/R4/http.html)."""

    CAPABILITIES = "capabilities"
    READ = "read"
    VREAD = "vread"
    HISTORY_INSTANCE = "history-instance"
    HISTORY_TYPE = "history-type"
    HISTORY_SYSTEM = "history-system"
    SEARCH = "search-type"
    CREATE = "create"
    UPDATE = "update"
    PATCH = "patch"
    DELETE = "delete"
    TRANSACTION = "transaction"
    BATCH = "batch"
    OPERATION = "operation"

    @property
    def permission(self) -> Interaction | None:
        """The SMART v2 permission this interaction needs (``r``, ``s``, ``c``, ``u``, ``d``)."""
        return _PERMISSION.get(self)

    @property
    def writes(self) -> bool:
        """Whether the interaction changes data (transactions and batches may)."""
        return self in _WRITES


_PERMISSION: dict[FhirInteraction, Interaction] = {
    FhirInteraction.READ: Interaction.READ,
    FhirInteraction.VREAD: Interaction.READ,
    FhirInteraction.HISTORY_INSTANCE: Interaction.READ,
    FhirInteraction.OPERATION: Interaction.READ,
    FhirInteraction.SEARCH: Interaction.SEARCH,
    FhirInteraction.HISTORY_TYPE: Interaction.SEARCH,
    FhirInteraction.HISTORY_SYSTEM: Interaction.SEARCH,
    FhirInteraction.CREATE: Interaction.CREATE,
    FhirInteraction.UPDATE: Interaction.UPDATE,
    FhirInteraction.PATCH: Interaction.UPDATE,
    FhirInteraction.DELETE: Interaction.DELETE,
}
_WRITES = frozenset(
    {
        FhirInteraction.CREATE,
        FhirInteraction.UPDATE,
        FhirInteraction.PATCH,
        FhirInteraction.DELETE,
        FhirInteraction.TRANSACTION,
        FhirInteraction.BATCH,
    }
)

DIRECTORY_TYPES: frozenset[str] = frozenset(
    {
        "Organization",
        "Practitioner",
        "PractitionerRole",
        "Location",
        "HealthcareService",
        "Endpoint",
        "Medication",
        "MedicationKnowledge",
        "Substance",
        "Questionnaire",
        "ValueSet",
        "CodeSystem",
        "ConceptMap",
        "NamingSystem",
        "StructureDefinition",
        "SearchParameter",
        "OperationDefinition",
        "CapabilityStatement",
        "ActivityDefinition",
        "PlanDefinition",
        "Library",
        "Measure",
        "ObservationDefinition",
        "SpecimenDefinition",
        "DeviceDefinition",
    }
)
"""Shared directory and definitional data: who and where the care teams are, medicines,
questionnaires, terminology. Such a resource belongs to no patient's record; any admitted caller
may see it (when it belongs to no patient)."""

PATIENT_REPORT_TYPES: frozenset[str] = frozenset(
    {"QuestionnaireResponse", "Observation", "Communication"}
)
"""What a patient may report about their own care (create only)."""

PATIENT_CONSENT_TYPE = "Consent"
"""A patient may create and revise their own Consent."""


@dataclass(frozen=True)
class RoleRule:
    """What one role may do, before scopes narrow it."""

    contexts: frozenset[ScopeContext]
    """Scope prefixes that count for this role (``user/`` for people, ``system/`` for clients)."""
    read_types: frozenset[str] | None
    """Types the role may read or search; None: any type."""
    create_types: frozenset[str] | None = frozenset()
    update_types: frozenset[str] | None = frozenset()
    delete_types: frozenset[str] | None = frozenset()

    def types_for(self, permission: Interaction) -> frozenset[str] | None:
        """Types this role may use ``permission`` on (None: any)."""
        if permission in (Interaction.READ, Interaction.SEARCH):
            return self.read_types
        if permission is Interaction.CREATE:
            return self.create_types
        if permission is Interaction.UPDATE:
            return self.update_types
        return self.delete_types


_PEOPLE = frozenset({ScopeContext.USER})
ROLE_RULES: Mapping[Role, RoleRule] = {
    Role.CLINICIAN: RoleRule(_PEOPLE, None, None, None, None),
    Role.SYSTEM: RoleRule(frozenset({ScopeContext.SYSTEM}), None, None, None, None),
    Role.PATIENT: RoleRule(
        frozenset({ScopeContext.PATIENT, ScopeContext.USER}),
        None,
        PATIENT_REPORT_TYPES | {PATIENT_CONSENT_TYPE},
        frozenset({PATIENT_CONSENT_TYPE}),
        frozenset(),
    ),
    Role.REVIEWER: RoleRule(_PEOPLE, DIRECTORY_TYPES | {"AuditEvent"}),
    Role.ADMIN: RoleRule(_PEOPLE, DIRECTORY_TYPES | {"AuditEvent"}),
    Role.PRIVACY_OFFICER: RoleRule(_PEOPLE, DIRECTORY_TYPES | {"AuditEvent"}),
    Role.OPERATOR: RoleRule(frozenset({ScopeContext.SYSTEM}), None, None, None, None),
}
"""The roles of the access issue. Reviewers, administrators and privacy officers see no patient
data through the FHIR API (their work is aggregates, clients and keys, and audit trails); they
may search ``AuditEvent``, whose rows :func:`audit_sight` decides."""


class SharingModel(StrEnum):
    """What happens to a patient's record when no Consent provision says otherwise."""

    OPT_OUT = "opt-out"
    """Implied consent for direct care: shared unless the patient's Consent withholds it."""
    OPT_IN = "opt-in"
    """Shared only where the patient's Consent permits it."""


ALWAYS_SHARED_TYPES: frozenset[str] = frozenset({"Patient", "Consent"})
"""Types never withheld by a Consent from those in a care relationship: who the patient is, and
what they chose to share (a clinician must be able to see that a patient opted out)."""


@dataclass(frozen=True)
class PolicyConfig:
    """The settings the policy needs."""

    encounter_window_days: int = 30
    """Days after an encounter ends that it still opens the record."""
    break_glass_minutes: int = 240
    """How long a break-glass grant lasts."""
    sharing_model: SharingModel = SharingModel.OPT_OUT
    """The default sharing model (``REGISTER_CONSENT_DEFAULT_MODEL``)."""
    sensitive_labels: frozenset[str] = frozenset()
    """``system|code`` security labels that make a resource sensitive (restricted
    confidentiality and the sensitive categories of ``register/data/sensitive-codes.json``)."""
    not_for_patient_labels: frozenset[str] = frozenset()
    """``system|code`` security labels of items not to be disclosed to the patient."""
    always_shared_types: frozenset[str] = ALWAYS_SHARED_TYPES


@dataclass(frozen=True)
class Refusal:
    """A request refused: ``401`` (who are you?), ``403`` (not for you) or ``400`` (malformed
    claim). ``reason`` is safe to show: it names the rule, never a resource."""

    status: int
    reason: str
    for_relationship: bool = False
    """Refused only for want of a care relationship with the patient (a transaction checks such
    writes again once all its entries are written: an Encounter or Patient it records may be
    what opens the record)."""


# --- 1. may the request start ------------------------------------------------------------------


def admit(
    principal: Principal | None, interaction: FhirInteraction, resource_type: str | None
) -> Refusal | None:
    """None if ``principal`` may start ``interaction`` on ``resource_type``; else why not.

    ``resource_type`` is None for system-level interactions (``/_history``, a system operation,
    a transaction, whose entries are admitted one by one).
    """
    if principal is None:
        return Refusal(401, "This request needs a bearer token.")
    if resource_type == AUDIT_TYPE and interaction.writes:
        return Refusal(403, "AuditEvents are recorded by the register only; none can be changed.")
    if principal.is_operator or interaction is FhirInteraction.CAPABILITIES:
        return None
    rule = ROLE_RULES[principal.role]
    if interaction in (FhirInteraction.TRANSACTION, FhirInteraction.BATCH):
        if not any(s.context in rule.contexts for s in principal.scopes.resource):
            return Refusal(403, "The token's scopes allow no access to FHIR resources.")
        return None
    permission = interaction.permission
    assert permission is not None
    allowed_types = rule.types_for(permission)
    if (
        resource_type is not None
        and allowed_types is not None
        and resource_type not in allowed_types
    ):
        return Refusal(
            403,
            f"The {principal.role.value} role may not {permission.value} "
            f"{resource_type} resources.",
        )
    if resource_type is None:
        if allowed_types is not None and not allowed_types:
            return Refusal(403, f"The {principal.role.value} role may not {permission.value}.")
        if not any(
            s.context in rule.contexts and permission in s.interactions
            for s in principal.scopes.resource
        ):
            return Refusal(403, f"The token's scopes do not allow {permission.value}.")
        return None
    if not access(principal.scopes, rule.contexts, resource_type, permission).allowed:
        return Refusal(
            403, f"The token's scopes do not allow {permission.value} on {resource_type}."
        )
    return None


# --- 2. what may be seen -----------------------------------------------------------------------


@dataclass(frozen=True)
class ScopeGrant:
    """Rows of ``resource_type`` (None: of any type not in ``others_than``) that match at least
    one group of ``filters`` (every constraint of the group); no filters: every such row."""

    resource_type: str | None
    filters: tuple[tuple[Constraint, ...], ...] = ()
    others_than: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CareParty:
    """Whose care relationships open records: an organisation (ODS code), a practitioner
    (``Practitioner/x`` or ``PractitionerRole/y``), or both."""

    organisation: str | None
    practitioner: str | None
    encounter_window_days: int


@dataclass(frozen=True)
class ConsentRule:
    """The withholding a patient's Consent and sensitive labels apply to rows a requester
    reaches through a care relationship (not to its own organisation's rows, not under
    break-glass).

    A row of patient P is shared with ``recipient`` for ``purpose`` when its type is in
    ``always_shared``, or:

    - it is *sensitive* (a label in ``sensitive_labels``): some permit provision of P's Consent
      that matches the row names one of its labels or its code, and no deny provision matching
      the row is as deep or deeper;
    - otherwise: the deepest provisions of P's Consent matching the row permit (deny wins a
      tie); when none matches, ``model`` decides (opt-out shares, opt-in does not).

    A provision matches a row when each criterion it (or a provision it is nested in) states
    holds: ``actor`` is the recipient organisation, ``purpose`` the request's purpose, ``class``
    the row's type, ``code`` one of its codes, ``securityLabel`` one of its labels,
    ``dataPeriod`` overlaps its clinical date, and the provision's ``period`` includes now.
    """

    model: SharingModel
    recipient: str | None
    purpose: str
    sensitive_labels: frozenset[str]
    always_shared: frozenset[str]


@dataclass(frozen=True)
class Sight:
    """What a requester may see, as data. A row is visible when ``everything`` is set, or when
    the scopes admit its type (``scope`` None: they do not narrow; empty: nothing) AND at least
    one of these holds:

    - ``own_organisation``: the row was recorded by this organisation (``author_org``);
    - ``care_of``: the row's patient has an active care relationship with this party: an
      active CareTeam or EpisodeOfCare including the organisation or practitioner, or an
      Encounter at the organisation in progress or ended less than the window ago;
    - ``break_glass_holder``: the row's patient has an unexpired break-glass grant for this
      holder;
    - ``own_patient``: the row is in this patient's record;
    - ``shared_types``: the row belongs to no patient and its type is one of these.

    Withholdings narrow two of the grants: a row reached through ``care_of`` only counts when
    ``consent`` (if set) shares it, and a row of ``own_patient`` only when it carries none of
    the ``not_for_patient`` labels.
    """

    everything: bool = False
    scope: tuple[ScopeGrant, ...] | None = None
    own_organisation: str | None = None
    care_of: CareParty | None = None
    break_glass_holder: str | None = None
    own_patient: str | None = None
    shared_types: frozenset[str] = field(default_factory=frozenset)
    consent: ConsentRule | None = None
    not_for_patient: frozenset[str] = field(default_factory=frozenset)

    def without_withholdings(self) -> Sight:
        """This sight with no consent or not-for-patient withholding (to tell whether a
        withholding removed anything, and to explain a decision)."""
        return replace(self, consent=None, not_for_patient=frozenset())


EVERYTHING = Sight(everything=True)
NOTHING = Sight(scope=())


def holder_key(principal: Principal) -> str:
    """The key break-glass grants are recorded under: the person, within their organisation."""
    return f"{principal.organisation or '-'}|{principal.subject}"


def sight(
    principal: Principal | None,
    interaction: FhirInteraction,
    resource_type: str | None,
    config: PolicyConfig,
) -> Sight:
    """What ``principal`` may see while doing ``interaction`` on ``resource_type``.

    Write interactions get the role's sight without scope narrowing (what may be *changed* is
    decided by :func:`admit` and :func:`may_write`; to change a resource one must be able to see
    it, whatever one's read scopes). For a search, matches of the searched type need the ``s``
    permission and ``_include``d resources of other types ``r``.
    """
    if principal is None:
        return NOTHING
    if principal.is_operator:
        return EVERYTHING
    rule = ROLE_RULES[principal.role]
    scope = (
        None if interaction.writes else _scope_grants(principal, rule, interaction, resource_type)
    )
    role = principal.role
    if role is Role.CLINICIAN:
        return Sight(
            scope=scope,
            own_organisation=principal.organisation,
            care_of=CareParty(
                principal.organisation, principal.fhir_user, config.encounter_window_days
            ),
            break_glass_holder=holder_key(principal),
            shared_types=DIRECTORY_TYPES,
            consent=consent_rule(principal, config),
        )
    if role is Role.SYSTEM:
        return Sight(
            scope=scope,
            own_organisation=principal.organisation,
            care_of=CareParty(principal.organisation, None, config.encounter_window_days),
            shared_types=DIRECTORY_TYPES,
            consent=consent_rule(principal, config),
        )
    if role is Role.PATIENT:
        return Sight(
            scope=scope,
            own_patient=principal.patient_id,
            shared_types=DIRECTORY_TYPES,
            not_for_patient=config.not_for_patient_labels,
        )
    # Reviewers, administrators, privacy officers: shared directory data only.
    # (AuditEvent, which they may also search, is the audit log's: see audit_sight.)
    return Sight(scope=scope, shared_types=DIRECTORY_TYPES & (rule.read_types or frozenset()))


def consent_rule(principal: Principal, config: PolicyConfig) -> ConsentRule:
    """The consent withholding for a clinician or organisation system: provisions are matched
    against its organisation and its purpose of use (treatment unless the token says otherwise)."""
    purpose = principal.purpose_of_use or PurposeOfUse.TREAT
    return ConsentRule(
        model=config.sharing_model,
        recipient=principal.organisation,
        purpose=purpose.value,
        sensitive_labels=config.sensitive_labels,
        always_shared=config.always_shared_types,
    )


def _scope_grants(
    principal: Principal, rule: RoleRule, interaction: FhirInteraction, resource_type: str | None
) -> tuple[ScopeGrant, ...] | None:
    permission = interaction.permission or Interaction.READ
    scopes = [s for s in principal.scopes.resource if s.context in rule.contexts]
    if resource_type is not None and permission is Interaction.READ:
        # One resource of a known type: only that type's read access matters.
        found = access(scopes, rule.contexts, resource_type, permission)
        if not found.allowed:
            return ()
        return None if found.unrestricted else (ScopeGrant(resource_type, found.filters),)
    grants: list[ScopeGrant] = []
    if resource_type is not None:
        # A search: matches need ``s`` on the searched type, _include'd others need ``r``.
        found = access(scopes, rule.contexts, resource_type, permission)
        if found.allowed:
            grants.append(ScopeGrant(resource_type, found.filters))
        others = frozenset({resource_type})
        wanted = Interaction.READ
    else:
        others = frozenset()
        wanted = permission
    for scope in scopes:
        if wanted not in scope.interactions:
            continue
        filters = (scope.constraints,) if scope.constraints else ()
        if scope.resource_type == "*":
            grants.append(ScopeGrant(None, filters, others))
        elif scope.resource_type not in others:
            grants.append(ScopeGrant(scope.resource_type, filters))
    return _simplify(grants, others)


def _simplify(grants: list[ScopeGrant], others: frozenset[str]) -> tuple[ScopeGrant, ...] | None:
    """None when the grants admit every row of every type; the grants otherwise."""
    open_types = {g.resource_type for g in grants if not g.filters and g.resource_type}
    for grant in grants:
        if grant.resource_type is None and not grant.filters and grant.others_than <= open_types:
            return None
    unique = list(dict.fromkeys(grants))
    return tuple(unique)


# --- break-glass -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BreakGlassClaim:
    """A clinician's declared emergency access, as this request claims it."""

    reason: str
    purpose: PurposeOfUse
    minutes: int
    holder: str


MAX_REASON = 500


def break_glass_claim(
    principal: Principal | None, header_reason: str | None, config: PolicyConfig
) -> BreakGlassClaim | Refusal | None:
    """The break-glass this request claims (``X-Break-Glass-Reason`` header, or a token with
    purpose of use BTG/ETREAT and a reason), None if none, or a refusal.

    Only clinicians may break the glass: an organisation's system, a patient or a reviewer
    claiming it is refused (``403``), and an empty or unprintable reason is a ``400``.
    """
    if principal is None:
        return None
    if header_reason is not None:
        reason = header_reason.strip()
        purpose = PurposeOfUse.BTG
    elif principal.break_glass_reason is not None:
        reason = principal.break_glass_reason.strip()
        purpose = principal.purpose_of_use or PurposeOfUse.BTG
    else:
        return None
    if principal.role is not Role.CLINICIAN:
        return Refusal(403, "Only clinicians may declare break-glass access.")
    if purpose not in BREAK_GLASS_PURPOSES:
        return Refusal(403, "Break-glass needs purpose of use BTG or ETREAT.")
    if not reason or len(reason) > MAX_REASON or not _printable(reason):
        return Refusal(
            400,
            f"A break-glass reason must be typed text of 1 to {MAX_REASON} printable characters.",
        )
    return BreakGlassClaim(reason, purpose, config.break_glass_minutes, holder_key(principal))


def _printable(text: str) -> bool:
    return all(unicodedata.category(c)[0] != "C" for c in text)


def should_record_grant(
    claim: BreakGlassClaim | None,
    patient_id: str | None,
    *,
    has_relationship: bool,
    has_active_grant: bool,
) -> bool:
    """Whether to record a new break-glass grant for ``patient_id``.

    Only when emergency access is claimed, there is a patient in question, and the clinician has
    neither a care relationship with them (no override is needed) nor an unexpired grant (the
    override is already running: it is not extended by asking again).
    """
    return (
        claim is not None
        and patient_id is not None
        and not has_relationship
        and not has_active_grant
    )


# --- 3. may this write happen -----------------------------------------------------------------


@dataclass(frozen=True)
class WriteFacts:
    """What the service knows about one write, for :func:`may_write`."""

    interaction: FhirInteraction
    """CREATE, UPDATE, PATCH or DELETE."""
    resource_type: str
    patient_id: str | None = None
    """Whose record the written content belongs to (for a delete: the deleted resource's)."""
    previous_patient_id: str | None = None
    """For a change to an existing resource: whose record it was."""
    previous_author_org: str | None = None
    """For a change to an existing resource: the organisation that recorded the current version."""
    service_organisation: str | None = None
    """For an Encounter: the ODS code of the organisation providing it (``serviceProvider``)."""
    patient_reachable: bool = False
    """The writer has a care relationship or an unexpired break-glass grant for ``patient_id``."""
    patient_registered_by_writer: bool = False
    """The patient's Patient resource was recorded by the writer's organisation (it holds that
    registration as its own record)."""
    token_values: TokenValues | None = None
    """The content's coded values by search parameter, when the scopes have query constraints."""


def needs_token_values(
    principal: Principal, interaction: FhirInteraction, resource_type: str
) -> bool:
    """Whether :func:`may_write` needs ``WriteFacts.token_values`` (scopes with constraints)."""
    if principal.is_operator or interaction.permission is None:
        return False
    rule = ROLE_RULES[principal.role]
    found = access(principal.scopes, rule.contexts, resource_type, interaction.permission)
    return bool(found.filters)


def may_write(principal: Principal | None, facts: WriteFacts) -> Refusal | None:
    """None if ``principal`` may make this write; else why not (``401``/``403``).

    - role and scopes must allow the interaction on the type (and the content must meet the
      scopes' query constraints);
    - a patient writes only into their own record;
    - a clinician or organisation system writes into a patient's record while it has a care
      relationship (or, for a clinician, a break-glass grant) with the patient, or when its
      organisation recorded the patient's registration (the Patient resource); it may also
      register a new Patient, record an Encounter at its own organisation for any patient
      (recording the attendance is what opens the record), correct what its organisation
      recorded, and write data that belongs to no patient;
    - only the organisation that recorded a resource (its current version) may delete it.
    """
    refusal = admit(principal, facts.interaction, facts.resource_type)
    if refusal is not None or principal is None or principal.is_operator:
        return refusal
    rule = ROLE_RULES[principal.role]
    permission = facts.interaction.permission
    assert permission is not None
    found = access(principal.scopes, rule.contexts, facts.resource_type, permission)
    if found.filters and (facts.token_values is None or not found.matches(facts.token_values)):
        return Refusal(
            403,
            f"The token's scopes allow {permission.value} on {facts.resource_type} only for "
            "resources matching their query constraints.",
        )
    if principal.role is Role.PATIENT:
        own = principal.patient_id
        if (
            own is None
            or facts.patient_id != own
            or (
                facts.interaction is not FhirInteraction.CREATE and facts.previous_patient_id != own
            )
        ):
            return Refusal(403, "A patient may write only into their own record.")
        return None
    if principal.role not in (Role.CLINICIAN, Role.SYSTEM):
        return Refusal(403, f"The {principal.role.value} role may not write clinical data.")
    if facts.interaction is FhirInteraction.DELETE:
        if facts.previous_author_org is None or facts.previous_author_org != principal.organisation:
            return Refusal(403, "Only the organisation that recorded a resource may delete it.")
        return None
    if facts.patient_id is None or facts.patient_reachable or facts.patient_registered_by_writer:
        return None
    if facts.resource_type == "Patient" and facts.interaction is FhirInteraction.CREATE:
        return None
    if (
        facts.resource_type == "Encounter"
        and facts.service_organisation is not None
        and facts.service_organisation == principal.organisation
    ):
        return None
    if (
        facts.interaction is not FhirInteraction.CREATE
        and facts.previous_author_org is not None
        and facts.previous_author_org == principal.organisation
        and facts.previous_patient_id == facts.patient_id
    ):
        return None
    return Refusal(
        403,
        "No care relationship with this patient: record an Encounter at your organisation, "
        "or (clinicians) declare break-glass access with a reason.",
        for_relationship=True,
    )


# --- 4. what audit events may be seen ----------------------------------------------------------

AUDIT_TYPE = "AuditEvent"
"""Written only by the register itself: no one creates, changes or deletes one through the API."""


@dataclass(frozen=True)
class AuditSight:
    """Which audit events a requester may see, as data (``register/audit/visibility.py`` turns it
    into SQL). An event is visible when ``everything`` is set, or when one of these holds:

    - ``organisation``: the event's acting organisation is this one (a clinician's or system's
      own organisation's activity);
    - ``patient``: the event touched this patient's record (the patient's access log);
    - ``without_patients``: the event names no patient at all (token issuance, client changes).

    ``deidentified``: the events are served without anyone's identity (improvement reviewers,
    :func:`fhir_adapters.audit_event.deidentified`) and cannot be searched by patient, entity
    or agent.
    """

    everything: bool = False
    organisation: str | None = None
    patient: str | None = None
    without_patients: bool = False
    deidentified: bool = False

    @property
    def nothing(self) -> bool:
        """Whether no event at all is visible."""
        return not (self.everything or self.organisation or self.patient or self.without_patients)


AUDIT_NOTHING = AuditSight()


def audit_sight(principal: Principal | None) -> AuditSight:
    """What audit events ``principal`` may see through ``AuditEvent`` (read and search).

    Administrators and privacy officers (and the command line): all of them. Clinicians and
    organisation systems: their own organisation's. Improvement reviewers: only events whose
    patient rows are empty, de-identified (no patient, person, query or free text in what they
    are served; see :class:`AuditSight`). Patients: none here; they see the accesses to their
    own record through :func:`access_log_refusal` (``$access-log``).
    """
    if principal is None:
        return AUDIT_NOTHING
    if principal.is_operator or principal.role in (Role.ADMIN, Role.PRIVACY_OFFICER):
        return AuditSight(everything=True)
    if principal.role in (Role.CLINICIAN, Role.SYSTEM) and principal.organisation:
        return AuditSight(organisation=principal.organisation)
    if principal.role is Role.REVIEWER:
        return AuditSight(without_patients=True, deidentified=True)
    return AUDIT_NOTHING


def access_log_refusal(principal: Principal | None, patient_id: str) -> Refusal | None:
    """None if ``principal`` may read the access log of ``patient_id``'s record; else why not.

    The patient themselves, with their own token. Nobody else: a clinician does not learn who
    else looked, and privacy officers search ``AuditEvent?patient=`` (all events, unfiltered).
    """
    if principal is None:
        return Refusal(401, "This request needs a bearer token.")
    if principal.role is Role.PATIENT and principal.patient_id == patient_id:
        return None
    return Refusal(403, "Only the patient may read their record's access log.")


def review_refusal(principal: Principal | None) -> Refusal | None:
    """None if ``principal`` may work the access review queue (privacy officers); else why not."""
    if principal is None:
        return Refusal(401, "This request needs a bearer token.")
    if principal.is_operator or principal.role is Role.PRIVACY_OFFICER:
        return None
    return Refusal(403, "Only privacy officers review audited accesses.")


# --- 5. improvement review and patients' own reports of duplication ----------------------------


class ReviewUse(StrEnum):
    """What a caller wants of the duplicated-actions improvement review."""

    READ = "read"
    """Counts, rates, trends and de-identified drill-down."""
    RECORD_ACTION = "record-action"
    """Record an improvement action ("You said, we did")."""


@dataclass(frozen=True)
class ReviewGrant:
    """What the review may show a caller. The review only ever shows de-identified data
    (pseudonymous patient keys, counts under 5 suppressed, no names, NHS numbers, resource ids
    or free text); ``deidentified`` is stated so a caller cannot mistake it for an option."""

    deidentified: bool = True
    may_record_actions: bool = False


_REVIEW_GRANTS: Mapping[Role, ReviewGrant] = {
    Role.REVIEWER: ReviewGrant(deidentified=True, may_record_actions=True),
    Role.OPERATOR: ReviewGrant(deidentified=True, may_record_actions=True),
}
"""Roles that may use the improvement review. Clinicians, systems, patients, administrators and
privacy officers may not: the review is the improvement team's, and the clinical record (with
its DetectedIssues) is where care teams see findings."""


def review_access(principal: Principal | None, use: ReviewUse) -> ReviewGrant | Refusal:
    """What ``principal`` may see of the improvement review for ``use``, or why not (401/403)."""
    if principal is None:
        return Refusal(401, "This request needs a bearer token.")
    grant = _REVIEW_GRANTS.get(principal.role)
    if grant is None:
        return Refusal(403, f"The {principal.role.value} role may not use the improvement review.")
    if use is ReviewUse.RECORD_ACTION and not grant.may_record_actions:
        return Refusal(403, f"The {principal.role.value} role may not record improvement actions.")
    return grant


def may_report_duplicate(principal: Principal | None, patient_id: str) -> Refusal | None:
    """None if ``principal`` may report a duplicated action in ``patient_id``'s care; else why
    not. Patients report on their own record only (through their own access, with scopes that
    allow creating a DetectedIssue in it); the register's own checks report everything else."""
    if principal is None:
        return Refusal(401, "This request needs a bearer token.")
    if principal.role is not Role.PATIENT:
        return Refusal(
            403,
            "Only patients report duplications themselves; care teams see the register's own "
            "findings.",
        )
    if principal.patient_id != patient_id:
        return Refusal(403, "A patient may report duplications only in their own care.")
    rule = ROLE_RULES[Role.PATIENT]
    if not access(principal.scopes, rule.contexts, "DetectedIssue", Interaction.CREATE).allowed:
        return Refusal(403, "The token's scopes do not allow reporting (create DetectedIssue).")
    return None
