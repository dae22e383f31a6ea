"""Who is asking: the ``Principal`` built from a verified token, and the CLI's ``OPERATOR``.

A principal is plain data. The policy decision point (``auth.policy``, phase 2) reads it; the
storage layer turns that decision into SQL. Nothing here grants access by itself.

Claims the register puts in its access tokens (besides the standard ``iss``, ``sub``, ``aud``,
``exp``, ``iat``, ``nbf``, ``jti``, ``scope``):

===================== ==========================================================================
``role``              one of :data:`TOKEN_ROLES` (``operator`` is never accepted from a token)
``client_id``         the OAuth client that obtained the token
``fhirUser``          ``Practitioner/x``, ``PractitionerRole/y``, ``Patient/z`` (relative only)
``org``               ODS code of the organisation the user acts for
``purpose_of_use``    v3-ActReason code: ``TREAT``, ``ETREAT``, ``BTG``, ``HOPERAT``, ``PATRQT``
``break_glass_reason`` typed reason for emergency access; needs purpose ``BTG`` or ``ETREAT``
===================== ==========================================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from auth.claims import required_string
from auth.errors import TokenError, TokenErrorReason
from auth.scopes import ScopeSet, parse_scopes


class Role(StrEnum):
    """What kind of caller this is. The policy treats each role differently."""

    CLINICIAN = "clinician"
    """A member of a care team, acting for an organisation, needing a care relationship."""
    SYSTEM = "system"
    """A backend client (SMART Backend Services), acting for an organisation."""
    PATIENT = "patient"
    """A patient looking at their own record."""
    REVIEWER = "reviewer"
    """Sees de-identified aggregates (duplicate-action review), not records."""
    ADMIN = "admin"
    """Manages clients and keys; no clinical access by role alone."""
    PRIVACY_OFFICER = "privacy_officer"
    """Reviews access alerts, break-glass and audit trails."""
    OPERATOR = "operator"
    """The local command line (``careregister load``). Never carried by a token."""


TOKEN_ROLES: frozenset[Role] = frozenset(Role) - {Role.OPERATOR}
"""Roles a token may carry."""


class PurposeOfUse(StrEnum):
    """Purposes of use the register understands (HL7 v3-ActReason codes)."""

    TREAT = "TREAT"
    """Treatment (direct care)."""
    ETREAT = "ETREAT"
    """Emergency treatment."""
    BTG = "BTG"
    """Break the glass."""
    HOPERAT = "HOPERAT"
    """Healthcare operations (review, audit)."""
    PATRQT = "PATRQT"
    """Patient requested (a patient viewing their own record)."""


PURPOSE_OF_USE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
BREAK_GLASS_PURPOSES: frozenset[PurposeOfUse] = frozenset({PurposeOfUse.BTG, PurposeOfUse.ETREAT})

_FHIR_USER_TYPES: dict[Role, frozenset[str]] = {
    Role.CLINICIAN: frozenset({"Practitioner", "PractitionerRole"}),
    Role.PATIENT: frozenset({"Patient"}),
    Role.SYSTEM: frozenset({"Device", "Organization"}),
    Role.REVIEWER: frozenset({"Practitioner", "PractitionerRole"}),
    Role.ADMIN: frozenset({"Practitioner", "PractitionerRole"}),
    Role.PRIVACY_OFFICER: frozenset({"Practitioner", "PractitionerRole"}),
}
_FHIR_USER_REQUIRED = frozenset({Role.CLINICIAN, Role.PATIENT})
_ORG_REQUIRED = frozenset({Role.CLINICIAN, Role.SYSTEM})

_REFERENCE = re.compile(r"^(?P<type>[A-Z][A-Za-z]{0,63})/(?P<id>[A-Za-z0-9\-.]{1,64})$")
ODS_CODE = re.compile(r"^[A-Z0-9]{3,10}$")
_MAX_REASON = 500


@dataclass(frozen=True)
class Principal:
    """The caller of one request, as established by a verified token (or the CLI)."""

    role: Role
    subject: str
    client_id: str
    scopes: ScopeSet
    fhir_user: str | None = None
    organisation: str | None = None
    purpose_of_use: PurposeOfUse | None = None
    break_glass_reason: str | None = None
    token_id: str | None = None
    expires_at: float | None = None

    @property
    def fhir_user_type(self) -> str | None:
        """The resource type of ``fhir_user`` (``Practitioner``, ``Patient``, ...)."""
        return self.fhir_user.split("/", 1)[0] if self.fhir_user else None

    @property
    def patient_id(self) -> str | None:
        """For a patient, the id of their own Patient resource; otherwise ``None``."""
        if self.role is Role.PATIENT and self.fhir_user_type == "Patient":
            return self.fhir_user.split("/", 1)[1]  # type: ignore[union-attr]
        return None

    @property
    def is_break_glass(self) -> bool:
        """Whether this request claims emergency access (a reason with purpose BTG/ETREAT)."""
        return self.break_glass_reason is not None

    @property
    def is_operator(self) -> bool:
        """Whether this is the local command line rather than a token holder."""
        return self.role is Role.OPERATOR

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Principal:
        """Build a principal from *verified* token claims, checking the register's claims.

        Raises ``TokenError`` (``missing_claim`` / ``invalid_claim``) when a claim is absent or
        does not fit the role: a token that cannot say who it is for grants nothing.
        """
        role = _role(claims.get("role"))
        subject = required_string(claims, "sub")
        client_id = required_string(claims, "client_id")
        scope = claims.get("scope")
        if scope is None:
            raise TokenError(TokenErrorReason.MISSING_CLAIM)
        if not isinstance(scope, str):
            raise TokenError(TokenErrorReason.INVALID_CLAIM)
        fhir_user = _fhir_user(role, claims.get("fhirUser"))
        organisation = _organisation(role, claims.get("org"))
        purpose = _purpose(claims.get("purpose_of_use"))
        reason = _break_glass_reason(purpose, claims.get("break_glass_reason"))
        token_id = claims.get("jti")
        expires_at = claims.get("exp")
        return cls(
            role=role,
            subject=subject,
            client_id=client_id,
            scopes=parse_scopes(scope),
            fhir_user=fhir_user,
            organisation=organisation,
            purpose_of_use=purpose,
            break_glass_reason=reason,
            token_id=token_id if isinstance(token_id, str) else None,
            expires_at=float(expires_at) if isinstance(expires_at, int | float) else None,
        )


def _role(value: Any) -> Role:
    if value is None:
        raise TokenError(TokenErrorReason.MISSING_CLAIM)
    try:
        role = Role(value)
    except ValueError:
        raise TokenError(TokenErrorReason.INVALID_CLAIM) from None
    if role not in TOKEN_ROLES:
        raise TokenError(TokenErrorReason.INVALID_CLAIM)
    return role


def _fhir_user(role: Role, value: Any) -> str | None:
    if value is None:
        if role in _FHIR_USER_REQUIRED:
            raise TokenError(TokenErrorReason.MISSING_CLAIM)
        return None
    match = _REFERENCE.match(value) if isinstance(value, str) else None
    if match is None or match.group("type") not in _FHIR_USER_TYPES[role]:
        raise TokenError(TokenErrorReason.INVALID_CLAIM)
    return match.group(0)


def _organisation(role: Role, value: Any) -> str | None:
    if value is None:
        if role in _ORG_REQUIRED:
            raise TokenError(TokenErrorReason.MISSING_CLAIM)
        return None
    if not isinstance(value, str) or not ODS_CODE.match(value):
        raise TokenError(TokenErrorReason.INVALID_CLAIM)
    return value


def _purpose(value: Any) -> PurposeOfUse | None:
    if value is None:
        return None
    try:
        return PurposeOfUse(value)
    except ValueError:
        raise TokenError(TokenErrorReason.INVALID_CLAIM) from None


def _break_glass_reason(purpose: PurposeOfUse | None, value: Any) -> str | None:
    if value is None:
        if purpose is PurposeOfUse.BTG:
            raise TokenError(TokenErrorReason.MISSING_CLAIM)
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_REASON:
        raise TokenError(TokenErrorReason.INVALID_CLAIM)
    if purpose not in BREAK_GLASS_PURPOSES:
        raise TokenError(TokenErrorReason.INVALID_CLAIM)
    return value


OPERATOR = Principal(
    role=Role.OPERATOR,
    subject="operator",
    client_id="careregister-cli",
    scopes=parse_scopes("system/*.cruds"),
    purpose_of_use=PurposeOfUse.HOPERAT,
)
"""The local command line (``careregister load`` and friends): whoever can run the CLI on the
server already holds the database. Never produced from a token; audit records it as such."""


def claims_for(
    *,
    role: Role,
    subject: str,
    client_id: str,
    scope: str,
    fhir_user: str | None = None,
    organisation: str | None = None,
    purpose_of_use: PurposeOfUse | None = None,
    break_glass_reason: str | None = None,
) -> dict[str, Any]:
    """The register's own claims for a token, checked by the same rules as
    :meth:`Principal.from_claims`, so the issuer never signs a token it would refuse."""
    claims: dict[str, Any] = {
        "sub": subject,
        "role": Role(role).value,
        "client_id": client_id,
        "scope": scope,
    }
    if fhir_user is not None:
        claims["fhirUser"] = fhir_user
    if organisation is not None:
        claims["org"] = organisation
    if purpose_of_use is not None:
        claims["purpose_of_use"] = PurposeOfUse(purpose_of_use).value
    if break_glass_reason is not None:
        claims["break_glass_reason"] = break_glass_reason
    try:
        Principal.from_claims(claims)
    except TokenError as exc:
        raise ValueError(f"refusing to issue a token the register would reject ({exc})") from None
    return claims
