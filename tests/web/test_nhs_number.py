"""NHS number check digit (Modulus 11), against a plain reference written from the definition."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from register.web.nhs_number import formatted, is_valid


def reference_valid(number: str) -> bool:
    """The NHS Data Dictionary's rule, written out long-hand."""
    if len(number) != 10 or not number.isdigit():
        return False
    total = 0
    for position in range(9):
        total += int(number[position]) * (10 - position)
    remainder = total % 11
    check = 11 - remainder
    if check == 11:
        check = 0
    if check == 10:
        return False
    return check == int(number[9])


@given(st.text(alphabet="0123456789", min_size=10, max_size=10))
def test_agrees_with_the_reference(number: str) -> None:
    assert is_valid(number) == reference_valid(number)


@given(st.text(alphabet="0123456789", min_size=9, max_size=9), st.integers(0, 9), st.integers(1, 9))
def test_any_single_digit_error_is_caught(first_nine: str, position: int, shift: int) -> None:
    valid = [first_nine + d for d in "0123456789" if reference_valid(first_nine + d)]
    for number in valid:
        digits = list(number)
        digits[position] = str((int(digits[position]) + shift) % 10)
        assert not is_valid("".join(digits))


def test_spaces_and_hyphens_are_allowed_and_other_text_is_not() -> None:
    assert is_valid("943 476 5919") and is_valid("943-476-5919") and is_valid("9990000018")
    assert not is_valid("943476591") and not is_valid("94347659190") and not is_valid("abc")
    assert formatted("9434765919") == "943 476 5919"
