"""``careregister demo``: a small shared care register to try the access rules on.

Loads (from ``register/data/demo/``, all data, no code) three organisations with ODS codes (a GP
practice, a community diabetes team, a hospital), their clinicians (Practitioner and
PractitionerRole), four patients with type 2 diabetes and their records (conditions, HbA1c over
time, metformin, reviews and clinics, a shared-care CareTeam linking the GP and the diabetes
team for three of them), the demo users of the embedded login and a backend client for the
hospital's patient administration system. Then prints, for each role, how to get a token and a
request to try.

Safe to run again: resources have fixed ids and are written only when they differ from what is
stored (so nothing gains a new version), users and the client are replaced, and the client's
key pair is made once (``<data dir>/demo/client-key.pem``, mode 0600).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine

from auth.client_assertion import client_jwks
from auth.keys import generate_private_key
from auth.principal import OPERATOR, Principal, Role
from auth.scopes import parse_scopes
from register import interactions, storage
from register.access_clients import add_client, put_user
from register.context import RequestContext
from register.db import write_transaction
from register.settings import Settings

DEMO_CLIENT_ID = "careregister-demo"


@dataclass
class DemoReport:
    """What a demo load did."""

    written: int = 0
    unchanged: int = 0
    users: int = 0
    client_id: str = ""
    key_file: Path | None = None


def _data(name: str) -> Any:
    text = resources.files("register").joinpath(f"data/demo/{name}").read_text(encoding="utf-8")
    return json.loads(text)


def _without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    meta = {
        k: v
        for k, v in (resource.get("meta") or {}).items()
        if k not in ("versionId", "lastUpdated")
    }
    out = {k: v for k, v in resource.items() if k != "meta"}
    if meta:
        out["meta"] = meta
    return out


def _principal_for(user: dict[str, Any] | None) -> Principal:
    if user is None:
        return OPERATOR
    return Principal(
        role=Role(user["role"]),
        subject=user["username"],
        client_id=DEMO_CLIENT_ID,
        scopes=parse_scopes(user["scope"]),
        fhir_user=user.get("fhir_user"),
        organisation=user.get("organisation"),
    )


def _upsert(conn: Connection, ctx: RequestContext, resource: dict[str, Any]) -> bool:
    """Write ``resource`` at its id unless the stored version already says the same."""
    resource_type, resource_id = resource["resourceType"], resource["id"]
    current = storage.read(conn, storage.EVERYTHING, resource_type, resource_id)
    if (
        current is not None
        and not current.deleted
        and current.content
        and _without_meta(orjson.loads(current.content)) == _without_meta(resource)
    ):
        return False
    interactions.update(conn, ctx, resource_type, resource_id, resource)
    return True


def _client_key(settings: Settings) -> tuple[Path, bytes]:
    from cryptography.hazmat.primitives import serialization

    folder = settings.data_dir / "demo"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / "client-key.pem"
    if not path.exists():
        pem = generate_private_key("ES384").private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
    return path, path.read_bytes()


def load_demo(engine: Engine, settings: Settings, base_url: str) -> DemoReport:
    """Load the demo into the database behind ``engine`` (idempotent)."""
    manifest = _data("demo.json")
    users = {user["username"]: user for user in manifest["users"]}
    report = DemoReport()
    with write_transaction(engine) as conn:
        for item in manifest["load"]:
            author = users.get(item["author"]) if item["author"] else None
            ctx = RequestContext(
                request_id="careregister-demo",
                base_url=base_url,
                author_org=item["recorded_by"],
                principal=_principal_for(author),
            )
            for entry in _data(item["file"])["entry"]:
                if _upsert(conn, ctx, entry["resource"]):
                    report.written += 1
                else:
                    report.unchanged += 1
        for user in manifest["users"]:
            put_user(
                conn,
                username=user["username"],
                password=manifest["password"],
                role=user["role"],
                scope=user["scope"],
                fhir_user=user.get("fhir_user"),
                organisation=user.get("organisation"),
                display=user.get("display"),
            )
            report.users += 1
        key_path, pem = _client_key(settings)
        client = manifest["client"]
        add_client(
            conn,
            organisation=client["organisation"],
            scope=client["scope"],
            jwks=client_jwks(pem),
            client_id=client["client_id"],
            name=client["name"],
        )
        report.client_id = client["client_id"]
        report.key_file = key_path
    return report


def instructions(report: DemoReport, base_url: str, password: str) -> str:
    """How to get a token for each role and what to try with it (shell commands)."""
    template = resources.files("register").joinpath("data/demo/instructions.txt")
    return template.read_text(encoding="utf-8").format(
        base=base_url,
        root=base_url.removesuffix("/fhir"),
        password=password,
        client_id=report.client_id,
        key=report.key_file,
    )
