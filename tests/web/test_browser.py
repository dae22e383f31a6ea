"""End to end in a real browser: Playwright driving Debian's Chromium against the real app.

The app runs under uvicorn on a loopback port, on SQLite and on PostgreSQL, the demo loaded.
Each audience's main journey is walked through; every page is saved as a screenshot in
``tests/artifacts/`` (kept by CI, ignored by git) and checked with axe-core (from the npm
registry, ``careregister assets``) for WCAG 2.2 A/AA violations: none serious or critical may
remain. One page is also checked at a phone's width.

Chromium is Debian's package (``/usr/bin/chromium``; ``.ci/run`` installs it). Without it, or
without the front-end packages, these tests skip, except when ``REGISTER_REQUIRE_BROWSER=1``
(as in CI), where that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from register.access_schema import break_glass_table
from register.app import create_app
from register.db import create_db_engine
from register.demo import load_demo
from register.settings import Settings
from register.web.assets import manifest
from tests.conftest import BACKENDS, _truncate_postgres

CHROMIUM = Path(os.environ.get("REGISTER_CHROMIUM", "/usr/bin/chromium"))
REQUIRED = os.environ.get("REGISTER_REQUIRE_BROWSER") == "1"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ASSETS = Path(Settings().web_assets_dir).resolve()
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
PHONE = {"width": 375, "height": 812}
SHOTS = {"backend": "sqlite"}  # which database the current module run uses (screenshot names)


def _unavailable(why: str) -> None:
    if REQUIRED:
        pytest.fail(f"REGISTER_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=BACKENDS)
def live_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
) -> Iterator[tuple[str, Any]]:
    """The real app under uvicorn on a loopback port, on each database, with the demo loaded."""
    import uvicorn

    _, packages = manifest()
    missing = [p.name for p in packages if not (ASSETS / p.name / ".integrity").is_file()]
    if missing:
        _unavailable(f"front-end packages missing in {ASSETS}: run careregister assets")
    folder = tmp_path_factory.mktemp("browser")
    if request.param == "sqlite":
        database = folder / "register.sqlite3"
        shutil.copyfile(sqlite_template, database)
        engine = create_db_engine(f"sqlite:///{database}")
    else:
        engine = request.getfixturevalue("postgres_engine")
        _truncate_postgres(engine)
    port = _free_port()
    root = f"http://127.0.0.1:{port}"
    settings = Settings(
        data_dir=folder / "data",
        database_url=engine.url.render_as_string(hide_password=False),
        base_url=None,
        web_assets_dir=ASSETS,
    )
    load_demo(engine, settings, f"{root}/fhir")
    app = create_app(settings, engine=engine)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the app did not start under uvicorn")
        time.sleep(0.05)
    _seed_repeat_tests(app, root)
    yield root, engine
    server.should_exit = True
    thread.join(timeout=10)
    if request.param == "sqlite":
        engine.dispose()


def _seed_repeat_tests(app: Any, root: str) -> None:
    """The diabetes team repeats an HbA1c every few days: findings for the review to show."""
    import httpx

    from auth.principal import Role

    issued = app.state.access.endpoints(f"{root}/fhir").issuer.issue(
        role=Role.SYSTEM,
        subject="seed",
        client_id="browser-test-seed",
        scope="system/*.cruds",
        organisation="Y02002",
    )
    headers = {"Authorization": f"Bearer {issued.access_token}"}
    for n in range(6):
        observation = {
            "resourceType": "Observation",
            "status": "final",
            "code": {
                "coding": [{"system": "http://loinc.org", "code": "59261-8"}],
                "text": "HbA1c",
            },
            "subject": {"reference": "Patient/demo-margaret-thompson"},
            "effectiveDateTime": f"2025-07-{2 + 3 * n:02d}T09:00:00Z",
            "valueQuantity": {"value": 50 + n, "unit": "mmol/mol"},
        }
        answer = httpx.post(f"{root}/fhir/Observation", json=observation, headers=headers)
        assert answer.status_code == 201, answer.text


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium, live_server, request) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """A fresh browser context (no cookies) and page; nothing leaves the loopback."""
    root, _ = live_server
    SHOTS["backend"] = request.node.callspec.params.get("live_server", "sqlite")
    # bypass_csp only lets the test inject axe-core; the pages' own scripts are files.
    context = chromium.new_context(base_url=root, bypass_csp=True)
    context.route("**/*", _loopback_only)
    page = context.new_page()
    yield page
    context.close()


def _loopback_only(route: Any) -> None:
    if route.request.url.startswith("http://127.0.0.1"):
        route.continue_()
    else:
        route.abort()  # the NHS.UK web fonts: the pages fall back to Arial


def check(page: Any, name: str) -> None:
    """Screenshot the page into tests/artifacts and assert axe-core finds nothing serious."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if SHOTS["backend"] == "sqlite" else f"-{SHOTS['backend']}"
    page.screenshot(path=str(ARTIFACTS / f"{name}{suffix}.png"), full_page=True)
    page.add_script_tag(path=str(ASSETS / "axe-core" / "axe.min.js"))
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS
    )
    bad = [v for v in result["violations"] if v.get("impact") in ("serious", "critical")]
    summary = [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"][:3]]}
        for v in bad
    ]
    assert not bad, f"{name}: axe-core violations {json.dumps(summary)}"


