"""Transaction and batch Bundles (https://hl7.org/fhir/R4/http.html#transaction).

A transaction is all or nothing: it runs in one database transaction, in the order the
specification gives (DELETE, POST, PUT/PATCH, GET), with ``urn:uuid:`` placeholders and
conditional references resolved before anything is written; any failing entry rolls back every
other. A batch runs each entry on its own (a savepoint each) and reports each entry's outcome.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from sqlalchemy import Connection

from fhir_adapters.bundles import bundle_bytes, entry_bytes
from fhir_adapters.operation_outcome import Issue, error, outcome_bytes
from register import access_gate, access_writes, interactions
from register.audit.trail import note_read, undone_on_failure
from register.context import RequestContext
from register.errors import FhirError, bad_request, precondition_failed
from register.http_dates import http_date as imf_fixdate
from register.storage import Version

METHOD_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
STATUS_TEXT = {
    200: "200 OK",
    201: "201 Created",
    204: "204 No Content",
    304: "304 Not Modified",
    400: "400 Bad Request",
    403: "403 Forbidden",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    409: "409 Conflict",
    410: "410 Gone",
    412: "412 Precondition Failed",
    422: "422 Unprocessable Entity",
    500: "500 Internal Server Error",
}

# A GET inside a Bundle is answered by the same code as a GET over HTTP; the API layer passes
# a function that takes (relative url, context) and returns (status, body bytes).
GetHandler = Callable[[Connection, RequestContext, str], tuple[int, bytes]]


@dataclass
class _Entry:
    index: int
    method: str
    url: str
    resource: Any = None
    full_url: str | None = None
    if_none_exist: str | None = None
    if_match: str | None = None
    # resolved before writing
    target_type: str | None = None
    target_id: str | None = None
    query: str | None = None
    existing: Version | None = None
    # the context the entry runs in, once admitted (a GET sees what its own read may see)
    ctx: RequestContext | None = None


@dataclass
class EntryResult:
    """What happened to one entry, ready to become a response entry."""

    status: int
    version: Version | None = None
    body: bytes | None = None
    issues: list[Issue] = field(default_factory=list)


def _fail(index: int, exc: FhirError) -> FhirError:
    """Re-raise an entry's failure naming the entry, so the client knows which one."""
    issues = [
        Issue(
            issue.severity,
            issue.code,
            f"Bundle.entry[{index}]: {issue.diagnostics}",
            tuple(
                f"Bundle.entry[{index}].resource.{e.split('.', 1)[1]}" if "." in e else e
                for e in issue.expression
            )
            or (f"Bundle.entry[{index}]",),
            issue.details_code,
        )
        for issue in exc.issues
    ]
    return FhirError(exc.status, issues)


def parse_entries(bundle: dict[str, Any], base_url: str) -> list[_Entry]:
    """The entries of a transaction or batch Bundle, with their requests checked."""
    raw_entries = bundle.get("entry") or []
    if not isinstance(raw_entries, list):
        raise bad_request("Bundle.entry must be an array.", "Bundle.entry")
    entries: list[_Entry] = []
    for index, raw in enumerate(raw_entries):
        where = f"Bundle.entry[{index}]"
        if not isinstance(raw, dict):
            raise bad_request(f"{where} must be an object.", where)
        request = raw.get("request")
        if not isinstance(request, dict):
            raise bad_request(f"{where}.request is required.", f"{where}.request")
        method = request.get("method")
        url = request.get("url")
        if method not in METHOD_ORDER:
            raise bad_request(
                f"{where}.request.method must be GET, HEAD, POST, PUT, PATCH or DELETE.",
                f"{where}.request.method",
            )
        if not isinstance(url, str) or not url:
            raise bad_request(f"{where}.request.url is required.", f"{where}.request.url")
        entry = _Entry(
            index=index,
            method=method,
            url=_relative(url, base_url),
            resource=raw.get("resource"),
            full_url=raw.get("fullUrl"),
            if_none_exist=request.get("ifNoneExist"),
            if_match=request.get("ifMatch"),
        )
        if method in ("POST", "PUT") and not isinstance(entry.resource, dict):
            raise bad_request(f"{where}.resource is required for {method}.", f"{where}.resource")
        if method == "PATCH":
            entry.resource = _patch_document(entry.resource, where)
        entries.append(entry)
    return entries


