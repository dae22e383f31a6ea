"""Who is asking and where: the context every interaction runs in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from register.storage import EVERYTHING, Visibility

if TYPE_CHECKING:
    from auth.principal import Principal
    from register.access_request import RequestAccess


@dataclass(frozen=True)
class RequestContext:
    """One request's context: its id, the base URL links use, and what the requester may see.

    ``visibility`` comes from the policy decision point; ``author_org`` is the organisation a
    writer acts for (recorded with every version it writes). ``principal`` is who is asking and
    ``access`` what the policy decided for this request (``register.access_request``); both are
    None only for the register's own work (migrations, tests of storage), which the write steps
    then leave unchecked. The command line passes ``auth.principal.OPERATOR``.
    """

    request_id: str
    base_url: str
    visibility: Visibility = EVERYTHING
    author_org: str | None = None
    principal: Principal | None = None
    access: RequestAccess | None = None
    settings: Any = None  # register.settings.Settings of the app serving the request
    extras: dict[str, Any] = field(default_factory=dict)

    def url(self, path: str) -> str:
        """An absolute URL under the FHIR base for ``path`` (``Patient/1``)."""
        return f"{self.base_url}/{path.lstrip('/')}"
