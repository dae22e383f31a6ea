"""XmR (individuals and moving range) charts with the NHS "Making Data Count" rules.

Limits: the mean plus or minus 2.66 times the mean moving range. Special cause: a point beyond
a limit; a shift of 7 or more consecutive points on one side of the mean; a trend of 7 or more
consecutive points rising or falling; two out of three consecutive points beyond two thirds of
the way to a limit on the same side. For duplicated actions, higher is worse.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

SIGMA_FACTOR = 2.66
RUN_LENGTH = 7


@dataclass(frozen=True)
class Point:
    """One period's value and the special-cause rules it triggers."""

    label: str
    value: float
    flags: tuple[str, ...] = ()

    @property
    def special_cause(self) -> bool:
        """Whether any Making Data Count rule marks this point."""
        return bool(self.flags)


@dataclass(frozen=True)
class XmRChart:
    """An XmR chart: centre line, limits and the points with their special-cause flags."""

    mean: float
    mean_moving_range: float
    upper_limit: float
    lower_limit: float
    points: tuple[Point, ...] = field(default_factory=tuple)

    def variation(self, higher_is_worse: bool = True) -> str:
        """'common cause', 'special cause concern' or 'special cause improvement' (latest point)."""
        if not self.points or not self.points[-1].special_cause:
            return "common cause"
        high = self.points[-1].value > self.mean
        return "special cause concern" if high == higher_is_worse else "special cause improvement"


def xmr(labels: Sequence[str], values: Sequence[float], *, floor: float | None = 0.0) -> XmRChart:
    """The XmR chart of ``values`` (one per label, in time order) with special causes marked.

    ``floor`` bounds the lower limit (counts and rates cannot go below zero).
    """
    if len(labels) != len(values):
        raise ValueError("one label per value")
    if not values:
        return XmRChart(0.0, 0.0, 0.0, 0.0, ())
    mean = sum(values) / len(values)
    ranges = [abs(b - a) for a, b in itertools.pairwise(values)]
    mr = sum(ranges) / len(ranges) if ranges else 0.0
    upper = mean + SIGMA_FACTOR * mr
    lower = mean - SIGMA_FACTOR * mr
    if floor is not None:
        lower = max(lower, floor)
    flags: list[set[str]] = [set() for _ in values]
    for i, v in enumerate(values):
        if v > upper or v < lower:
            flags[i].add("beyond-limit")
    _mark_runs(values, mean, flags)
    _mark_trends(values, flags)
    _mark_two_of_three(values, mean, mr, flags)
    points = tuple(
        Point(label, float(v), tuple(sorted(f)))
        for label, v, f in zip(labels, values, flags, strict=True)
    )
    return XmRChart(mean, mr, upper, lower, points)


def _mark_runs(values: Sequence[float], mean: float, flags: list[set[str]]) -> None:
    def close(start: int, end: int, side: int) -> None:
        if side != 0 and end - start >= RUN_LENGTH:
            for j in range(start, end):
                flags[j].add("shift")

    run_start, run_side = 0, 0
    for i, value in enumerate(values):
        side = (value > mean) - (value < mean)
        if side != run_side or side == 0:  # a point on the mean breaks a run
            close(run_start, i, run_side)
            run_start, run_side = i, side
    close(run_start, len(values), run_side)


def _mark_trends(values: Sequence[float], flags: list[set[str]]) -> None:
    for direction in (1, -1):
        start = 0
        for i in range(1, len(values) + 1):
            continuing = i < len(values) and (values[i] - values[i - 1]) * direction > 0
            if not continuing:
                if i - start >= RUN_LENGTH:
                    for j in range(start, i):
                        flags[j].add("trend")
                start = i


def _mark_two_of_three(
    values: Sequence[float], mean: float, mr: float, flags: list[set[str]]
) -> None:
    if mr == 0:
        return
    band = (2 / 3) * SIGMA_FACTOR * mr
    for i in range(len(values) - 2):
        window = values[i : i + 3]
        for side in (1, -1):
            beyond = [j for j, v in enumerate(window) if (v - mean) * side > band]
            if len(beyond) >= 2:
                for j in beyond:
                    flags[i + j].add("two-of-three")