def _relative(url: str, base_url: str) -> str:
    if url.startswith(base_url + "/"):
        return url[len(base_url) + 1 :]
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        path = parts.path
        marker = "/fhir/"
        if marker in path:
            path = path.split(marker, 1)[1]
        return path + (f"?{parts.query}" if parts.query else "")
    return url.lstrip("/")


def _patch_document(resource: Any, where: str) -> Any:
    """A JSON Patch carried in a transaction entry as a Binary (base64 data)."""
    if isinstance(resource, dict) and resource.get("resourceType") == "Binary":
        content_type = resource.get("contentType", "")
        if "json-patch" not in content_type:
            raise bad_request(
                f"{where}: only JSON Patch (application/json-patch+json) is supported.", where
            )
        try:
            return orjson.loads(base64.b64decode(resource.get("data", ""), validate=True))
        except (binascii.Error, orjson.JSONDecodeError, ValueError):
            raise bad_request(f"{where}: the Binary does not hold a JSON Patch.", where) from None
    raise bad_request(
        f"{where}: a PATCH entry must carry its JSON Patch as a Binary resource.", where
    )


def _split_url(entry: _Entry) -> tuple[str, str | None, str | None]:
    path, _, query = entry.url.partition("?")
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise bad_request(f"Bundle.entry[{entry.index}].request.url names no resource type.")
    resource_type = parts[0]
    resource_id = parts[1] if len(parts) > 1 else None
    return resource_type, resource_id, query or None


# --- transaction -------------------------------------------------------------------------------


def run_transaction(
    conn: Connection,
    ctx: RequestContext,
    bundle: dict[str, Any],
    get_handler: GetHandler,
) -> list[EntryResult]:
    """Process a transaction Bundle; raises FhirError (nothing written) if any entry fails."""
    entries = parse_entries(bundle, ctx.base_url)
    _check_unique_full_urls(entries)
    for entry in entries:
        entry.ctx = _guard(entry, lambda e=entry: access_gate.admit_entry(ctx, e.method, e.url))
    # Writes refused only for want of a care relationship are decided once every entry is
    # written: the transaction is one change, judged by the state it leaves.
    deferred: list[Callable[[], None]] = []
    owners: list[_Entry] = []
    ctx = replace(ctx, extras={**ctx.extras, access_writes.DEFERRED_CHECKS: deferred})
    results: dict[int, EntryResult] = {}
    ordered = sorted(entries, key=lambda e: (METHOD_ORDER[e.method], e.index))
    references: dict[str, str] = {}

    for entry in ordered:
        if entry.method == "DELETE":
            results[entry.index] = _guard(entry, lambda e=entry: _delete(conn, ctx, e))

    for entry in ordered:
        if entry.method in ("POST", "PUT", "PATCH"):
            _guard(entry, lambda e=entry: _resolve_identity(conn, ctx, e, references))

    for entry in entries:
        if entry.method in ("POST", "PUT") and isinstance(entry.resource, dict):
            _guard(
                entry,
                lambda e=entry: rewrite_references(conn, ctx, e.resource, references),
            )

    for entry in ordered:
        if entry.method in ("POST", "PUT", "PATCH"):
            before = len(deferred)
            results[entry.index] = _guard(entry, lambda e=entry: _write(conn, ctx, e))
            owners.extend([entry] * (len(deferred) - before))
    for entry, check in zip(owners, deferred, strict=True):
        _guard(entry, check)
    for entry in ordered:
        if entry.method in ("GET", "HEAD"):
            results[entry.index] = _guard(
                entry, lambda e=entry: _get(conn, e.ctx or ctx, e, get_handler)
            )
    return [results[i] for i in range(len(entries))]


def _guard(entry: _Entry, action: Callable[[], Any]) -> Any:
    try:
        return action()
    except FhirError as exc:
        raise _fail(entry.index, exc) from None


def _check_unique_full_urls(entries: list[_Entry]) -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry.full_url and entry.method in ("POST", "PUT"):
            if entry.full_url in seen:
                raise bad_request(
                    f"Bundle.entry[{entry.index}].fullUrl '{entry.full_url[:80]}' is used twice.",
                    f"Bundle.entry[{entry.index}].fullUrl",
                )
            seen.add(entry.full_url)