def sign_in(page: Any, username: str) -> None:
    """Sign in through the form, as a person would."""
    page.goto("/sign-in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("demo")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def test_sign_in_page(browser_page) -> None:  # type: ignore[no-untyped-def]
    browser_page.goto("/sign-in")
    assert browser_page.get_by_role("heading", name="Sign in").is_visible()
    browser_page.keyboard.press("Tab")  # keyboard users meet the skip link first
    focused = browser_page.evaluate("document.activeElement.textContent.trim()")
    assert focused == "Skip to main content"
    assert browser_page.get_by_text("dr.okafor").is_visible()
    check(browser_page, "sign-in")
    browser_page.get_by_role("button", name="Sign in").click()  # empty: an error, announced
    assert browser_page.get_by_text("There is a problem").is_visible()
    check(browser_page, "sign-in-error")


def test_patient_journey(browser_page) -> None:  # type: ignore[no-untyped-def]
    page = browser_page
    sign_in(page, "margaret")
    assert page.url.endswith("/my")
    assert page.get_by_role("heading", name="My summary").is_visible()
    assert page.get_by_role("heading", name="Conditions").is_visible()
    # the HbA1c trend is drawn (Chart.js) and its table is there too
    page.wait_for_function(
        "() => { const c = document.querySelector('canvas');"
        " return c && window.Chart && Chart.getChart(c) !== undefined; }"
    )
    assert page.get_by_role("table", name="HbA1c over time").is_visible()
    check(page, "patient-summary")
    page.set_viewport_size(PHONE)
    check(page, "patient-summary-phone")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "the summary scrolls sideways on a phone"
    page.set_viewport_size({"width": 1280, "height": 800})
    # My sharing choices: every organisation, and mental health too; check, then confirm.
    # (The other tests of this module share the server: a narrower choice would hide the record
    # from the hospital in the clinician's journey. tests/web/test_sharing_pages.py covers it.)
    page.get_by_role("link", name="Who looked at my record").click()
    assert page.get_by_role("heading", name="Who looked at my record").is_visible()
    check(page, "patient-access-log")
    page.get_by_role("link", name="My sharing choices").click()
    assert page.get_by_role("heading", name="My sharing choices").is_visible()
    check(page, "patient-sharing")
    page.get_by_label("Share with every organisation caring for me").check()
    page.get_by_label("Share mental health", exact=False).check()
    page.get_by_role("button", name="Continue").click()
    assert page.get_by_role("heading", name="Check your sharing choices").is_visible()
    check(page, "patient-sharing-confirm")
    page.get_by_role("button", name="Confirm and save").click()
    page.wait_for_load_state()
    assert page.get_by_text("Your choices are saved").is_visible()
    check(page, "patient-sharing-saved")
    # Tell us what went wrong: a mistake first (the error summary), then a report and feedback.
    page.get_by_role("link", name="Tell us what went wrong").click()
    assert page.get_by_role("heading", name="Tell us what went wrong").is_visible()
    check(page, "patient-report")
    page.get_by_role("button", name="Send report").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="There is a problem").is_visible()
    check(page, "patient-report-error")
    page.get_by_label("I had a test again", exact=False).check()
    page.get_by_label("In your own words", exact=False).fill("My blood test was done twice")
    page.get_by_role("button", name="Send report").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Thank you, your report was sent").is_visible()
    check(page, "patient-report-sent")
    page.get_by_role("link", name="Tell us about something else").click()
    page.get_by_label("Waiting").check()
    page.get_by_role("button", name="Send feedback").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Thank you for your feedback").is_visible()


