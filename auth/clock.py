"""Time as the auth package sees it: a callable returning seconds since the epoch.

Every time-dependent class takes a ``clock`` so tests can move time without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]
"""A source of the current time in seconds since the epoch (UTC)."""


def system_clock() -> float:
    """The real time, in seconds since the epoch."""
    return time.time()


def to_datetime(epoch_seconds: float) -> datetime:
    """An epoch time as an aware UTC datetime (for files and logs that humans read)."""
    return datetime.fromtimestamp(epoch_seconds, tz=UTC)
