"""Reading JSON request bodies safely: size and nesting are bounded before any model sees them."""

from __future__ import annotations

from typing import Any

import orjson

from fhir_adapters.operation_outcome import Issue, error


class MalformedBody(Exception):
    """The body is not acceptable JSON; ``issue`` says why."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.diagnostics)
        self.issue = issue


def parse_json(body: bytes, *, max_depth: int) -> Any:
    """Parse ``body`` as JSON, refusing malformed text and nesting deeper than ``max_depth``."""
    if not body.strip():
        raise MalformedBody(
            error("structure", "The request body is empty; a JSON resource was expected.")
        )
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(
            error("structure", f"The request body is not valid JSON: {_short(str(exc))}")
        ) from None
    depth = json_depth(value, limit=max_depth)
    if depth > max_depth:
        raise MalformedBody(
            error("too-costly", f"JSON nesting deeper than {max_depth} levels is not accepted.")
        )
    return value


def json_depth(value: Any, *, limit: int) -> int:
    """The nesting depth of ``value``, counting stops once it passes ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        if isinstance(item, dict):
            stack.extend(
                (child, depth + 1) for child in item.values() if isinstance(child, (dict, list))
            )
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item if isinstance(child, (dict, list)))
    return deepest


def _short(message: str) -> str:
    # orjson's messages name the fault and its position, never the document's content.
    return message[:200]
