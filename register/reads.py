"""GET interactions as functions of (connection, context, query), returning FHIR JSON bytes.

Used by the HTTP routes and by GET entries inside transaction and batch Bundles, so both answer
exactly alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import Connection

from fhir_adapters.bundles import bundle_bytes, entry_bytes
from register import interactions, search, storage
from register.context import RequestContext
from register.errors import bad_request, not_found
from register.paging import decode_cursor, encode_cursor
from register.storage import Version

Params = list[tuple[str, str]]


def parse_instant(value: str, name: str) -> datetime:
    """A FHIR instant/dateTime query value as an aware datetime (400 naming ``name`` if bad)."""
    text = value.strip().replace(" ", "+")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(
            f"{name} must be a FHIR instant, like 2024-01-31T09:00:00Z.", name
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _count(params: Params, ctx: RequestContext, default: int, maximum: int) -> int:
    values = [v for k, v in params if k == "_count"]
    if not values:
        return default
    try:
        count = int(values[-1])
    except ValueError:
        raise bad_request("_count must be a whole number.", "_count") from None
    if count < 0:
        raise bad_request("_count must not be negative.", "_count")
    return min(count, maximum)


def history_bundle(
    conn: Connection,
    ctx: RequestContext,
    params: Params,
    *,
    resource_type: str | None = None,
    resource_id: str | None = None,
    default_count: int = 20,
    max_count: int = 1000,
) -> bytes:
    """A history Bundle for one resource, one type, or the whole system, newest first."""
    if resource_type is not None:
        interactions.check_type(resource_type)
    if resource_id is not None:
        interactions.check_id(resource_id)
    since = at = None
    before = None
    for name, value in params:
        if name == "_since":
            since = parse_instant(value, "_since")
        elif name == "_at":
            at = parse_instant(value, "_at")
        elif name == "_page":
            before = decode_cursor(value).get("before")
    count = _count(params, ctx, default_count, max_count)
    page = storage.history(
        conn,
        ctx.visibility,
        resource_type=resource_type,
        resource_id=resource_id,
        since=since,
        at_or_before=at,
        count=max(count, 1),
        before=before if isinstance(before, int) else None,
    )
    unknown = (
        resource_id is not None
        and not page.versions
        and before is None
        and storage.read(conn, ctx.visibility, resource_type or "", resource_id) is None
    )
    if unknown:  # an unknown (or invisible) resource has no history to show
        raise not_found(f"{resource_type}/{resource_id} is not known.")
    path = "/".join(p for p in (resource_type, resource_id, "_history") if p)
    keep = [(k, v) for k, v in params if k not in ("_page",)]
    links = [("self", _link(ctx, path, params))]
    if page.next_before is not None and count > 0:
        cursor = encode_cursor({"before": page.next_before})
        links.append(("next", _link(ctx, path, [*keep, ("_page", cursor)])))
    versions = page.versions if count > 0 else []
    return bundle_bytes("history", (_history_entry(v, ctx) for v in versions), links=links)


def _link(ctx: RequestContext, path: str, params: Params) -> str:
    query = urlencode(params)
    return ctx.url(path) + (f"?{query}" if query else "")


def _history_entry(version: Version, ctx: RequestContext) -> bytes:
    path = f"{version.resource_type}/{version.resource_id}"
    if version.deleted:
        request = {"method": "DELETE", "url": path}
        status = "204 No Content"
    elif version.method == "POST":
        request = {"method": "POST", "url": version.resource_type}
        status = "201 Created"
    else:
        request = {"method": version.method, "url": path}
        status = "201 Created" if version.version_id == 1 else "200 OK"
    response = {
        "status": status,
        "etag": version.etag,
        "lastModified": version.last_updated.isoformat(),
    }
    return entry_bytes(
        full_url=ctx.url(path),
        resource=None if version.deleted else version.content,
        request=request,
        response=response,
    )


def get(conn: Connection, ctx: RequestContext, url: str) -> tuple[int, bytes]:
    """Answer a relative GET url (``Patient/1``, ``Observation?code=x``, ``Patient/1/_history``)."""
    path, _, query = url.partition("?")
    params = parse_qsl(query, keep_blank_values=True)
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise bad_request("A GET entry must name a resource type.")
    if parts == ["_history"]:
        return 200, history_bundle(conn, ctx, params)
    resource_type = parts[0]
    interactions.check_type(resource_type)
    if len(parts) == 1:
        return 200, search.search_bundle(conn, ctx, resource_type, params)
    if len(parts) == 2 and parts[1] == "_history":
        return 200, history_bundle(conn, ctx, params, resource_type=resource_type)
    resource_id = parts[1]
    if len(parts) == 2:
        version = interactions.read(conn, ctx, resource_type, resource_id)
        return 200, version.content or b""
    if len(parts) == 3 and parts[2] == "_history":
        return 200, history_bundle(
            conn, ctx, params, resource_type=resource_type, resource_id=resource_id
        )
    if len(parts) == 4 and parts[2] == "_history":
        version = interactions.vread(conn, ctx, resource_type, resource_id, parts[3])
        return 200, version.content or b""
    raise bad_request(f"Cannot answer GET {path[:80]} inside a Bundle.")
