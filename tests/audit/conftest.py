"""Fixtures shared by the audit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.access.world import World
from tests.audit.helpers import assert_log_intact


@pytest.fixture
def world(bare_client, token_for, engine) -> Iterator[World]:  # type: ignore[no-untyped-def]
    """The shared test world; afterwards, whatever the test did, the whole audit log (chain,
    columns, patient and entity rows, review queue) must still verify."""
    yield World(bare_client, token_for).build()
    assert_log_intact(engine)
