"""Indian grouping of amounts on the consumer page."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.web.money import format_paise, group_indian


@pytest.mark.parametrize(
    ("paise", "shown"),
    [
        (0, "₹0.00"),
        (5, "₹0.05"),
        (35_000, "₹350.00"),
        (99_999, "₹999.99"),
        (100_000, "₹1,000.00"),
        (12_345_600, "₹1,23,456.00"),
        (1_234_567_801, "₹1,23,45,678.01"),
        (10_000_000_000, "₹10,00,00,000.00"),
        (-35_000, "-₹350.00"),
        (-12_345_600, "-₹1,23,456.00"),
    ],
)
def test_amounts_in_indian_grouping(paise: int, shown: str) -> None:
    assert format_paise(paise) == shown


def test_floats_and_booleans_are_refused() -> None:
    with pytest.raises(TypeError):
        format_paise(350.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        format_paise(True)


@given(st.integers(min_value=0, max_value=10**15))
def test_grouping_keeps_the_digits_and_the_pattern(rupees: int) -> None:
    grouped = group_indian(str(rupees))
    assert grouped.replace(",", "") == str(rupees)
    parts = grouped.split(",")
    assert len(parts[-1]) == min(3, len(str(rupees)))
    assert all(len(part) == 2 for part in parts[1:-1])
    assert 1 <= len(parts[0]) <= (3 if len(parts) == 1 else 2)
