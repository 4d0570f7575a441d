"""Amounts as Indian bills print them: rupees grouped in lakhs and crores, ₹1,23,456.00."""

from __future__ import annotations


def group_indian(digits: str) -> str:
    """Group a string of digits the Indian way: the last three, then pairs (12,34,567)."""
    if len(digits) <= 3:
        return digits
    head, tail = digits[:-3], digits[-3:]
    pairs: list[str] = []
    while len(head) > 2:
        pairs.insert(0, head[-2:])
        head = head[:-2]
    return ",".join([head, *pairs, tail])


def format_paise(paise: int) -> str:
    """An integer amount of paise as rupees with the sign, ₹ and two decimals: ₹1,23,456.00."""
    if isinstance(paise, bool) or not isinstance(paise, int):
        raise TypeError("paise must be an integer")
    sign = "-" if paise < 0 else ""
    rupees, rest = divmod(abs(paise), 100)
    return f"{sign}₹{group_indian(str(rupees))}.{rest:02d}"


def plain_rupees(paise: int) -> str:
    """Paise as a plain rupee figure for a form field (35000 -> "350.00"), no float involved."""
    sign = "-" if paise < 0 else ""
    rupees, rest = divmod(abs(paise), 100)
    return f"{sign}{rupees}.{rest:02d}"
