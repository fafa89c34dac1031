"""callshield.agi.request: the header block, table-tested with every block of the capture."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import agi_capture
import pytest
from callshield.agi import request as request_module
from callshield.agi.request import (
    AgiRequest,
    check_block_start,
    parse_block,
    parse_header_block,
    parse_header_line,
    parse_request,
)
from callshield.errors import PeerProtocolError


@pytest.mark.parametrize("conn", agi_capture.connections())
def test_captured_header_blocks(conn: int) -> None:
    lines = agi_capture.header_lines(conn)
    pairs = [parse_header_line(line) for line in lines]
    raw = dict(line.split(": ", 1) for line in lines if line != "agi_accountcode: ")
    request = parse_request(pairs)
    assert request.script == "check"
    assert request.query == ()
    assert request.args == (raw["agi_arg_1"],)
    assert request.accountcode == ""
    assert request.extra == ()
    for field_name in ("channel", "uniqueid", "language", "callerid", "calleridname", "extension"):
        assert getattr(request, field_name) == raw[f"agi_{field_name}"]
    for field_name in ("context", "priority", "dnid", "rdnis", "version", "threadid", "enhanced"):
        assert getattr(request, field_name) == raw[f"agi_{field_name}"]
    assert (request.channel_type, request.network, request.request) == (
        raw["agi_type"],
        "yes",
        "agi://127.0.0.1:4573/check",
    )


def test_first_captured_header_block_in_full() -> None:
    request = parse_request([parse_header_line(line) for line in agi_capture.header_lines(1)])
    assert request.channel == "PJSIP/agent2-00000008"
    assert request.uniqueid == "1795847965.34"
    assert (request.callerid, request.calleridname) == ("agent2", "Agent")
    assert (request.extension, request.dnid, request.rdnis) == ("5551234", "5551234", "unknown")
    assert (request.context, request.priority, request.language) == ("agents-agi", "2", "en")
    assert (request.callingpres, request.callingani2, request.callington, request.callingtns) == ("0",) * 4
    assert (request.version, request.enhanced, request.threadid) == ("22.10.1", "0.0", "140712535230144")
    assert request.network_script == "check"


def test_request_repr_shows_no_number() -> None:
    request = parse_request([parse_header_line(line) for line in agi_capture.header_lines(3)])
    assert "5551234" not in repr(request)
    assert "1795847972.38" in repr(request)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("agi_accountcode: ", ("agi_accountcode", "")),
        ("agi_accountcode:", ("agi_accountcode", "")),
        ("agi_calleridname: A: B", ("agi_calleridname", "A: B")),
        ("agi_calleridname:  two leading", ("agi_calleridname", " two leading")),
        ("agi_arg_12: x", ("agi_arg_12", "x")),
    ],
)
def test_header_line_edges(line: str, expected: tuple[str, str]) -> None:
    assert parse_header_line(line) == expected


@pytest.mark.parametrize(
    "line", ["agi_channel PJSIP/x", "Agi_channel: x", "channel: x", ": x", "agi_: x", "\ufffd\ufffd: x", ""]
)
def test_malformed_header_lines(line: str) -> None:
    with pytest.raises(PeerProtocolError):
        parse_header_line(line)


def _request(*pairs: tuple[str, str]) -> list[tuple[str, str]]:
    return [("agi_network", "yes"), *pairs]


@pytest.mark.parametrize(
    ("pairs", "script", "query"),
    [
        (
            _request(
                ("agi_network_script", "callshield/gate?x=y&z="), ("agi_request", "agi://h:4573/ignored")
            ),
            "callshield/gate",
            (("x", "y"), ("z", "")),
        ),
        (_request(("agi_request", "agi://h:4573/callshield/gate?a=1")), "callshield/gate", (("a", "1"),)),
        (_request(("agi_request", "agi://h:4573/")), "", ()),
        (_request(("agi_request", "agi://h")), "", ()),
        (_request(("agi_network_script", "/callshield/mark/"), ("agi_request", "x")), "callshield/mark", ()),
    ],
)
def test_script_and_query(
    pairs: list[tuple[str, str]], script: str, query: tuple[tuple[str, str], ...]
) -> None:
    request = parse_request(pairs)
    assert (request.script, request.query) == (script, query)


def test_args_in_order_and_unknown_headers_kept() -> None:
    request = parse_request(
        _request(
            ("agi_request", "agi://h/callshield/gate"),
            ("agi_arg_2", "company"),
            ("agi_arg_1", "5551234"),
            ("agi_arg_3", ""),
            ("agi_future", "42"),
        )
    )
    assert request.args == ("5551234", "company", "")
    assert request.extra == (("agi_future", "42"),)
    assert request.query_value("x") is None


@pytest.mark.parametrize(
    "pairs",
    [
        _request(("agi_channel", "x")),
        _request(("agi_request", "agi://h/x"), ("agi_request", "agi://h/y")),
        _request(("agi_request", "agi://h/x"), ("agi_arg_2", "b")),
        _request(("agi_request", "agi://[broken/x")),
    ],
    ids=["no request", "repeated", "arg gap", "bad url"],
)
def test_bad_header_blocks(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(PeerProtocolError):
        parse_request(pairs)


@pytest.mark.parametrize("conn", agi_capture.connections())
def test_block_parser_agrees_with_the_line_parser(conn: int) -> None:
    block = agi_capture.header_block(conn)
    assert parse_header_block(block) == [parse_header_line(line) for line in agi_capture.header_lines(conn)]
    crlf = block.replace(b"\n", b"\r\n")
    assert parse_header_block(crlf) == parse_header_block(block)


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (b"\n", []),
        (b"agi_accountcode: \nagi_accountcode2:\n\n", [("agi_accountcode", ""), ("agi_accountcode2", "")]),
        (b"agi_calleridname: A: B\n\n", [("agi_calleridname", "A: B")]),
        (b"agi_calleridname:  two\n\n", [("agi_calleridname", " two")]),
        (b"agi_calleridname: Agn\xe8s\n\n", [("agi_calleridname", "Agn\ufffds")]),
        (b"agi_calleridname: x\r\r\n\n", [("agi_calleridname", "x\r")]),
    ],
)
def test_block_parser_values(block: bytes, expected: list[tuple[str, str]]) -> None:
    assert parse_header_block(block) == expected


@pytest.mark.parametrize(
    "block",
    [
        b"agi_network: yes\nAGI_X: 1\n\n",
        b"agi_network: yes\nno colon\n\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
)
def test_block_parser_refuses_what_the_line_parser_refuses(block: bytes) -> None:
    with pytest.raises(PeerProtocolError, match="is not 'agi_<name>: value'") as info:
        parse_header_block(block)
    assert "HTTP" not in str(info.value) and "no colon" not in str(info.value)


def test_every_cut_of_a_real_block_is_a_valid_start() -> None:
    block = agi_capture.header_block(1)
    for data in (block, block.replace(b"\n", b"\r\n")):
        for cut in range(1, len(data)):
            check_block_start(data[:cut])


@pytest.mark.parametrize("data", [b"GET / HTTP/1.1\r\n", b"agi_network: yes\nagi_X", b"\x16\x03\x01", b"agx"])
def test_a_start_that_cannot_become_a_block(data: bytes) -> None:
    with pytest.raises(PeerProtocolError, match="is not 'agi_<name>: value'"):
        check_block_start(data)


def _edit(
    drop: tuple[str, ...] = (), replace: dict[str, str] | None = None, add: tuple[str, ...] = ()
) -> bytes:
    """Captured block 1 with header lines dropped (by name), values replaced, lines added at the end."""
    lines = [line for line in agi_capture.header_lines(1) if line.partition(":")[0] not in drop]
    for name, value in (replace or {}).items():
        lines = [f"{name}: {value}" if line.startswith(f"{name}:") else line for line in lines]
    return "".join(f"{line}\n" for line in (*lines, *add)).encode("utf-8", "surrogateescape") + b"\n"


def _outcome(parse: Callable[[], AgiRequest]) -> tuple[object, ...]:
    """What a parse gives, fully: every field and header in order, or the error's type and text."""
    try:
        r = parse()
    except PeerProtocolError as exc:
        return ("error", str(exc))
    return ("ok", r.script, r.query, r.args, list(r.headers.items()), r.extra)


