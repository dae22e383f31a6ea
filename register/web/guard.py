"""What every page handler starts with: the session, the audience check and the form's CSRF check.

This is not a permission check on data (the FHIR API's policy decides what a page shows); it
only sends people to the pages of their audience (a patient asking for a clinician's page is
sent to sign in) and refuses forms without the session's CSRF token.
"""

from __future__ import annotations

from starlette.requests import Request

from register.web import csrf, sessions
from register.web.sessions import WebSession


class SignInNeeded(Exception):
    """No session, or a session of another audience: the answer is the sign-in page."""


async def session_for(request: Request, *roles: str) -> WebSession:
    """The request's session, which must be of one of ``roles`` (any role if none given)."""
    session = sessions.load(request)
    if session is None or (roles and session.identity.role not in roles):
        raise SignInNeeded
    return session


async def form_of(request: Request, session: WebSession | None) -> dict[str, str]:
    """The posted form as a dict (last value of each name), after the CSRF check."""
    form = {key: str(value) for key, value in (await request.form()).multi_items()}
    csrf.check(request, form, session)
    return form


async def form_lists(request: Request) -> dict[str, list[str]]:
    """Every value of each posted name (for checkbox groups); call after :func:`form_of`."""
    lists: dict[str, list[str]] = {}
    for key, value in (await request.form()).multi_items():
        lists.setdefault(key, []).append(str(value))
    return lists
