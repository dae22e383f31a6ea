"""NHS numbers: ten digits, the last a Modulus 11 check digit (see the NHS Data Dictionary)."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s-]")


def normalise(text: str) -> str:
    """The number as typed, without spaces or hyphens (``943 476 5919`` -> ``9434765919``)."""
    return _SEPARATORS.sub("", text or "")


def check_digit(first_nine: str) -> int | None:
    """The check digit for nine digits (weights 10..2; 11 -> 0; 10 -> None: no valid number)."""
    total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def is_valid(text: str) -> bool:
    """Whether ``text`` (spaces and hyphens allowed) is a valid NHS number."""
    number = normalise(text)
    if len(number) != 10 or not number.isdigit():
        return False
    return check_digit(number[:9]) == int(number[9])


def formatted(number: str) -> str:
    """``9434765919`` as ``943 476 5919``."""
    n = normalise(number)
    return f"{n[:3]} {n[3:6]} {n[6:]}" if len(n) == 10 else number
