"""ari/rest.py: request URLs built from their parts are byte for byte those built from text."""

from __future__ import annotations

import pytest
from callshield.ari.rest import Params, RestTransport, segment
from yarl import URL

ROOTS = [
    "http://127.0.0.1:8088/ari",
    "http://127.0.0.1:8088/ari/",
    "https://pbx.example.com:8089/asterisk/ari",
    "http://[::1]:8088/ari",
]
PATHS = [
    "/channels",
    f"/channels/{segment('1795847931.26')}/continue",
    f"/channels/{segment('my id/with?odd#chars%and spaces')}/variable",
    f"/applications/{segment('callshield')}/subscription",
]
PARAMS: list[Params | None] = [
    None,
    {"label": "allow-clean"},
    {"variable": "SHIELD_UNTIL", "value": "2027-11-28T10:00:00Z"},
    {"variable": "X", "value": "a b+c&d=e/f?g#h%i \u00e9"},
]


@pytest.mark.parametrize("root", ROOTS)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("params", PARAMS)
def test_urls_from_parts_equal_urls_from_text(root: str, path: str, params: Params | None) -> None:
    built = RestTransport(root, "Basic x", 1.0).url(path, params)
    from_text = URL(root.rstrip("/") + path)
    if params:
        from_text = from_text.extend_query(params)
    assert str(built) == str(from_text)
    assert built.raw_path_qs == from_text.raw_path_qs
