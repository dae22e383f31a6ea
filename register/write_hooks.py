"""The steps every write runs inside its transaction, in one visible order.

``before_write`` sees the resource about to be stored (after validation) and may refuse it or
add to it (for example security labels); ``after_write`` sees the stored version and may write
related records in the same transaction (provenance, care relationships, duplicate findings,
audit) and return warnings for the client. Every write path — REST, transaction and batch
entries, ``careregister load`` — goes through :mod:`register.interactions`, which calls these.
Features add their step as one line here, so the order is explicit, not a registry's accident.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from fhir_adapters.operation_outcome import Issue
from register import access_writes, consent_facts, provenance, relationships, sensitivity
from register.context import RequestContext
from register.duplicates import detect as duplicates
from register.storage import Current, Version


def before_write(
    conn: Connection,
    ctx: RequestContext,
    resource: dict[str, Any],
    *,
    current: Current | None,
    method: str,
) -> dict[str, Any]:
    """The resource to store (possibly amended); raise FhirError to refuse the write."""
    resource = access_writes.before_write(conn, ctx, resource, current=current, method=method)
    resource = sensitivity.label_sensitive(resource)
    resource = consent_facts.before_write(conn, ctx, resource)
    return resource


def after_write(
    conn: Connection,
    ctx: RequestContext,
    version: Version,
    resource: dict[str, Any] | None,
    *,
    previous: Current | None,
) -> list[Issue]:
    """Related records written in the same transaction; warnings for the client."""
    warnings: list[Issue] = []
    if resource is None:
        access_writes.check_delete(conn, ctx, version, previous=previous)
    relationships.after_write(conn, ctx, version, resource, previous=previous)
    consent_facts.after_write(conn, ctx, version, resource, previous=previous)
    provenance.after_write(conn, ctx, version, resource, previous=previous)
    warnings += duplicates.check_write(conn, ctx, version, resource, previous=previous)
    return warnings
