"""The consumer page's message catalogue: every string in both languages, same placeholders."""

from __future__ import annotations

import string

import pytest

from cloud.web.messages import CATALOGUE, pick_lang, t


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("key", sorted(CATALOGUE))
def test_every_string_has_english_and_hindi_with_the_same_fields(key: str) -> None:
    english, hindi = CATALOGUE[key]
    assert english.strip() and hindi.strip()
    assert _fields(english) == _fields(hindi)
    # Hindi text is written in Devanagari (U+0900-U+097F), not left in English.
    assert any("\u0900" <= char <= "\u097f" for char in hindi), hindi


def test_fields_are_filled_and_languages_picked() -> None:
    assert t("elapsed", "en", seconds="1.2") == "1.2 s after payment"
    assert t("elapsed", "hi", seconds="1.2") == "भुगतान के 1.2 सेकंड बाद"
    assert pick_lang("hi") == "hi"
    assert pick_lang("fr") == "en"
    assert pick_lang(None) == "en"
