"""One request's access, as decided by ``auth.policy`` and carried in its ``RequestContext``.

The dispatcher admits a request (:mod:`register.access_gate`) and leaves a :class:`RequestAccess`
for it: the principal, the policy settings, any break-glass claim, and the visibility its reads
apply. Transaction and batch entries ask it again, entry by entry (:meth:`RequestAccess.admit`,
:meth:`RequestAccess.visibility_for`), so an entry can do nothing its own request could not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from auth.policy import (
    BreakGlassClaim,
    FhirInteraction,
    PolicyConfig,
    Refusal,
    admit,
    sight,
)
from auth.principal import Principal, Role
from fhir_adapters.operation_outcome import error
from register.errors import FhirError
from register.storage import Visibility
from register.visibility import SightVisibility

_CODES = {400: "invalid", 401: "login", 403: "forbidden"}


def refusal_error(refusal: Refusal, *, token_error: str | None = None) -> FhirError:
    """A policy refusal as the FhirError the API answers with (OperationOutcome + headers).

    401 carries ``WWW-Authenticate: Bearer`` (RFC 6750), with ``error="invalid_token"`` when a
    token was sent but refused; 403 names ``insufficient_scope``.
    """
    headers: dict[str, str] = {}
    if refusal.status == 401:
        challenge = 'Bearer realm="careregister"'
        if token_error:
            challenge += f', error="{token_error}"'
        headers["WWW-Authenticate"] = challenge
    elif refusal.status == 403:
        headers["WWW-Authenticate"] = 'Bearer realm="careregister", error="insufficient_scope"'
    code = _CODES.get(refusal.status, "forbidden")
    return FhirError(refusal.status, error(code, refusal.reason), headers=headers)


@dataclass(eq=False)
class RequestAccess:
    """What one request (or every request of one token doing one thing) may do and see."""

    principal: Principal
    config: PolicyConfig
    interaction: FhirInteraction
    resource_type: str | None
    visibility: Visibility
    break_glass: BreakGlassClaim | None = None
    _others: dict[tuple[FhirInteraction, str | None], Visibility] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    def build(
        cls,
        principal: Principal,
        config: PolicyConfig,
        interaction: FhirInteraction,
        resource_type: str | None,
        break_glass: BreakGlassClaim | None = None,
    ) -> RequestAccess:
        """The access for ``principal`` doing ``interaction`` (admission already checked)."""
        visibility = SightVisibility(sight(principal, interaction, resource_type, config))
        return cls(principal, config, interaction, resource_type, visibility, break_glass)

    @property
    def author_org(self) -> str | None:
        """The organisation writes are recorded for (clinicians and systems act for one)."""
        if self.principal.role in (Role.CLINICIAN, Role.SYSTEM, Role.OPERATOR):
            return self.principal.organisation
        return None

    def admit(self, interaction: FhirInteraction, resource_type: str | None) -> None:
        """Raise the 401/403 FhirError if the principal may not do this (an entry of a Bundle)."""
        refusal = admit(self.principal, interaction, resource_type)
        if refusal is not None:
            raise refusal_error(refusal)

    def visibility_for(self, interaction: FhirInteraction, resource_type: str | None) -> Visibility:
        """What the principal may see while doing ``interaction`` (a GET entry of a Bundle)."""
        key = (interaction, resource_type)
        if key == (self.interaction, self.resource_type):
            return self.visibility
        found = self._others.get(key)
        if found is None:
            found = SightVisibility(sight(self.principal, interaction, resource_type, self.config))
            if len(self._others) < 64:
                self._others[key] = found
        return found

    def with_break_glass(self, claim: BreakGlassClaim | None) -> RequestAccess:
        """This access for a request that also claims break-glass."""
        if claim is None:
            return self
        return RequestAccess(
            self.principal,
            self.config,
            self.interaction,
            self.resource_type,
            self.visibility,
            claim,
            self._others,
        )
