"""CSRF protection for every form of the pages.

- Signed-in forms: the token is bound to the server-side session (``WebSession.csrf``) and sent
  back in a hidden ``csrf_token`` field; every POST compares the two in constant time.
- The sign-in form (no session yet): double-submit, a random value in an HttpOnly cookie
  (``careregister_csrf``) that the hidden field must repeat.

Together with ``SameSite=Lax`` cookies, a page on another site can neither read the token nor
make the browser send a matching one.
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response

from register.web.sessions import WebSession, set_cookie

FIELD = "csrf_token"
COOKIE = "careregister_csrf"


class CsrfError(Exception):
    """A POST without the right CSRF token (answered 403)."""


def anonymous_token(request: Request) -> str:
    """The double-submit token for a form shown before sign-in (reused if the cookie has one)."""
    existing = request.cookies.get(COOKIE)
    if existing and 20 <= len(existing) <= 128:
        return existing
    token: str = getattr(request.state, "new_csrf", None) or secrets.token_urlsafe(32)
    request.state.new_csrf = token
    return token


def remember_anonymous(request: Request, response: Response) -> None:
    """Set the double-submit cookie if :func:`anonymous_token` made a new token."""
    token = getattr(request.state, "new_csrf", None)
    if token:
        set_cookie(response, request, COOKIE, token, 3600)


def check(request: Request, form: dict[str, str], session: WebSession | None) -> None:
    """Raise ``CsrfError`` unless the form carries the token of the session (or cookie)."""
    sent = form.get(FIELD, "")
    expected = session.csrf if session is not None else request.cookies.get(COOKIE, "")
    if not sent or not expected or not secrets.compare_digest(sent, expected):
        raise CsrfError
