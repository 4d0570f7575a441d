"""Pagination cursors: every cursor the published schema admits decodes to a usable bound."""

from __future__ import annotations

import base64
import re

import pytest

from cloud.api.pagination import CURSOR_PATTERN, decode_cursor, encode_cursor


@pytest.mark.parametrize("raw", [b"\x00", b"MTR\x00001", b"\xff\xfe", b"\xc3"])
def test_any_cursor_the_schema_admits_decodes_to_a_bound_a_database_accepts(raw: bytes) -> None:
    cursor = base64.urlsafe_b64encode(raw).decode()
    assert re.fullmatch(CURSOR_PATTERN, cursor)
    key = decode_cursor(cursor)
    assert key and "\x00" not in key


def test_cursors_round_trip() -> None:
    assert decode_cursor(encode_cursor("MTR000042")) == "MTR000042"
    assert re.fullmatch(CURSOR_PATTERN, encode_cursor("MTR000042"))
