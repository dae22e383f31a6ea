"""XmR limits and the Making Data Count special-cause rules, against a plain reference."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from register.review.spc import xmr


def labels(n: int) -> list[str]:
    return [f"2026-{i:02d}" for i in range(1, n + 1)]


def test_limits_are_mean_plus_minus_2_66_moving_range():
    values = [10, 12, 11, 13, 12, 10, 11]
    chart = xmr(labels(7), values, floor=None)
    mean = sum(values) / 7
    mr = sum(abs(b - a) for a, b in itertools.pairwise(values)) / 6
    assert abs(chart.mean - mean) < 1e-9
    assert abs(chart.upper_limit - (mean + 2.66 * mr)) < 1e-9
    assert abs(chart.lower_limit - (mean - 2.66 * mr)) < 1e-9
    assert not any(p.special_cause for p in chart.points)
    assert chart.variation() == "common cause"


def test_point_beyond_limit():
    values = [10, 11, 10, 12, 11, 10, 11, 10, 40]
    chart = xmr(labels(9), values)
    assert chart.points[-1].flags == ("beyond-limit",)
    assert chart.variation() == "special cause concern"


def test_shift_of_seven_on_one_side():
    values = [2, 8, 2, 8] + [6] * 7 + [4] * 7  # mean exactly 5
    chart = xmr(labels(len(values)), values)
    assert chart.mean == 5
    shifted = [i for i, p in enumerate(chart.points) if "shift" in p.flags]
    assert shifted == list(range(3, 18))  # 8 above (the last 8, then the 6s), then 7 below


def test_six_on_one_side_is_not_a_shift():
    values = [8, 2, 8, 2] + [6] * 6 + [4] * 6  # mean exactly 5
    chart = xmr(labels(len(values)), values)
    assert chart.mean == 5
    assert not any("shift" in p.flags for p in chart.points)


def test_trend_of_seven_rising():
    values = [8, 3, 9, 1, 2, 3, 4, 5, 6, 7, 2]
    chart = xmr(labels(len(values)), values)
    assert [i for i, p in enumerate(chart.points) if "trend" in p.flags] == list(range(3, 10))


def test_two_of_three_beyond_two_thirds():
    values = [10, 10.2] * 10 + [10.9, 10.1, 10.9]
    chart = xmr(labels(len(values)), values, floor=None)
    band = chart.mean + (2 / 3) * (chart.upper_limit - chart.mean)
    marked = [i for i, p in enumerate(chart.points) if "two-of-three" in p.flags]
    assert marked == [20, 22]
    assert all(values[i] > band for i in marked)
    assert all(v <= chart.upper_limit for v in values)  # none beyond the limit itself


def _reference_trend(values: list[float]) -> set[int]:
    marked: set[int] = set()
    for start in range(len(values)):
        for end in range(start + 7, len(values) + 1):
            window = values[start:end]
            steps = [b - a for a, b in itertools.pairwise(window)]
            if all(s > 0 for s in steps) or all(s < 0 for s in steps):
                marked.update(range(start, end))
    return marked


def _reference_shift(values: list[float], mean: float) -> set[int]:
    marked: set[int] = set()
    for start in range(len(values)):
        for end in range(start + 7, len(values) + 1):
            window = values[start:end]
            if all(v > mean for v in window) or all(v < mean for v in window):
                marked.update(range(start, end))
    return marked


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=30))
def test_runs_and_trends_match_a_brute_force_reference(values):
    chart = xmr(labels(len(values)), [float(v) for v in values])
    trend = {i for i, p in enumerate(chart.points) if "trend" in p.flags}
    shift = {i for i, p in enumerate(chart.points) if "shift" in p.flags}
    assert trend == _reference_trend(values)
    assert shift == _reference_shift(values, chart.mean)
