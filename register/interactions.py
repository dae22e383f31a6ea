"""The FHIR RESTful interactions, independent of HTTP.

The HTTP routes, transaction Bundles and ``careregister load`` all call these functions, so a
resource written by any path is validated, stamped, indexed and (later) checked for duplicates
the same way. Each function works inside the caller's database transaction.

Spec: https://hl7.org/fhir/R4/http.html
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import jsonpatch
import orjson
from sqlalchemy import Connection

from fhir_adapters.operation_outcome import Issue, ResourceInvalid, error
from fhir_adapters.resource_types import is_resource_type
from fhir_adapters.validation import is_valid_id, validate_resource
from register import search, storage, write_hooks
from register.audit.trail import note_read
from register.context import RequestContext
from register.errors import FhirError, bad_request, gone, not_found, precondition_failed
from register.facts import facts_for
from register.storage import Version


@dataclass(frozen=True)
class WriteResult:
    """The outcome of a write: the version now current, the HTTP status, and any warnings."""

    version: Version
    status: int
    warnings: list[Issue] = field(default_factory=list)

    @property
    def created(self) -> bool:
        """Whether the write created the resource (201)."""
        return self.status == 201


def check_type(resource_type: str) -> None:
    """Refuse a URL naming something that is not an R4 resource type (404)."""
    if not is_resource_type(resource_type):
        raise FhirError(
            404,
            error("not-supported", f"Unknown resource type '{resource_type[:64]}'."),
        )


def check_id(resource_id: str) -> None:
    """Refuse an id that breaks FHIR's id rules (400)."""
    if not is_valid_id(resource_id):
        raise bad_request("The id in the URL does not follow FHIR's id rules.", code="value")