def _resolve_identity(
    conn: Connection, ctx: RequestContext, entry: _Entry, references: dict[str, str]
) -> None:
    """Decide which resource each write entry will create or change, before any is written."""
    resource_type, resource_id, query = _split_url(entry)
    interactions.check_type(resource_type)
    entry.target_type = resource_type
    if entry.method == "POST":
        if resource_id is not None:
            raise bad_request("A POST entry's url must be just the resource type.")
        if isinstance(entry.resource, dict) and entry.resource.get("resourceType") != resource_type:
            raise bad_request(
                f"The resource is a {entry.resource.get('resourceType')!s:.40} but the url names "
                f"{resource_type}.",
                "resourceType",
            )
        if entry.if_none_exist:
            matches = interactions.find_matches(conn, ctx, resource_type, entry.if_none_exist)
            if len(matches) > 1:
                raise precondition_failed(
                    f"ifNoneExist matched {len(matches)} resources; it must match at most one."
                )
            if matches:
                entry.existing = matches[0]
                entry.target_id = matches[0].resource_id
                note_read(resource_type, entry.target_id, None)  # served in its place
        if entry.target_id is None:
            entry.target_id = interactions.new_id()
    elif query is not None and resource_id is None:
        entry.query = query
        if entry.method == "PATCH":
            matches = interactions.find_matches(conn, ctx, resource_type, query)
            if len(matches) != 1:
                raise precondition_failed(
                    f"The conditional patch matched {len(matches)} resources; it must match one."
                )
            entry.target_id = matches[0].resource_id
        else:
            matches = interactions.find_matches(conn, ctx, resource_type, query)
            if len(matches) > 1:
                raise precondition_failed(
                    f"The conditional update matched {len(matches)} resources; it must match one."
                )
            body_id = entry.resource.get("id") if isinstance(entry.resource, dict) else None
            if matches:
                entry.target_id = matches[0].resource_id
            elif isinstance(body_id, str):
                entry.target_id = body_id
            else:
                entry.target_id = interactions.new_id()
            if isinstance(entry.resource, dict):
                entry.resource = {**entry.resource, "id": entry.target_id}
    else:
        if resource_id is None:
            raise bad_request(f"A {entry.method} entry's url must name a resource id.")
        entry.target_id = resource_id
    if entry.full_url:
        references[entry.full_url] = f"{resource_type}/{entry.target_id}"


