"""Helpers for the pages' tests: signing in through the real sign-in form, reading forms."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
DEMO_PASSWORD = "demo"


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = CSRF.search(html)
    assert match, "page has no form with a CSRF token"
    return match.group(1)


def sign_in(client: TestClient, username: str, password: str = DEMO_PASSWORD) -> str:
    """Sign in through the sign-in form; the page the person lands on (its path)."""
    form = client.get("/sign-in")
    assert form.status_code == 200
    answer = client.post(
        "/sign-in",
        data={"csrf_token": csrf_token(form.text), "username": username, "password": password},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return str(answer.headers["location"])


def text_of(html: str) -> str:
    """The visible words of a page, tags removed and spaces collapsed (what no-JS readers get)."""
    without_scripts = re.sub(r"<script.*?</script>", " ", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", without_scripts).split())
