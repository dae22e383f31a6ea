"""Jinja2 templates of the pages (``register/web/templates``), autoescaped, one render helper.

Every page gets the signed-in session (or None), its CSRF token, the navigation of its audience
and the asset URLs. Responses carry a Content-Security-Policy that allows scripts and styles from
this site only (charts read their data from a JSON block, never inline script), ``no-store`` so
a shared computer's back button shows no record after sign-out, and framing refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from register.web import csrf, plain
from register.web.sessions import WebSession

TEMPLATES = Path(__file__).parent / "templates"

env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html",), default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters["concept"] = plain.concept
env.filters["day"] = plain.day
env.filters["moment"] = plain.moment

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self' https://assets.nhs.uk; frame-ancestors 'none'; form-action 'self' "
        "https:; base-uri 'none'; object-src 'none'"
    ),
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

NAVIGATION: dict[str, list[tuple[str, str]]] = {
    "patient": [
        ("/my", "My summary"),
        ("/my/access", "Who looked at my record"),
        ("/my/sharing", "My sharing choices"),
        ("/my/report", "Tell us what went wrong"),
    ],
    "clinician": [("/clinician", "Find a patient")],
    "reviewer": [("/reviewer", "Duplicated work"), ("/reviewer/feedback", "Patient feedback")],
    "privacy_officer": [("/privacy", "Access review queue")],
    "admin": [],
}


def page(
    request: Request,
    template: str,
    session: WebSession | None,
    *,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    """Render ``template`` as a full page for ``session`` (None: signed out)."""
    token = session.csrf if session is not None else csrf.anonymous_token(request)
    role = session.identity.role if session is not None else None
    body = env.get_template(template).render(
        request=request,
        session=session,
        csrf_token=token,
        navigation=NAVIGATION.get(role or "", []),
        current_path=request.url.path,
        **values,
    )
    response = HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
    if session is None:
        csrf.remember_anonymous(request, response)
    return response
