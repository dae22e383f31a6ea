"""Sessions and forms: cookie flags, CSRF on every POST, sign-out ends the session."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from register.app import create_app
from register.demo import load_demo
from register.schema import resource_table
from register.web.session_schema import web_session_table
from tests.web.helpers import csrf_token, sign_in


def _cookie_header(response) -> str:  # type: ignore[no-untyped-def]
    return "; ".join(v for k, v in response.headers.items() if k.lower() == "set-cookie")


def test_session_cookie_is_httponly_samesite_and_not_secure_over_http(browser_client) -> None:
    form = browser_client.get("/sign-in")
    answer = browser_client.post(
        "/sign-in",
        data={"csrf_token": csrf_token(form.text), "username": "margaret", "password": "demo"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/my"
    cookie = _cookie_header(answer)
    assert "careregister_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http here: a Secure cookie would never come back


def test_session_cookie_is_secure_when_the_base_url_is_https(engine, settings) -> None:
    https = settings.model_copy(update={"base_url": "https://register.example.nhs.uk/fhir"})
    app = create_app(https, engine=engine)
    load_demo(engine, https, "https://register.example.nhs.uk/fhir")
    with TestClient(app, base_url="https://register.example.nhs.uk") as client:
        form = client.get("/sign-in")
        assert "Secure" in _cookie_header(form)  # the double-submit cookie too
        answer = client.post(
            "/sign-in",
            data={"csrf_token": csrf_token(form.text), "username": "margaret", "password": "demo"},
            follow_redirects=False,
        )
        cookie = _cookie_header(answer)
        assert "careregister_session=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
        assert client.get("/my").status_code == 200


def test_the_session_key_is_stored_only_as_a_hash(browser_client, engine) -> None:
    sign_in(browser_client, "margaret")
    key = browser_client.cookies.get("careregister_session")
    with engine.connect() as conn:
        stored = conn.execute(select(web_session_table.c.key_hash)).scalars().all()
    assert len(stored) == 1 and key not in stored[0] and len(stored[0]) == 64


def test_sign_in_without_csrf_token_is_refused(browser_client) -> None:
    browser_client.get("/sign-in")
    answer = browser_client.post(
        "/sign-in", data={"username": "margaret", "password": "demo"}, follow_redirects=False
    )
    assert answer.status_code == 403
    assert "careregister_session" not in _cookie_header(answer)


def test_a_form_token_from_another_session_is_refused(
    browser_client, other_browser, engine
) -> None:
    sign_in(browser_client, "dr.okafor")
    sign_in(other_browser, "dr.patel")
    foreign = csrf_token(other_browser.get("/clinician").text)
    with engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(resource_table)).scalar()
    answer = browser_client.post(
        "/clinician/attendance",
        data={"csrf_token": foreign, "nhs": "9990000018", "class": "EMER"},
        follow_redirects=False,
    )
    assert answer.status_code == 403
    with engine.connect() as conn:
        after = conn.execute(select(func.count()).select_from(resource_table)).scalar()
    assert after == before  # nothing written


def test_every_form_on_every_page_carries_the_session_token(browser_client) -> None:
    sign_in(browser_client, "dr.okafor")
    page = browser_client.get("/clinician?nhs=9990000018").text
    forms = page.count('<form method="post"')
    assert forms >= 3  # sign out, attendance, break-glass
    session_token = csrf_token(page)
    assert page.count(f'value="{session_token}"') == forms


def test_sign_out_ends_the_session(browser_client) -> None:
    sign_in(browser_client, "margaret")
    old = browser_client.cookies.get("careregister_session")
    token = csrf_token(browser_client.get("/my").text)
    answer = browser_client.post("/sign-out", data={"csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/sign-in"
    browser_client.cookies.set("careregister_session", old)  # a copied cookie is dead too
    again = browser_client.get("/my", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/sign-in"


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(browser_client) -> None:
    form = browser_client.get("/sign-in")
    answer = browser_client.post(
        "/sign-in",
        data={"csrf_token": csrf_token(form.text), "username": "margaret", "password": "nope"},
        follow_redirects=False,
    )
    assert answer.status_code == 400
    assert "match a user" in answer.text
    assert "careregister_session" not in _cookie_header(answer)


def test_pages_are_not_cached_and_refuse_framing(browser_client) -> None:
    sign_in(browser_client, "margaret")
    answer = browser_client.get("/my")
    assert answer.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert "script-src 'self'" in answer.headers["content-security-policy"]


def test_signing_in_again_replaces_the_session(browser_client, engine) -> None:
    sign_in(browser_client, "margaret")
    first = browser_client.cookies.get("careregister_session")
    sign_in(browser_client, "dr.patel")
    second = browser_client.cookies.get("careregister_session")
    assert first != second
    with engine.connect() as conn:
        rows = conn.execute(select(web_session_table.c.username)).scalars().all()
    assert rows == ["dr.patel"]  # the earlier session is gone, not just forgotten by the browser
    browser_client.cookies.set("careregister_session", first)
    assert browser_client.get("/my", follow_redirects=False).status_code == 303
