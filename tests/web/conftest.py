"""Fixtures for the pages: the real app on each database, with the demo loaded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from register.demo import load_demo


@pytest.fixture
def demo_app(app, engine, settings):  # type: ignore[no-untyped-def]
    """The real app with the demo (three organisations, their people, four patients)."""
    load_demo(engine, settings, "http://testserver/fhir")
    return app


@pytest.fixture
def browser_client(demo_app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """A cookie-keeping client, as a browser without JavaScript would be."""
    with TestClient(demo_app, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def other_browser(demo_app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """A second, separate browser (its own cookies)."""
    with TestClient(demo_app, base_url="http://testserver") as client:
        yield client
