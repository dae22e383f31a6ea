"""The package boundaries of docs/architecture.md, for the identity side."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_AUTH = (
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "psycopg",
    "fastapi",
    "starlette",
    "register",
    "fhir_adapters",
    "fhir",
)


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def python_files(*packages: str) -> list[Path]:
    return [p for package in packages for p in sorted((ROOT / package).rglob("*.py"))]


def test_only_auth_jws_imports_python_jose() -> None:
    importers = {
        str(path.relative_to(ROOT))
        for path in python_files("auth", "register", "fhir_adapters", "tests")
        if any(name == "jose" or name.startswith("jose.") for name in imports(path))
    }
    assert importers == {"auth/jws.py"}


def test_auth_touches_no_database_http_routing_or_service_code() -> None:
    for path in python_files("auth"):
        for name in imports(path):
            top = name.split(".")[0]
            assert top not in FORBIDDEN_IN_AUTH, f"{path.relative_to(ROOT)} imports {name}"
