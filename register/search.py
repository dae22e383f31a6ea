"""Search execution. Placeholder until the search issue lands: only ``_id`` is understood."""

from __future__ import annotations

from sqlalchemy import Connection

from register import storage
from register.context import RequestContext
from register.errors import bad_request
from register.storage import Version


def find_matches(
    conn: Connection, ctx: RequestContext, resource_type: str, params: list[tuple[str, str]]
) -> list[Version]:
    """The visible current resources of ``resource_type`` matching every parameter."""
    ids: set[str] | None = None
    for name, value in params:
        if name != "_id":
            raise bad_request(f"Search parameter '{name}' is not supported yet.", name)
        wanted = set(value.split(","))
        ids = wanted if ids is None else ids & wanted
    found = []
    for rid in sorted(ids or ()):
        version = storage.read(conn, ctx.visibility, resource_type, rid)
        if version is not None and not version.deleted:
            found.append(version)
    return found


def search_bundle(
    conn: Connection, ctx: RequestContext, resource_type: str, params: list[tuple[str, str]]
) -> bytes:
    """A searchset Bundle of the visible resources matching ``params``."""
    from fhir_adapters.bundles import bundle_bytes, entry_bytes

    criteria = [(k, v) for k, v in params if not k.startswith("_") or k == "_id"]
    found = find_matches(conn, ctx, resource_type, criteria) if criteria else []
    entries = [
        entry_bytes(
            full_url=ctx.url(f"{v.resource_type}/{v.resource_id}"),
            resource=v.content,
            search={"mode": "match"},
        )
        for v in found
    ]
    return bundle_bytes("searchset", entries, total=len(found))
