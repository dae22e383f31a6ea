"""docker-compose.yml cannot run here (no Docker engine), so check it against the code."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer.main
import yaml

from register.cli import app
from register.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _settings_env_names() -> set[str]:
    return {f"REGISTER_{name.upper()}" for name in Settings.model_fields}


def test_compose_sets_only_real_settings():
    service = _compose()["services"]["register"]
    names = set(service["environment"])
    assert names, "the service sets no settings"
    assert names <= _settings_env_names(), names - _settings_env_names()
    for value, name in ((service["environment"][n], n) for n in names):
        Settings(**{name.removeprefix("REGISTER_").lower(): value})  # each value parses


def test_compose_command_uses_real_cli_commands_and_options():
    command = _compose()["services"]["register"]["command"]
    script = command[-1] if isinstance(command, list) else command
    group = typer.main.get_command(app)
    assert hasattr(group, "commands")
    invocations = [part.strip() for part in script.split("&&")]
    assert invocations
    for invocation in invocations:
        words = shlex.split(invocation)
        assert words[0] == "careregister"
        sub = group.commands.get(words[1])
        assert sub is not None, f"unknown command {words[1]}"
        options = {opt for param in sub.params for opt in getattr(param, "opts", [])}
        for word in words[2:]:
            if word.startswith("--"):
                assert word in options, f"{words[1]} has no option {word}"


def test_compose_waits_for_a_healthy_database_with_a_named_volume():
    compose = _compose()
    db = compose["services"]["db"]
    assert db["image"].startswith("postgres:16")
    assert "healthcheck" in db and "healthcheck" in compose["services"]["register"]
    depends = compose["services"]["register"]["depends_on"]
    assert depends["db"]["condition"] == "service_healthy"
    volume = db["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]
    url = compose["services"]["register"]["environment"]["REGISTER_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://") and "@db:5432/" in url


def test_dockerfile_installs_the_cli():
    text = (ROOT / "Dockerfile").read_text()
    assert "pip install" in text and '"careregister"' in text


def test_readme_lists_every_setting():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in sorted(_settings_env_names()) if f"`{name}`" not in readme]
    assert not missing, f"settings missing from the README table: {missing}"


def test_ci_calls_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in readme
    assert "bash scripts/test.sh" in ci
    assert "bash scripts/serve.sh" in readme