def parse_etag(value: str | None, header: str = "If-Match") -> int | None:
    """The version number in an ``If-Match`` style header (``W/"3"``, ``"3"``), or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit():
        raise bad_request(f'{header} must name a version, like W/"3".', code="value")
    return int(text)


# --- reads -------------------------------------------------------------------------------------


def read(conn: Connection, ctx: RequestContext, resource_type: str, resource_id: str) -> Version:
    """The current version, or 404 (absent or not visible) / 410 (deleted)."""
    check_type(resource_type)
    check_id(resource_id)
    version = storage.read(conn, ctx.visibility, resource_type, resource_id)
    if version is None:
        raise not_found(f"{resource_type}/{resource_id} is not known.")
    if version.deleted:
        raise gone(resource_type, resource_id, version.version_id)
    return version


def vread(
    conn: Connection, ctx: RequestContext, resource_type: str, resource_id: str, version_id: str
) -> Version:
    """A specific version, or 404; a deletion version answers 410."""
    check_type(resource_type)
    check_id(resource_id)
    if not version_id.isdigit():
        raise not_found(f"{resource_type}/{resource_id} has no version '{version_id[:16]}'.")
    version = storage.vread(conn, ctx.visibility, resource_type, resource_id, int(version_id))
    if version is None:
        raise not_found(f"{resource_type}/{resource_id} has no version {version_id}.")
    if version.deleted:
        raise gone(resource_type, resource_id, version.version_id)
    return version


# --- writes ------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _instant(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _stamp(
    resource: dict[str, Any], resource_id: str, version_id: int, moment: datetime
) -> tuple[dict[str, Any], bytes]:
    """The resource as stored: id, meta.versionId and meta.lastUpdated set by the server."""
    client_meta = resource.get("meta") or {}
    meta = {
        "versionId": str(version_id),
        "lastUpdated": _instant(moment),
        **{k: v for k, v in client_meta.items() if k not in ("versionId", "lastUpdated")},
    }
    stamped: dict[str, Any] = {
        "resourceType": resource["resourceType"],
        "id": resource_id,
        "meta": meta,
    }
    for key, value in resource.items():
        if key not in stamped:
            stamped[key] = value
    return stamped, orjson.dumps(stamped)


def _validate(resource: Any, expected_type: str | None) -> str:
    try:
        return validate_resource(resource, expected_type=expected_type)
    except ResourceInvalid as exc:
        raise FhirError(422, exc.issues) from None


def _store(
    conn: Connection,
    ctx: RequestContext,
    resource: dict[str, Any],
    resource_id: str,
    current: storage.Current | None,
    method: str,
) -> tuple[Version, list[Issue]]:
    resource_type = resource["resourceType"]
    resource = write_hooks.before_write(conn, ctx, resource, current=current, method=method)
    moment = _now()
    version_id = 1 if current is None else current.version_id + 1
    stamped, content = _stamp(resource, resource_id, version_id, moment)
    version = storage.write_version(
        conn,
        resource_type=resource_type,
        resource_id=resource_id,
        current=current,
        content=content,
        resource=stamped,
        last_updated=moment,
        method=method,
        facts=facts_for(stamped, author_org=ctx.author_org, local_bases=(ctx.base_url,)),
        local_bases=(ctx.base_url,),
    )
    warnings = write_hooks.after_write(conn, ctx, version, stamped, previous=current)
    return version, warnings


def record_internal(conn: Connection, resource: dict[str, Any]) -> Version:
    """Store a resource the register itself writes (a finding, a provenance record).

    Written without running the write hooks again (which would recurse), with no authoring
    organisation: such records are the register's, and the access policy alone decides who
    sees them.
    """
    moment = _now()
    stamped, content = _stamp(resource, new_id(), 1, moment)
    return storage.write_version(
        conn,
        resource_type=resource["resourceType"],
        resource_id=stamped["id"],
        current=None,
        content=content,
        resource=stamped,
        last_updated=moment,
        method="POST",
        facts=facts_for(stamped, author_org=None),
    )


def new_id() -> str:
    """A fresh server-assigned id."""
    return str(uuid.uuid4())


def create(
    conn: Connection,
    ctx: RequestContext,
    resource: Any,
    *,
    resource_type: str | None = None,
    if_none_exist: str | None = None,
    assigned_id: str | None = None,
) -> WriteResult:
    """Create a resource with a server-assigned id (any id in the body is ignored).

    With ``if_none_exist`` (a search query) nothing is created when one resource already
    matches (200 with that resource); several matches answer 412.
    """
    if resource_type is not None:
        check_type(resource_type)
    resource_type = _validate(resource, resource_type)
    if if_none_exist:
        matches = find_matches(conn, ctx, resource_type, if_none_exist)
        if len(matches) == 1:
            note_read(resource_type, matches[0].resource_id, None)  # served in its place
            return WriteResult(matches[0], 200)
        if len(matches) > 1:
            raise precondition_failed(
                f"If-None-Exist matched {len(matches)} resources; it must match at most one."
            )
    version, warnings = _store(conn, ctx, resource, assigned_id or new_id(), None, "POST")
    return WriteResult(version, 201, warnings)


def update(
    conn: Connection,
    ctx: RequestContext,
    resource_type: str,
    resource_id: str,
    resource: Any,
    *,
    if_match: str | None = None,
) -> WriteResult:
    """Update (or, for an id not yet known, create) a resource at a client-chosen id."""
    check_type(resource_type)
    check_id(resource_id)
    if isinstance(resource, dict):
        body_id = resource.get("id")
        if body_id is None:
            raise bad_request(
                "The resource must carry an id equal to the id in the URL.", f"{resource_type}.id"
            )
        if body_id != resource_id:
            raise bad_request(
                "The id in the resource differs from the id in the URL.", f"{resource_type}.id"
            )
    _validate(resource, resource_type)
    expected = parse_etag(if_match)
    current = storage.current_for_write(conn, resource_type, resource_id)
    if expected is not None and (current is None or current.version_id != expected):
        raise precondition_failed(
            f"If-Match names version {expected} but the current version is "
            f"{'none' if current is None else current.version_id}."
        )
    status = 201 if current is None or current.deleted else 200
    version, warnings = _store(conn, ctx, resource, resource_id, current, "PUT")
    return WriteResult(version, status, warnings)


def conditional_update(
    conn: Connection,
    ctx: RequestContext,
    resource_type: str,
    query: str,
    resource: Any,
    *,
    if_match: str | None = None,
) -> WriteResult:
    """Update the one resource matching ``query``; create when none does; 412 when several do."""
    check_type(resource_type)
    _validate(resource, resource_type)
    matches = find_matches(conn, ctx, resource_type, query)
    if len(matches) > 1:
        raise precondition_failed(
            f"The conditional update matched {len(matches)} resources; it must match one."
        )
    body_id = resource.get("id")
    if not matches:
        if body_id is not None:
            return update(conn, ctx, resource_type, body_id, resource, if_match=if_match)
        return create(conn, ctx, resource, resource_type=resource_type)
    target = matches[0].resource_id
    if body_id is not None and body_id != target:
        raise bad_request(
            "The resource's id differs from the id of the resource the condition matched.",
            f"{resource_type}.id",
        )
    return update(conn, ctx, resource_type, target, {**resource, "id": target}, if_match=if_match)


def patch(
    conn: Connection,
    ctx: RequestContext,
    resource_type: str,
    resource_id: str,
    operations: Any,
    *,
    if_match: str | None = None,
) -> WriteResult:
    """Apply a JSON Patch (RFC 6902) to the current version and store the result."""
    check_type(resource_type)
    check_id(resource_id)
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise bad_request("A JSON Patch document must be an array of operations.")
    expected = parse_etag(if_match)
    current = storage.current_for_write(conn, resource_type, resource_id)
    visible = storage.read(conn, ctx.visibility, resource_type, resource_id)
    if current is None or visible is None:
        raise not_found(f"{resource_type}/{resource_id} is not known.")
    if current.deleted:
        raise gone(resource_type, resource_id, current.version_id)
    if expected is not None and current.version_id != expected:
        raise precondition_failed(
            f"If-Match names version {expected} but the current version is {current.version_id}."
        )
    original = orjson.loads(current.content or b"{}")
    try:
        patched = jsonpatch.JsonPatch(operations).apply(original)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise FhirError(422, error("processing", f"A JSON Patch test failed: {exc}")) from None
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise FhirError(
            422, error("processing", f"The JSON Patch could not be applied: {exc}")
        ) from None
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise bad_request(f"The JSON Patch document is malformed: {exc}") from None
    if not isinstance(patched, dict) or patched.get("resourceType") != resource_type:
        raise FhirError(422, error("processing", "A patch may not change the resource type."))
    if patched.get("id") != resource_id:
        raise FhirError(422, error("processing", "A patch may not change the resource id."))
    _validate(patched, resource_type)
    version, warnings = _store(conn, ctx, patched, resource_id, current, "PATCH")
    return WriteResult(version, 200, warnings)


def delete(
    conn: Connection,
    ctx: RequestContext,
    resource_type: str,
    resource_id: str,
    *,
    if_match: str | None = None,
) -> WriteResult | None:
    """Delete a resource (a new, deleted version); None when there was nothing to delete."""
    check_type(resource_type)
    check_id(resource_id)
    expected = parse_etag(if_match)
    current = storage.current_for_write(conn, resource_type, resource_id)
    if expected is not None and (current is None or current.version_id != expected):
        raise precondition_failed(
            f"If-Match names version {expected} but the current version is "
            f"{'none' if current is None else current.version_id}."
        )
    if current is None or current.deleted:
        return None
    if storage.read(conn, ctx.visibility, resource_type, resource_id) is None:
        return None
    version = storage.write_version(
        conn,
        resource_type=resource_type,
        resource_id=resource_id,
        current=current,
        content=None,
        resource=None,
        last_updated=_now(),
        method="DELETE",
        facts=storage.Facts(
            patient_id=None if current.content is None else _patient_of(current.content),
            author_org=current.author_org,
        ),
    )
    warnings = write_hooks.after_write(conn, ctx, version, None, previous=current)
    return WriteResult(version, 200, warnings)


def _patient_of(content: bytes) -> str | None:
    from register.facts import primary_patient

    return primary_patient(orjson.loads(content))


def find_matches(
    conn: Connection, ctx: RequestContext, resource_type: str, query: str
) -> list[Version]:
    """The visible resources of ``resource_type`` matching a search query string."""
    params = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    if not params:
        raise bad_request("A conditional request needs search criteria.")
    return search.find_matches(conn, ctx, resource_type, params)