_ARGS = ("agi_arg_1: 5551234", "agi_arg_2: acme", "agi_arg_3: ")
_VARIANTS: dict[str, bytes] = {
    "captured": agi_capture.header_block(1),
    "three args": _edit(drop=("agi_arg_1",), add=_ARGS),
    "no args": _edit(drop=("agi_arg_1",)),
    "no network script": _edit(drop=("agi_network_script",), replace={"agi_request": "agi://h/gate?a=1"}),
    "script with query": _edit(replace={"agi_network_script": "/callshield/gate/?x=y&z="}),
    "colons, spaces, no space": _edit(
        replace={"agi_calleridname": "A: B", "agi_callerid": " two", "agi_language": ""}
    ).replace(b"agi_context: ", b"agi_context:"),
    "latin-1 name": _edit(replace={"agi_calleridname": "Agn\udce8s"}),
    "lone CR in a value": _edit(replace={"agi_calleridname": "x\r"}),
    "CRLF": agi_capture.header_block(1).replace(b"\n", b"\r\n"),
    "unknown header inside": _edit(add=("agi_future: 1", "agi_arg_2: x")),
    "unknown header first": b"agi_future: 1\n" + agi_capture.header_block(1),
    "known header out of order": _edit(drop=("agi_network",), add=("agi_network: yes",)),
    "args out of order": _edit(drop=("agi_arg_1",), add=(_ARGS[1], _ARGS[0])),
    "arg 01": _edit(add=("agi_arg_02: x",)),
    "arg gap": _edit(add=("agi_arg_3: x",)),
    "repeated header": _edit(add=("agi_channel: Local/x",)),
    "repeated arg": _edit(add=("agi_arg_1: x",)),
    "no agi_request": _edit(drop=("agi_request",)),
    "bad URL": _edit(drop=("agi_network_script",), replace={"agi_request": "agi://[broken/x"}),
    "malformed line": _edit(add=("agi_arg_2 x",)),
    "malformed known line": _edit(replace={"agi_channel": "x"}).replace(b"agi_channel: x", b"AGI_channel: x"),
    "empty": b"\n",
    # every value could start at the colon's space or after it: read one way, or this never ends
    "two spaces, late failure": _edit(add=(*(f"agi_arg_{n}: x" for n in range(2, 10)), "agi_z: 1")).replace(
        b": ", b":  "
    ),
    "two spaces, ten arguments": _edit(add=tuple(f"agi_arg_{n}: x" for n in range(2, 11))).replace(
        b": ", b":  "
    ),
}