def rewrite_references(
    conn: Connection, ctx: RequestContext, node: Any, references: dict[str, str]
) -> None:
    """Replace placeholders and conditional references with the ids they resolve to."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "reference" and isinstance(value, str):
                    item[key] = _resolve_reference(conn, ctx, value, references)
                elif isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(child for child in item if isinstance(child, (dict, list)))


def _resolve_reference(
    conn: Connection, ctx: RequestContext, reference: str, references: dict[str, str]
) -> str:
    if reference in references:
        return references[reference]
    if reference.startswith("urn:uuid:") or reference.startswith("urn:oid:"):
        raise bad_request(
            f"The reference '{reference[:80]}' names no entry of this Bundle.", "reference"
        )
    if "?" in reference and not reference.startswith(("http://", "https://", "#")):
        resource_type, _, query = reference.partition("?")
        interactions.check_type(resource_type)
        matches = interactions.find_matches(conn, ctx, resource_type, query)
        if len(matches) != 1:
            raise precondition_failed(
                f"The conditional reference '{reference[:120]}' matched {len(matches)} "
                "resources; it must match exactly one."
            )
        resolved = f"{resource_type}/{matches[0].resource_id}"
        references[reference] = resolved
        return resolved
    return reference


def _delete(conn: Connection, ctx: RequestContext, entry: _Entry) -> EntryResult:
    resource_type, resource_id, query = _split_url(entry)
    if resource_id is None and query:
        matches = interactions.find_matches(conn, ctx, resource_type, query)
        if len(matches) > 1:
            raise precondition_failed(
                f"The conditional delete matched {len(matches)} resources; it must match one."
            )
        if not matches:
            return EntryResult(204)
        resource_id = matches[0].resource_id
    if resource_id is None:
        raise bad_request("A DELETE entry's url must name a resource id or search criteria.")
    result = interactions.delete(conn, ctx, resource_type, resource_id, if_match=entry.if_match)
    if result is None:
        return EntryResult(204)
    return EntryResult(200, result.version)


def _write(conn: Connection, ctx: RequestContext, entry: _Entry) -> EntryResult:
    assert entry.target_type is not None and entry.target_id is not None
    if entry.method == "POST":
        if entry.existing is not None:
            return EntryResult(200, entry.existing, entry.existing.content)
        result = interactions.create(
            conn,
            ctx,
            entry.resource,
            resource_type=entry.target_type,
            assigned_id=entry.target_id,
        )
    elif entry.method == "PUT":
        result = interactions.update(
            conn,
            ctx,
            entry.target_type,
            entry.target_id,
            entry.resource,
            if_match=entry.if_match,
        )
    else:
        result = interactions.patch(
            conn,
            ctx,
            entry.target_type,
            entry.target_id,
            entry.resource,
            if_match=entry.if_match,
        )
    return EntryResult(result.status, result.version, result.version.content, result.warnings)


def _get(
    conn: Connection, ctx: RequestContext, entry: _Entry, get_handler: GetHandler
) -> EntryResult:
    status, body = get_handler(conn, ctx, entry.url)
    return EntryResult(status, None, body)


# --- batch -------------------------------------------------------------------------------------


def run_batch(
    conn: Connection,
    ctx: RequestContext,
    bundle: dict[str, Any],
    get_handler: GetHandler,
) -> list[EntryResult]:
    """Process a batch Bundle: each entry on its own; failures are reported, not raised."""
    raw_entries = bundle.get("entry") or []
    if not isinstance(raw_entries, list):
        raise bad_request("Bundle.entry must be an array.", "Bundle.entry")
    results: list[EntryResult] = []
    for index, raw in enumerate(raw_entries):
        try:
            with undone_on_failure(), conn.begin_nested():
                (entry,) = parse_entries({"entry": [raw]}, ctx.base_url)
                entry.index = index
                entry_ctx = access_gate.admit_entry(ctx, entry.method, entry.url)
                results.append(_batch_entry(conn, entry_ctx, entry, get_handler))
        except FhirError as exc:
            failed = _fail(index, exc)
            results.append(EntryResult(failed.status, issues=failed.issues))
    return results


def _batch_entry(
    conn: Connection, ctx: RequestContext, entry: _Entry, get_handler: GetHandler
) -> EntryResult:
    if entry.method == "DELETE":
        return _delete(conn, ctx, entry)
    if entry.method in ("GET", "HEAD"):
        return _get(conn, ctx, entry, get_handler)
    _resolve_identity(conn, ctx, entry, {})
    if isinstance(entry.resource, dict) and entry.method in ("POST", "PUT"):
        rewrite_references(conn, ctx, entry.resource, {})
    return _write(conn, ctx, entry)


# --- response ----------------------------------------------------------------------------------


def response_bundle(
    bundle_type: str, results: list[EntryResult], ctx: RequestContext, *, prefer: str | None
) -> bytes:
    """The transaction-response or batch-response Bundle, entries in request order."""
    entries = []
    for result in results:
        response: dict[str, Any] = {"status": STATUS_TEXT.get(result.status, str(result.status))}
        full_url = None
        resource = None
        version = result.version
        if version is not None:
            path = f"{version.resource_type}/{version.resource_id}"
            full_url = ctx.url(path)
            response["location"] = f"{path}/_history/{version.version_id}"
            response["etag"] = version.etag
            response["lastModified"] = version.last_updated.astimezone(UTC).isoformat()
            if prefer != "minimal" and not version.deleted:
                resource = result.body
        elif result.body is not None and prefer != "minimal":
            resource = result.body
        if (
            (result.issues and result.status >= 400)
            or result.issues
            or prefer == "OperationOutcome"
        ):
            response["outcome"] = orjson.loads(outcome_bytes(result.issues))
        entries.append(entry_bytes(full_url=full_url, resource=resource, response=response))
    return bundle_bytes(bundle_type, entries)


def http_date(version: Version) -> str:
    """A version's lastUpdated in HTTP date form, for Last-Modified."""
    return imf_fixdate(version.last_updated)


def split_query(url: str) -> tuple[str, list[tuple[str, str]]]:
    """A relative URL's path and its query parameters, repeats kept."""
    path, _, query = url.partition("?")
    return path, parse_qsl(query, keep_blank_values=True)


def error_entry(status: int, diagnostics: str) -> EntryResult:
    """A failed entry result with one error issue."""
    return EntryResult(status, issues=[error("processing", diagnostics)])
