"""The pages: server-rendered HTML for patients, clinicians, improvement reviewers and privacy
officers, served by the same app as the FHIR API.

Modules: ``sessions`` (server-side sessions, cookie flags), ``csrf``, ``sign_in`` and ``oidc``
(the embedded demo login and an external OpenID Connect provider), ``fhir_client`` (pages read
and write through the app's own FHIR API with the session's token, so the one policy decision
point decides what every page shows), ``render`` and ``plain`` (templates, plain words),
``assets`` (npm packages fetched at set-up time), and one module per audience's pages.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from register.web import (
    clinician_pages,
    patient_pages,
    privacy_pages,
    questionnaire_pages,
    report_pages,
    review_pages,
    sharing_pages,
    sign_in,
)
from register.web.csrf import CsrfError
from register.web.guard import SignInNeeded
from register.web.render import page

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Mount the pages, their static files and their error pages on ``app``."""
    settings = app.state.settings
    vendor = Path(settings.web_assets_dir)
    app.mount("/static/app", StaticFiles(directory=STATIC), name="web-static")
    app.mount("/static/vendor", StaticFiles(directory=vendor, check_dir=False), name="vendor")
    # The NHS.UK stylesheet refers to its icons at /assets/images/...
    app.mount(
        "/assets",
        StaticFiles(directory=vendor / "nhsuk-frontend" / "assets", check_dir=False),
        name="nhsuk-assets",
    )
    pages = (sign_in, patient_pages, clinician_pages, questionnaire_pages, review_pages)
    for module in (*pages, sharing_pages, report_pages, privacy_pages):
        app.include_router(module.router)

    @app.exception_handler(SignInNeeded)
    async def _sign_in_needed(request: Request, exc: SignInNeeded) -> Response:
        return RedirectResponse("/sign-in", status_code=303)

    @app.exception_handler(CsrfError)
    async def _csrf(request: Request, exc: CsrfError) -> Response:
        return page(
            request,
            "message.html",
            None,
            status=403,
            title="This form has expired",
            message="For your security the form could not be accepted. Go back, reload the "
            "page and try again.",
        )