@pytest.mark.parametrize("block", _VARIANTS.values(), ids=_VARIANTS.keys())
def test_parse_block_is_the_general_parse_in_one_step(block: bytes) -> None:
    general = _outcome(lambda: parse_request(parse_header_block(block)))
    assert _outcome(lambda: parse_block(block)) == general


@pytest.mark.parametrize(
    ("name", "usual"),
    [
        ("captured", True),
        ("three args", True),
        ("no args", True),
        ("script with query", True),
        ("no network script", False),
        ("lone CR in a value", False),
        ("CRLF", False),
        ("unknown header inside", False),
        ("args out of order", False),
        ("arg gap", False),
        ("repeated arg", False),
        ("malformed known line", False),
    ],
)
def test_the_fast_path_reads_blocks_as_asterisk_writes_them(
    name: str, usual: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asterisk's own blocks never reach the general path's line-by-line pairs; others do."""
    general: list[str] = []

    def pairs(text: str) -> list[tuple[str, str]]:
        general.append(text)
        return header_pairs(text)

    header_pairs = request_module._header_pairs
    monkeypatch.setattr(request_module, "_header_pairs", pairs)
    with contextlib.suppress(PeerProtocolError):
        parse_block(_VARIANTS[name])
    assert (general == []) is usual


def test_more_arguments_than_the_fast_path_reads() -> None:
    block = _edit(add=tuple(f"agi_arg_{n}: {n}" for n in range(2, 13)))
    assert parse_block(block).args == ("5551234", *map(str, range(2, 13)))


@pytest.mark.parametrize("name", ["captured", "three args", "no args", "script with query"])
def test_the_fast_paths_headers_answer_as_the_general_paths_dict(name: str) -> None:
    """The fast path keeps the values in order and looks them up by name: every question, for
    headers present, arguments not sent and names Asterisk never writes, gets the dict's answer."""
    block = _VARIANTS[name]
    fast, general = parse_block(block).headers, dict(parse_header_block(block))
    asked = [*general, *(f"agi_arg_{n}" for n in range(1, 12)), "agi_future", "agi_", ""]
    for header in asked:
        assert (fast.get(header), fast.get(header, "-"), header in fast) == (
            general.get(header),
            general.get(header, "-"),
            header in general,
        )
        if header not in general:
            with pytest.raises(KeyError):
                fast[header]
    assert (list(fast), len(fast), fast == general) == (list(general), len(general), True)
    assert "5551234" not in repr(fast) and "1795847965" not in repr(fast)
