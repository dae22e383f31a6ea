"""Sign in (the embedded demo login, or an external OpenID Connect provider) and sign out."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from register.access_clients import authenticate_user
from register.access_schema import user_table
from register.api.deps import db_of, settings_of
from register.web import fhir_client, oidc, sessions
from register.web.guard import form_of
from register.web.render import page

router = APIRouter(include_in_schema=False)

HOME = {
    "patient": "/my",
    "clinician": "/clinician",
    "reviewer": "/reviewer",
    "privacy_officer": "/privacy",
}


def home_of(role: str) -> str:
    """The first page of an audience."""
    return HOME.get(role, "/signed-in")


def _demo_users(request: Request) -> list[dict[str, str]]:
    with db_of(request).read() as conn:
        rows = conn.execute(
            select(user_table.c.username, user_table.c.display, user_table.c.role)
            .where(user_table.c.enabled.is_(True))
            .order_by(user_table.c.role, user_table.c.username)
        ).all()
    return [dict(row._mapping) for row in rows]


def _sign_in_page(request: Request, *, status: int = 200, **values: object) -> Response:
    settings = settings_of(request)
    demo = settings.web_demo_login and settings.auth_password_login
    return page(
        request,
        "sign_in.html",
        None,
        status=status,
        title="Sign in",
        demo_login=demo,
        users=_demo_users(request) if demo else [],
        oidc_enabled=settings.web_oidc_enabled,
        oidc_name="NHS login",
        errors=values.pop("errors", {}),
        username=values.pop("username", ""),
    )


@router.get("/")
async def root(request: Request) -> Response:
    """The home page: the signed-in person's first page, or sign-in."""
    session = sessions.load(request)
    if session is None:
        return RedirectResponse("/sign-in", status_code=303)
    return RedirectResponse(home_of(session.identity.role), status_code=303)


@router.get("/sign-in")
async def sign_in_form(request: Request) -> Response:
    """The sign-in page: the demo login (listing demo users) and/or the external provider."""
    return await run_in_threadpool(_sign_in_page, request)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    """Check the username and password (the embedded login) and open a session."""
    form = await form_of(request, None)
    settings = settings_of(request)
    if not (settings.web_demo_login and settings.auth_password_login):
        return await run_in_threadpool(_sign_in_page, request, status=404)
    username, password = form.get("username", "").strip(), form.get("password", "")

    def check() -> object:
        with db_of(request).read() as conn:
            return authenticate_user(conn, username, password)

    user = await run_in_threadpool(check) if username and password else None
    if user is None:
        return await run_in_threadpool(
            _sign_in_page,
            request,
            status=400,
            errors={"username": "Enter a username and password that match a user of the register"},
            username=username,
        )
    identity = sessions.Identity(
        username=user.username,  # type: ignore[attr-defined]
        role=user.role.value,  # type: ignore[attr-defined]
        scope=user.scope,  # type: ignore[attr-defined]
        fhir_user=user.fhir_user,  # type: ignore[attr-defined]
        organisation=user.organisation,  # type: ignore[attr-defined]
        display=user.display,  # type: ignore[attr-defined]
    )
    response = RedirectResponse(home_of(identity.role), status_code=303)
    await run_in_threadpool(_replace_session, request, response, identity)
    return response


def _replace_session(request: Request, response: Response, identity: sessions.Identity) -> None:
    """A new session (new key) for every sign-in; any session the browser had is ended."""
    previous = sessions.load(request)
    if previous is not None:
        fhir_client.forget(previous)
        sessions.end(request, None, previous)
    sessions.start(request, response, identity)


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    """End the session (its row and cookie)."""
    session = sessions.load(request)
    await form_of(request, session)
    response = RedirectResponse("/sign-in", status_code=303)
    if session is not None:
        fhir_client.forget(session)
    await run_in_threadpool(sessions.end, request, response, session)
    return response


@router.get("/sign-in/oidc")
async def oidc_start(request: Request) -> Response:
    """Send the browser to the external provider (when one is configured)."""
    if not settings_of(request).web_oidc_enabled:
        return await run_in_threadpool(_sign_in_page, request, status=404)
    url, remembered = oidc.start(request)
    response = RedirectResponse(url, status_code=303)
    sessions.set_cookie(response, request, oidc.COOKIE, remembered, 600)
    return response


@router.get("/sign-in/oidc/callback")
async def oidc_callback(request: Request, code: str = "", state: str = "") -> Response:
    """The provider's answer: verify it, find the patient's record, open a session."""
    if not settings_of(request).web_oidc_enabled:
        return await run_in_threadpool(_sign_in_page, request, status=404)
    remembered = request.cookies.get(oidc.COOKIE, "")
    try:
        identity = await run_in_threadpool(oidc.finish, request, code, state, remembered)
    except oidc.OidcError as exc:
        return page(
            request,
            "message.html",
            None,
            status=400,
            title="Sign-in failed",
            message=str(exc),
            link="/sign-in",
            link_text="Back to sign in",
        )
    response = RedirectResponse(home_of(identity.role), status_code=303)
    response.delete_cookie(oidc.COOKIE, path="/")
    await run_in_threadpool(_replace_session, request, response, identity)
    return response


@router.get("/signed-in")
async def signed_in(request: Request) -> Response:
    """For roles without pages of their own (administrators): what to use instead."""
    session = sessions.load(request)
    if session is None:
        return RedirectResponse("/sign-in", status_code=303)
    return page(
        request,
        "message.html",
        session,
        title="Signed in",
        message="There are no pages for your role; administration is on the command line "
        "(careregister client, keys, break-glass).",
    )
