"""``Patient/[id]/$everything``: the patient's record as the register holds it, a page at a time.

Everything in the Patient's compartment (the Patient included) comes first, in the order it was
stored, then the Practitioners, Organizations, Medications and Locations those resources refer
to. Both parts come from the index tables (``search_compartment``, ``search_reference``) and pass
:func:`register.search_scope.live`: a resource the requester may not see is neither returned nor
allowed to pull in what it refers to. Paging is keyset on ``resource.pk`` per part, so ``next``
links stay correct while others write.

Parameters: ``_since`` (changed at or after an instant), ``_type`` (comma-separated types),
``_count``. Spec: https://hl7.org/fhir/R4/patient-operation-everything.html
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Connection, select
from sqlalchemy.sql.expression import ColumnElement

from fhir_adapters.bundles import bundle_bytes, entry_bytes
from fhir_adapters.operation_outcome import outcome_bytes, warning
from register import interactions, storage
from register.consent_notice import notice_entries, withheld_visibility
from register.context import RequestContext
from register.errors import FhirError, bad_request, not_found
from register.paging import decode_cursor, encode_cursor
from register.reads import parse_instant
from register.search import SearchOptions
from register.search_schema import compartment_table, reference_table
from register.search_scope import aliased, live, resource_alias

Params = list[tuple[str, str]]
REFERENCED_TYPES = ("Practitioner", "Organization", "Medication", "Location")
"""Types outside the Patient compartment that ``$everything`` adds when the record cites them."""
_KNOWN = frozenset({"_since", "_type", "_count", "_page", "_format", "_pretty"})


def everything_bundle(
    conn: Connection,
    ctx: RequestContext,
    patient_id: str,
    params: Params,
    options: SearchOptions | None = None,
    notice_ctx: RequestContext | None = None,
) -> bytes:
    """One page of Patient ``patient_id``'s record as a searchset Bundle (404 if not visible).
    ``notice_ctx``: the context whose withholdings decide the withheld-items notice (the
    operation's own, when ``ctx`` reads under per-type read scopes)."""
    options = options or SearchOptions()
    interactions.check_id(patient_id)
    patient = storage.read(conn, ctx.visibility, "Patient", patient_id)
    if patient is None or patient.deleted:
        raise not_found(f"Patient/{patient_id} is not known.")
    ignored = sorted({name for name, _ in params if name not in _KNOWN})
    if ignored and options.strict:
        raise FhirError(
            400,
            [bad_request(f"{n} is not supported by $everything.", n).issues[0] for n in ignored],
        )
    since = types = None
    count = options.default_count
    cursor: dict[str, Any] | None = None
    for name, value in params:
        if name == "_since":
            since = parse_instant(value, "_since")
        elif name == "_type":
            types = _types(value)
        elif name == "_count":
            if not value.isdigit():
                raise bad_request("_count must be a whole number.", "_count")
            count = min(int(value), options.max_count)
        elif name == "_page":
            cursor = decode_cursor(value)
    phase, after = _position(cursor)
    count = max(count, 1)
    pks: list[int] = []
    more = False
    next_position: tuple[int, int] | None = None
    if phase == 1:
        rows = _members(conn, ctx, patient_id, types, since, after, count + 1)
        pks = rows[:count]
        if len(rows) > count:
            more, next_position = True, (1, pks[-1])
        else:
            phase, after = 2, 0
    if phase == 2 and not more:
        room = count - len(pks)
        rows = _referenced(conn, ctx, patient_id, types, since, after, room + 1)
        pks += rows[:room]
        if len(rows) > room:
            more = True
            next_position = (2, rows[room - 1]) if room > 0 else (2, after)
    found = storage.read_many(conn, ctx.visibility, pks)
    entries = [
        entry_bytes(
            full_url=ctx.url(f"{v.resource_type}/{v.resource_id}"),
            resource=v.content,
            search={"mode": "match"},
        )
        for v in (found[pk] for pk in pks if pk in found)
    ]
    if ignored:
        issues = [warning("not-supported", f"Ignored {n}.", n) for n in ignored]
        entries.append(entry_bytes(resource=outcome_bytes(issues), search={"mode": "outcome"}))
    withheld = withheld_visibility(notice_ctx or ctx)
    if withheld is not None:  # the whole record, not this page: nothing said about counts
        hidden = _members(conn, replace(ctx, visibility=withheld), patient_id, types, since, 0, 1)
        entries += notice_entries(bool(hidden))
    path = f"Patient/{patient_id}/$everything"
    kept = [(k, v) for k, v in params if k in _KNOWN and k != "_page"]
    current = [("_page", token) for token in [_last_page(params)] if token is not None]
    links = [("self", _link(ctx, path, [*kept, *current]))]
    if more and next_position is not None:
        token = encode_cursor({"ph": next_position[0], "p": next_position[1]})
        links.append(("next", _link(ctx, path, [*kept, ("_page", token)])))
    total = len(pks) if cursor is None and not more else None
    return bundle_bytes("searchset", entries, total=total, links=links)


def _last_page(params: Params) -> str | None:
    pages = [v for k, v in params if k == "_page"]
    return pages[-1] if pages else None


def _types(value: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    for name in names:
        try:
            interactions.check_type(name)
        except FhirError:
            raise bad_request(f"_type: {name[:64]} is not a resource type.", "_type") from None
    return names


def _position(cursor: dict[str, Any] | None) -> tuple[int, int]:
    if cursor is None:
        return 1, 0
    phase, after = cursor.get("ph"), cursor.get("p")
    if phase not in (1, 2) or not isinstance(after, int):
        raise bad_request("The paging link is not valid; start the query again.", "_page")
    return phase, after


def _filters(res: Any, types: Sequence[str] | None, since: datetime | None) -> list[Any]:
    found: list[ColumnElement[bool]] = []
    if types is not None:
        found.append(res.c.resource_type.in_(types))
    if since is not None:
        found.append(res.c.last_updated >= since)
    return found


def _members(
    conn: Connection,
    ctx: RequestContext,
    patient_id: str,
    types: Sequence[str] | None,
    since: datetime | None,
    after: int,
    limit: int,
) -> list[int]:
    """Resources in the Patient's compartment, by pk, after ``after``."""
    member = aliased(compartment_table, "member")
    res = resource_alias("r")
    query = (
        select(member.c.resource_pk)
        .where(
            member.c.patient_id == patient_id,
            member.c.resource_pk > after,
            res.c.pk == member.c.resource_pk,
            live(res, ctx.visibility),
            *_filters(res, types, since),
        )
        .order_by(member.c.resource_pk)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


def _referenced(
    conn: Connection,
    ctx: RequestContext,
    patient_id: str,
    types: Sequence[str] | None,
    since: datetime | None,
    after: int,
    limit: int,
) -> list[int]:
    """Practitioners, Organizations, Medications and Locations the visible record refers to."""
    wanted = [t for t in REFERENCED_TYPES if types is None or t in types]
    if not wanted or limit <= 0:
        return []
    member = aliased(compartment_table, "member")
    source = resource_alias("source")
    link = aliased(reference_table, "link")
    target = resource_alias("target")
    referenced = (
        select(target.c.pk)
        .where(
            member.c.patient_id == patient_id,
            source.c.pk == member.c.resource_pk,
            live(source, ctx.visibility),
            link.c.resource_pk == member.c.resource_pk,
            link.c.target_type.in_(wanted),
            target.c.resource_type == link.c.target_type,
            target.c.resource_id == link.c.target_id,
            target.c.pk > after,
            live(target, ctx.visibility),
            *_filters(target, None, since),
        )
        .distinct()
        .order_by(target.c.pk)
        .limit(limit)
    )
    return list(conn.execute(referenced).scalars())


def _link(ctx: RequestContext, path: str, params: Params) -> str:
    query = urlencode(params)
    return ctx.url(path) + (f"?{query}" if query else "")
