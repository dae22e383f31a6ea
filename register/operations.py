"""The registry of FHIR operations (``$name``) the register offers.

Each feature registers its operations here; the HTTP routes dispatch to them and the
CapabilityStatement lists them, from this one table, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from fhir_adapters.operation_outcome import error
from register.errors import FhirError

Level = Literal["system", "type", "instance"]
Handler = Callable[[Request, str | None, str | None], Awaitable[Response]]


@dataclass(frozen=True)
class Operation:
    """One operation: its name, where it applies, and the coroutine answering it."""

    name: str
    levels: tuple[Level, ...]
    resource_types: tuple[str, ...]  # empty: any type
    handler: Handler
    methods: tuple[str, ...] = ("GET", "POST")
    definition: str | None = None  # canonical URL of its OperationDefinition
    documentation: str = ""

    def applies(self, level: Level, resource_type: str | None) -> bool:
        """Whether the operation may be invoked at ``level`` on ``resource_type``."""
        if level not in self.levels:
            return False
        return not self.resource_types or resource_type in self.resource_types


_REGISTRY: dict[str, Operation] = {}


def register(operation: Operation) -> Operation:
    """Add an operation to the registry (at import time of the feature providing it)."""
    _REGISTRY[operation.name] = operation
    return operation


def all_operations() -> list[Operation]:
    """Every registered operation, by name."""
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def find(name: str, level: Level, resource_type: str | None, method: str) -> Operation:
    """The operation to run, or a 404/405 OperationOutcome explaining why there is none."""
    operation = _REGISTRY.get(name)
    if operation is None or not operation.applies(level, resource_type):
        where = f"on {resource_type}" if resource_type else "at system level"
        raise FhirError(
            404, error("not-supported", f"Operation ${name[:40]} is not offered {where}.")
        )
    if method not in operation.methods:
        raise FhirError(405, error("not-supported", f"Operation ${name} does not accept {method}."))
    return operation