def test_clinician_journey(browser_page, live_server) -> None:  # type: ignore[no-untyped-def]
    _, engine = live_server
    page = browser_page
    sign_in(page, "dr.okafor")
    assert page.get_by_role("heading", name="Find a patient").is_visible()
    check(page, "clinician-find")
    page.goto("/clinician/patients/demo-margaret-thompson")  # no relationship yet
    assert page.get_by_role("heading", name="Record not available").is_visible()
    assert page.get_by_text("Type 2 diabetes").count() == 0
    check(page, "clinician-record-not-available")
    page.goto("/clinician")
    page.get_by_label("NHS number").fill("999 000 0019")
    page.get_by_role("button", name="Search by NHS number").click()
    assert page.get_by_text("There is a problem").is_visible()
    check(page, "clinician-find-invalid-nhs-number")
    page.get_by_label("NHS number").fill("999 000 0018")
    page.get_by_role("button", name="Search by NHS number").click()
    assert page.get_by_text("No patient you can see matches").is_visible()
    check(page, "clinician-find-not-visible")
    page.get_by_label("Emergency department").check()
    page.get_by_role("button", name="Record attendance").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Margaret Thompson").is_visible()
    assert page.get_by_text("The attendance is recorded").is_visible()
    check(page, "clinician-timeline")
    page.set_viewport_size(PHONE)
    check(page, "clinician-timeline-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_label("Show").select_option("Observation")
    page.get_by_role("button", name="Filter").click()
    assert "type=Observation" in page.url
    check(page, "clinician-timeline-filtered")
    # a questionnaire pre-filled from the register: confirm one answer, type another, submit
    page.get_by_role("link", name="Start a hospital admission clerking, pre-filled").click()
    assert page.get_by_role("heading", name="Admission clerking").is_visible()
    check(page, "clinician-questionnaire")
    page.get_by_role("group", name="Past medical history").get_by_label(
        "Confirmed with the patient"
    ).check()
    page.get_by_role("group", name="Weight").get_by_label("Answer").fill("82")
    page.get_by_role("button", name="Submit answers").click()
    page.wait_for_load_state()
    assert page.get_by_text("The answers are saved in the shared record").is_visible()
    # break-glass for a patient the hospital has no relationship with
    page.goto("/clinician?nhs=9990000034")
    page.get_by_label("Reason for emergency access").fill(
        "Collapsed in the emergency department, unable to give a history"
    )
    page.get_by_role("button", name="Start emergency access").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Priya Sharma").is_visible()
    assert page.get_by_text("Emergency (break-glass) access in use this session").is_visible()
    check(page, "clinician-break-glass-timeline")
    with engine.connect() as conn:
        reasons = conn.execute(select(break_glass_table.c.reason)).scalars().all()
    assert "Collapsed in the emergency department, unable to give a history" in reasons


def test_reviewer_journey(browser_page) -> None:  # type: ignore[no-untyped-def]
    page = browser_page
    sign_in(page, "reviewer")
    assert page.get_by_role("heading", name="Duplicated work").is_visible()
    page.wait_for_function(
        "() => { const c = document.querySelector('canvas');"
        " return c && window.Chart && Chart.getChart(c) !== undefined; }"
    )
    assert page.get_by_role("table", name=re.compile("per 1,000 relevant actions by month")).count()
    check(page, "review-dashboard")
    page.get_by_label("What was done").fill("Hospital reads HbA1c from the register first")
    page.get_by_label("Date of the change").fill("2026-11-01")
    page.get_by_role("button", name="Log action").click()
    page.wait_for_load_state()
    assert page.get_by_text("Hospital reads HbA1c from the register first").is_visible()
    page.goto("/reviewer/findings?rule=repeat-test")
    assert page.get_by_role("table", name="De-identified findings").is_visible()
    check(page, "review-findings")
    page.get_by_role("link", name="Patient feedback").click()
    assert page.get_by_role("heading", name="Patient feedback themes").is_visible()
    check(page, "review-feedback")


def test_privacy_officer_journey(browser_page) -> None:  # type: ignore[no-untyped-def]
    page = browser_page
    sign_in(page, "dr.okafor")
    page.goto("/clinician?nhs=9990000042")
    page.get_by_label("Reason for emergency access").fill("Found unresponsive at home, GP closed")
    page.get_by_role("button", name="Start emergency access").click()
    page.wait_for_load_state()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
    sign_in(page, "privacy")
    assert page.get_by_role("heading", name="Access review queue").is_visible()
    card = page.get_by_role("region").filter(has_text="Found unresponsive at home, GP closed")
    assert card.is_visible()
    check(page, "privacy-queue")
    card.get_by_label("Appropriate", exact=True).check()  # not "Inappropriate"
    card.get_by_label("Note").fill("Emergency attendance confirmed")
    card.get_by_role("button", name="Save review").click()
    page.wait_for_load_state()
    assert page.get_by_text("Found unresponsive at home, GP closed").count() == 0
    page.goto("/privacy?show=all")
    assert page.get_by_text("Emergency attendance confirmed").is_visible()
    check(page, "privacy-queue-all")


def test_administrator_page(browser_page) -> None:  # type: ignore[no-untyped-def]
    sign_in(browser_page, "admin")
    assert browser_page.get_by_role("heading", name="Signed in").is_visible()
    check(browser_page, "admin-signed-in")
