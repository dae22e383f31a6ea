"""FHIR search, answered from the index tables: searchset Bundles and conditional matches.

``search_bundle`` runs a search of one type (optionally inside a Patient's compartment) and
returns the searchset Bundle as bytes: the page of matches, ``_include``/``_revinclude``
resources marked ``search.mode = include``, an OperationOutcome entry naming ignored
parameters, ``total``, and ``self``/``next``/``previous`` links (absolute under the request's base
URL, keeping the client's parameters, with a keyset ``_page`` position). ``find_matches`` answers
conditional create/update/delete and conditional references with the same SQL.

Resource bodies come from :func:`register.storage.read_many` as stored bytes; only
``_summary``/``_elements`` parse them. Spec: https://hl7.org/fhir/R4/search.html
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from fhir_adapters.bundles import bundle_bytes, entry_bytes
from fhir_adapters.operation_outcome import outcome_bytes, warning
from fhir_adapters.search_subset import subset
from register import storage
from register.consent_notice import notice_entries, withheld_visibility
from register.context import RequestContext
from register.errors import bad_request
from register.paging import decode_cursor, encode_cursor
from register.search_include import Node, included
from register.search_plan import Ignored, Plan, plan_search
from register.search_sort import decode_values, encode_values
from register.storage import Version

Params = list[tuple[str, str]]
MAX_CONDITIONAL_MATCHES = 100
COUNT_CAP = 10_000
"""Without ``_total=accurate``, counting stops here and a larger total is left out."""


@dataclass(frozen=True)
class SearchOptions:
    """Limits and handling a search runs with (from settings and the ``Prefer`` header)."""

    default_count: int = 20
    max_count: int = 1000
    strict: bool = False


@dataclass(frozen=True)
class Page:
    """One page of matches in order, and whether there are rows before and after it."""

    pks: list[int]
    keys: list[list[Any]]
    more_after: bool
    more_before: bool


def find_matches(
    conn: Connection, ctx: RequestContext, resource_type: str, params: Params
) -> list[Version]:
    """The visible current resources of ``resource_type`` matching every parameter.

    For conditional interactions: an unknown or unsupported parameter is an error (ignoring
    it would widen the match), and result parameters such as ``_count`` are ignored.
    """
    plan = plan_search(
        resource_type,
        [(k, v) for k, v in params if k not in ("_count", "_sort", "_format", "_pretty")],
        visibility=ctx.visibility,
        local_bases=(ctx.base_url,),
        strict=True,
    )
    pks = list(conn.execute(plan.matches(MAX_CONDITIONAL_MATCHES)).scalars())
    found = storage.read_many(conn, ctx.visibility, pks)
    return [found[pk] for pk in pks if pk in found]


def search_bundle(
    conn: Connection,
    ctx: RequestContext,
    resource_type: str,
    params: Params,
    options: SearchOptions | None = None,
    *,
    compartment: str | None = None,
) -> bytes:
    """The searchset Bundle answering ``params`` on ``resource_type`` (in a compartment).

    ``compartment`` is a Patient id: only resources in that Patient's compartment match
    (``GET /Patient/{id}/{type}``). A search nested deeper than the database can parse
    (SQLite's parser has a fixed stack; each chained level repeats the access condition) is
    refused with 400 rather than failing with 500.
    """
    try:
        return _search_bundle(conn, ctx, resource_type, params, options, compartment=compartment)
    except OperationalError as exc:
        if "parser stack overflow" not in str(exc.orig):
            raise
        raise bad_request(
            "This search nests too deeply for the register's database; use fewer chained "
            "or _has levels.",
            code="too-costly",
        ) from None


def _search_bundle(
    conn: Connection,
    ctx: RequestContext,
    resource_type: str,
    params: Params,
    options: SearchOptions | None = None,
    *,
    compartment: str | None = None,
) -> bytes:
    options = options or SearchOptions()
    plan = plan_search(
        resource_type,
        params,
        visibility=ctx.visibility,
        local_bases=(ctx.base_url,),
        strict=options.strict,
        compartment=compartment,
    )
    result = plan.result
    count = min(
        result.count if result.count is not None else options.default_count, options.max_count
    )
    path = f"Patient/{compartment}/{resource_type}" if compartment else resource_type
    cursor = _cursor(params)
    links = [("self", _link(ctx, path, plan.applied, cursor))]
    outcome = _outcome_entry(plan.ignored)
    if result.summary == "count" or count == 0:
        outcome += notice_entries(_withheld(conn, ctx, plan, [], set()))
        return bundle_bytes(
            "searchset", outcome, total=_total(conn, plan, accurate=True), links=links
        )

    page = _page(conn, plan, count, cursor)
    total: int | None = None
    if result.total != "none":
        if cursor is None and not page.more_after:
            total = len(page.pks)
        else:
            total = _total(conn, plan, accurate=result.total == "accurate")
    if page.more_after and page.pks:
        token = _token("n", plan, page.keys[-1], page.pks[-1])
        links.append(("next", _link(ctx, path, plan.applied, token)))
    if page.more_before and page.pks:
        token = _token("p", plan, page.keys[0], page.pks[0])
        links.append(("previous", _link(ctx, path, plan.applied, token)))

    found = storage.read_many(conn, ctx.visibility, page.pks)
    shown = [found[pk] for pk in page.pks if pk in found]
    matches = [Node(v.resource_pk, v.resource_type, v.resource_id) for v in shown]
    extra = included(conn, ctx.visibility, matches, result.include, result.revinclude)
    extras = storage.read_many(conn, ctx.visibility, [n.pk for n in extra])
    entries = [_entry(ctx, v, "match", result.summary, result.elements) for v in shown]
    entries += [_entry(ctx, extras[n.pk], "include", None, ()) for n in extra if n.pk in extras]
    outcome += notice_entries(_withheld(conn, ctx, plan, matches, set(extras)))
    return bundle_bytes("searchset", [*entries, *outcome], total=total, links=links)


def _withheld(
    conn: Connection, ctx: RequestContext, plan: Plan, matches: list[Node], included_pks: set[int]
) -> bool:
    """Whether the requester's consent withholdings removed a match of this search (any page)
    or a resource these matches would include (register/consent_notice.py)."""
    withheld = withheld_visibility(ctx)
    if withheld is None:
        return False
    if conn.execute(plan.matches_under(withheld, 1)).first() is not None:
        return True
    result = plan.result
    if not matches or not (result.include or result.revinclude):
        return False
    reachable = included(conn, withheld.relaxed, matches, result.include, result.revinclude)
    return any(node.pk not in included_pks for node in reachable)


def _total(conn: Connection, plan: Plan, *, accurate: bool) -> int | None:
    """The number of matches: exact, or (``_total`` estimate or absent) up to COUNT_CAP."""
    if accurate:
        return int(conn.execute(plan.count()).scalar_one())
    counted = int(conn.execute(plan.count(COUNT_CAP)).scalar_one())
    return counted if counted <= COUNT_CAP else None


def _entry(
    ctx: RequestContext,
    version: Version,
    mode: str,
    summary: str | None,
    elements: Sequence[str],
) -> bytes:
    content = version.content or b"{}"
    if mode == "match" and (summary not in (None, "false") or elements):
        content = subset(content, summary=summary, elements=elements)
    return entry_bytes(
        full_url=ctx.url(f"{version.resource_type}/{version.resource_id}"),
        resource=content,
        search={"mode": mode},
    )


def _outcome_entry(ignored: Sequence[Ignored]) -> list[bytes]:
    if not ignored:
        return []
    issues = [
        warning("not-supported", f"Ignored {item.name}: {item.reason}.", item.name)
        for item in ignored
    ]
    return [entry_bytes(resource=outcome_bytes(issues), search={"mode": "outcome"})]


# -- paging ----------------------------------------------------------------------------------


def _cursor(params: Params) -> str | None:
    values = [v for k, v in params if k == "_page"]
    return values[-1] if values else None


def _page(conn: Connection, plan: Plan, count: int, cursor: str | None) -> Page:
    reverse = False
    position: tuple[list[Any], int] | None = None
    if cursor is not None:
        state = decode_cursor(cursor)
        last = state.get("p")
        if not isinstance(last, int) or state.get("d") not in ("n", "p"):
            raise bad_request("The paging link is not valid; start the query again.", "_page")
        reverse = state["d"] == "p"
        position = (decode_values(plan.sort, state.get("k", [])), last)
    rows = conn.execute(plan.page(count, position, reverse=reverse)).all()
    more = len(rows) > count
    rows = rows[:count]
    if reverse:
        rows.reverse()
    pks = [row[0] for row in rows]
    keys = [list(row[1:]) for row in rows]
    if reverse:
        return Page(pks, keys, more_after=True, more_before=more)
    return Page(pks, keys, more_after=more, more_before=cursor is not None)


def _token(direction: str, plan: Plan, keys: list[Any], pk: int) -> str:
    return encode_cursor({"d": direction, "k": encode_values(plan.sort, keys), "p": pk})


def _link(ctx: RequestContext, path: str, params: Params, cursor: str | None) -> str:
    pairs = [(k, v) for k, v in params if k != "_page"]
    if cursor is not None:
        pairs.append(("_page", cursor))
    query = urlencode(pairs)
    return ctx.url(path) + (f"?{query}" if query else "")
