"""Bundles built as bytes: stored resource JSON is spliced in, never re-serialised."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson


def entry_bytes(
    *,
    full_url: str | None = None,
    resource: bytes | None = None,
    search: Mapping[str, Any] | None = None,
    request: Mapping[str, Any] | None = None,
    response: Mapping[str, Any] | None = None,
) -> bytes:
    """One Bundle.entry; ``resource`` is raw JSON bytes and is copied in as they are."""
    parts: list[bytes] = []
    if full_url is not None:
        parts.append(b'"fullUrl":' + orjson.dumps(full_url))
    if resource is not None:
        parts.append(b'"resource":' + resource)
    if search is not None:
        parts.append(b'"search":' + orjson.dumps(search))
    if request is not None:
        parts.append(b'"request":' + orjson.dumps(request))
    if response is not None:
        parts.append(b'"response":' + orjson.dumps(response))
    return b"{" + b",".join(parts) + b"}"


def bundle_bytes(
    bundle_type: str,
    entries: Iterable[bytes],
    *,
    total: int | None = None,
    links: Iterable[tuple[str, str]] = (),
    timestamp: datetime | None = None,
) -> bytes:
    """A Bundle of ``bundle_type`` around already-serialised entries."""
    head: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": _instant(timestamp or datetime.now(UTC))},
        "type": bundle_type,
    }
    if total is not None:
        head["total"] = total
    link_list = [{"relation": relation, "url": url} for relation, url in links]
    if link_list:
        head["link"] = link_list
    if bundle_type in ("document", "message") or timestamp is not None:
        head["timestamp"] = head["meta"]["lastUpdated"]
    prefix = orjson.dumps(head)[:-1]
    body = b",".join(entries)
    if not body:
        return prefix + b"}"
    return prefix + b',"entry":[' + body + b"]}"


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
