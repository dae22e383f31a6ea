"""The withheld-items notice: a clinician is told when consent or confidentiality left something
out of a Bundle, never what or how many.

A searchset or ``$everything`` Bundle for a clinician or an organisation's system carries an
OperationOutcome entry (``search.mode = outcome``, issue code ``suppressed``, details
``confidential-items``: "Items excluded due to confidentiality and/or patient preferences.")
when at least one resource that would otherwise have been returned was withheld by the
patient's Consent or a sensitive label. The register finds out with one ``EXISTS``-style query
(``LIMIT 1``) over the same search, with the requester's visibility replaced by
:class:`register.visibility.WithheldVisibility` (visible but for the withholdings, and not
visible with them), over the whole result rather than the page: the notice is the same on every
page and says nothing about counts. The patient's own view never carries it (items not to be
disclosed to the patient must not be hinted at).
"""

from __future__ import annotations

from functools import lru_cache

from auth.policy import Sight
from fhir_adapters.bundles import entry_bytes
from fhir_adapters.operation_outcome import Issue, outcome_bytes
from register.context import RequestContext
from register.visibility import WithheldVisibility

WARNING_SYSTEM = "https://fhir.shared-care-register.nhs.uk/CodeSystem/warning"
MESSAGE = "Items excluded due to confidentiality and/or patient preferences."
NOTICE = Issue(
    "information",
    "suppressed",
    MESSAGE,
    details_code=(WARNING_SYSTEM, "confidential-items", "Confidential items"),
)


def withheld_visibility(ctx: RequestContext) -> WithheldVisibility | None:
    """The visibility of what withholdings removed, when this requester is to be told of it
    (clinicians and organisation systems: their Sight has a consent rule); None otherwise."""
    sight = getattr(ctx.visibility, "sight", None)
    if not isinstance(sight, Sight) or sight.consent is None or sight.everything:
        return None
    return _withheld(sight)


@lru_cache(maxsize=512)
def _withheld(sight: Sight) -> WithheldVisibility:
    return WithheldVisibility(sight)


def notice_entries(withheld: bool) -> list[bytes]:
    """The Bundle entry carrying the notice, if something was withheld."""
    if not withheld:
        return []
    return [entry_bytes(resource=outcome_bytes([NOTICE]), search={"mode": "outcome"})]
