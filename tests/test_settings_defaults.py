"""The settings' defaults and what ``REGISTER_BASE_URL`` changes, as the README's table says."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi.testclient import TestClient

from register.app import create_app
from register.settings import Settings
from tests.conftest import issue_token
from tests.helpers import patient


def test_defaults_put_a_sqlite_file_under_var(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("REGISTER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.data_dir == Path("var")
    expected = tmp_path.resolve() / "var" / "register.sqlite3"
    assert settings.resolved_database_url == f"sqlite:///{expected}"
    assert settings.max_body_bytes == 10 * 1024 * 1024


def test_base_url_names_every_link_the_register_gives(settings, engine):
    base = "https://register.example.nhs.uk/fhir"
    app = create_app(settings.model_copy(update={"base_url": base}), engine=engine)
    headers = {"Authorization": f"Bearer {issue_token(app, base_url=base)}"}
    with TestClient(app, base_url="http://testserver", headers=headers) as client:
        created = client.post("/fhir/Patient", json=patient())
        assert created.status_code == 201, created.text
        assert created.headers["location"].startswith(f"{base}/Patient/")
        client.post("/fhir/Patient", json=patient())
        page = client.get("/fhir/Patient?_count=1").json()
        links = {link["relation"]: link["url"] for link in page["link"]}
        assert links["self"].startswith(f"{base}/Patient?") and links["next"].startswith(base)
