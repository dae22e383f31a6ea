"""``_summary`` and ``_elements``: a resource cut down to some of its elements.

Only requests that ask for a subset pay for parsing (orjson); the result carries the
``SUBSETTED`` tag in ``meta.tag`` as the R4 search page requires, so nobody mistakes it for the
whole resource. Which elements are "summary" and which are mandatory comes from the R4B models
(``summary_element_property`` / ``element_required``), via :mod:`fhir_adapters.models`.

- ``_summary=true``: the summary elements; ``text``: ``text``, ``id``, ``meta`` and the mandatory
  elements; ``data``: everything but ``text``; ``false``: everything (not subsetted).
- ``_elements=a,b``: those top-level elements plus ``id``, ``meta`` and the mandatory ones
  (``Observation.code`` and ``code`` both name ``code``; ``value`` names ``value[x]``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from fhir_adapters.models import model_for

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}
_ALWAYS = frozenset({"resourceType", "id", "meta"})


@dataclass(frozen=True)
class ElementInfo:
    """Top-level JSON keys of a resource type: summary ones, mandatory ones, choice families."""

    summary: frozenset[str]
    required: frozenset[str]
    choices: dict[str, frozenset[str]]


@cache
def element_info(resource_type: str) -> ElementInfo:
    """What the R4B model of ``resource_type`` says about its top-level elements."""
    model: Any = model_for(resource_type)
    if model is None:
        return ElementInfo(frozenset({"id", "meta", "implicitRules"}), frozenset(), {})
    summary: set[str] = set()
    required: set[str] = set()
    choices: dict[str, set[str]] = {}
    for field in model.model_fields.values():
        extra = field.json_schema_extra or {}
        if not isinstance(extra, dict) or not extra.get("element_property"):
            continue
        key = field.alias
        if extra.get("summary_element_property"):
            summary.add(key)
        if extra.get("element_required") or field.is_required():
            required.add(key)
        family = extra.get("one_of_many")
        if isinstance(family, str):
            choices.setdefault(family, set()).add(key)
    return ElementInfo(
        frozenset(summary),
        frozenset(required),
        {name: frozenset(keys) for name, keys in choices.items()},
    )


def wanted_keys(
    resource_type: str, summary: str | None, elements: Iterable[str]
) -> set[str] | None:
    """The top-level keys to keep, or None for the whole resource (``_summary=false``/none)."""
    info = element_info(resource_type)
    if summary == "true":
        return set(_ALWAYS | info.summary)
    if summary == "text":
        return set(_ALWAYS | info.required | {"text"})
    names = list(elements)
    if not names:
        return None
    keep = set(_ALWAYS | info.required)
    for name in names:
        head, _, rest = name.partition(".")
        element = rest if rest and head == resource_type else name
        element = element.split(".", 1)[0]
        keep.add(element)
        keep.update(info.choices.get(element, ()))
    return keep


def subset(content: bytes, *, summary: str | None, elements: Iterable[str] = ()) -> bytes:
    """The resource in ``content`` cut down as ``_summary``/``_elements`` ask, tagged SUBSETTED.

    Returns ``content`` unchanged when no subset is asked for.
    """
    if summary in (None, "false") and not elements:
        return content
    resource = orjson.loads(content)
    resource_type = resource.get("resourceType", "")
    if summary == "data":
        kept = {key: value for key, value in resource.items() if key not in ("text", "_text")}
    else:
        keys = wanted_keys(resource_type, summary, elements)
        if keys is None:
            return content
        kept = {
            key: value
            for key, value in resource.items()
            if key in keys or (key.startswith("_") and key[1:] in keys)
        }
    meta = dict(kept.get("meta") or {})
    tags = [tag for tag in meta.get("tag", ()) if tag.get("code") != "SUBSETTED"]
    meta["tag"] = [*tags, SUBSETTED]
    kept["meta"] = meta
    ordered = {"resourceType": resource_type, **kept}
    return orjson.dumps(ordered)
