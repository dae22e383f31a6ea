"""Search index maintenance, called by storage inside each write transaction.

Placeholder until the search issue lands its index tables: nothing is indexed yet.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection


def index_resource(
    conn: Connection, resource_pk: int, resource_type: str, resource: dict[str, Any]
) -> None:
    """Write the index rows of the current version of a resource."""


def unindex_resource(conn: Connection, resource_pk: int) -> None:
    """Remove the index rows of a resource (before re-indexing or on delete)."""


def unindex_all(conn: Connection) -> None:
    """Remove every index row."""
