"""Shared fixtures: a real database of each kind (SQLite and PostgreSQL) and the real app.

Every test that takes ``engine``, ``client`` or ``app`` runs once on SQLite and once on
PostgreSQL. PostgreSQL comes from ``REGISTER_TEST_POSTGRES_URL`` (``.ci/postgres.sh`` starts a
throw-away server and prints it). When ``REGISTER_REQUIRE_POSTGRES=1`` (as in CI) a missing
server is an error, and any skipped PostgreSQL test fails the run.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

warnings.filterwarnings("ignore", message=".*httpx2.*")

from fastapi.testclient import TestClient  # noqa: E402

from register.app import create_app  # noqa: E402
from register.db import create_db_engine  # noqa: E402
from register.migrate import upgrade  # noqa: E402
from register.settings import Settings, get_settings  # noqa: E402

BACKENDS = ("sqlite", "postgresql")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REQUIRE_POSTGRES = os.environ.get("REGISTER_REQUIRE_POSTGRES") == "1"


def shared_data(subfolder: str = "") -> Path:
    """A folder or file of the team's shared test data (../shared/data), present in CI.

    Elsewhere a test needing it is skipped; in CI (``REGISTER_REQUIRE_SHARED_DATA=1``) its
    absence is a failure, so such tests can never pass by being skipped.
    """
    candidates = [Path(p) for p in (os.environ.get("REGISTER_SHARED_DATA"),) if p] + [
        SHARED_DATA,
        Path("/work/shared/data"),
    ]
    for candidate in candidates:
        if (candidate / subfolder).exists():
            return candidate / subfolder
    if os.environ.get("REGISTER_REQUIRE_SHARED_DATA") == "1":
        pytest.fail(f"shared test data folder '{subfolder}' not found in {candidates}")
    pytest.skip(f"shared test data '{subfolder}' not present")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating every time)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_engine(worker_id: str) -> Iterator[Engine]:
    """A migrated PostgreSQL database for this test worker."""
    url = os.environ.get("REGISTER_TEST_POSTGRES_URL")
    if not url:
        if REQUIRE_POSTGRES:
            pytest.fail("REGISTER_REQUIRE_POSTGRES=1 but REGISTER_TEST_POSTGRES_URL is not set")
        pytest.skip("PostgreSQL not configured (set REGISTER_TEST_POSTGRES_URL)")
    base = make_url(url)
    # Unique per run and worker: several checkouts may test against one server at once.
    name = f"{base.database}_{worker_id}_{os.getpid()}".replace("-", "_")
    admin = create_engine(base.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    engine = create_db_engine(base.set(database=name).render_as_string(hide_password=False))
    upgrade(engine)
    yield engine
    engine.dispose()
    admin = create_engine(base.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    """The pytest-xdist worker id, or 'main' without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _truncate_postgres(engine: Engine) -> None:
    with engine.begin() as conn:
        tables = [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                )
            )
        ]
        if tables:
            quoted = ", ".join(f'"{table}"' for table in tables)
            conn.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database kind under test."""
    return str(request.param)


@pytest.fixture
def engine(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[Engine]:
    """An empty, migrated database of the kind ``backend`` names."""
    if backend == "sqlite":
        path = tmp_path / "register.sqlite3"
        shutil.copyfile(sqlite_template, path)
        engine = create_db_engine(f"sqlite:///{path}")
        yield engine
        engine.dispose()
        return
    pg = request.getfixturevalue("postgres_engine")
    _truncate_postgres(pg)
    yield pg


@pytest.fixture
def settings(tmp_path: Path, engine: Engine) -> Settings:
    """Settings for a test app: its own data folder, the test database."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=engine.url.render_as_string(hide_password=False),
        base_url=None,
    )


@pytest.fixture
def app(settings: Settings, engine: Engine):  # type: ignore[no-untyped-def]
    """The real application on the test database."""
    return create_app(settings, engine=engine)


TEST_ORG = "TESTORG"
"""ODS code of the organisation the default test client acts for."""
TEST_BASE = "http://testserver/fhir"

_DEFAULT_SCOPES = {
    "system": "system/*.cruds",
    "clinician": "user/*.cruds",
    "patient": "patient/*.cruds",
    "reviewer": "user/*.rs",
    "admin": "user/*.rs",
    "privacy_officer": "user/*.rs",
}


def issue_token(  # type: ignore[no-untyped-def]
    app,
    role: str = "system",
    *,
    org: str | None = TEST_ORG,
    fhir_user: str | None = None,
    scope: str | None = None,
    subject: str | None = None,
    client_id: str | None = None,
    purpose: str | None = None,
    reason: str | None = None,
    base_url: str = TEST_BASE,
) -> str:
    """A token the test app accepts, signed by its embedded issuer, for ``role``.

    Clinicians default to ``Practitioner/test-practitioner``; patients need ``fhir_user``.
    ``base_url`` is the FHIR base the token is for (its audience): the test client's by default.
    """
    if role == "clinician" and fhir_user is None:
        fhir_user = "Practitioner/test-practitioner"
    if role == "patient":
        org = None
    endpoints = app.state.access.endpoints(base_url)
    return str(
        endpoints.issuer.issue(
            role=role,
            subject=subject or f"test-{role}",
            client_id=client_id or f"test-{role}-client",
            scope=scope or _DEFAULT_SCOPES[role],
            fhir_user=fhir_user,
            organisation=org,
            purpose_of_use=purpose,
            break_glass_reason=reason,
        ).access_token
    )


@pytest.fixture
def token_for(app):  # type: ignore[no-untyped-def]
    """``token_for(role, org=..., fhir_user=..., scope=...)``: a bearer token for the test app."""

    def make(role: str = "system", **options):  # type: ignore[no-untyped-def]
        return issue_token(app, role, **options)

    return make


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, engine: Engine, tmp_path: Path) -> Iterator[str]:
    """The environment ``careregister`` commands read, pointed at the test's database."""
    url = engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("REGISTER_DATABASE_URL", url)
    monkeypatch.setenv("REGISTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "300")
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """An HTTP client talking to the real app, as a system client of the test organisation
    (``system/*.cruds``): everything it writes is its own organisation's, so it reads it back."""
    headers = {"Authorization": f"Bearer {issue_token(app)}"}
    with TestClient(app, base_url="http://testserver", headers=headers) as test_client:
        yield test_client


@pytest.fixture
def bare_client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """An HTTP client that sends no token (for 401s, public endpoints and explicit headers)."""
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI, a PostgreSQL test that was skipped is a failure."""
    if not REQUIRE_POSTGRES:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = [
        report
        for report in reporter.stats.get("skipped", [])
        if "postgres" in str(getattr(report, "nodeid", "")).lower()
        or "postgresql" in str(report.longrepr).lower()
    ]
    if skipped:
        reporter.write_line(
            f"FAILED: {len(skipped)} PostgreSQL test(s) skipped while PostgreSQL is required",
            red=True,
        )
        session.exitstatus = 1
