"""callshield.agi.protocol: the wire format, table-tested with every line of the capture."""

from __future__ import annotations

import agi_capture
import pytest
from callshield.agi.protocol import (
    MAX_COMMAND_BYTES,
    OK_LINE,
    OK_REPLY,
    AgiReply,
    Command,
    ReplyAssembler,
    decode_line,
    format_command,
    is_hangup,
    parse_reply,
    quote,
)
from callshield.errors import PeerProtocolError
from fake_agi_channel import split_args

# Every single-line reply in captures/fastagi.jsonl: line -> (code, result, value, text).
CAPTURED_REPLIES: dict[str, tuple[int, str | None, str | None, str]] = {
    "200 result=0": (200, "0", None, ""),
    "200 result=1": (200, "1", None, ""),
    "200 result=1 (PJSIP/agent2-00000008)": (200, "1", "PJSIP/agent2-00000008", ""),
    "200 result=1 (PJSIP/agent2-0000000a)": (200, "1", "PJSIP/agent2-0000000a", ""),
    "200 result=1 (Local/5551234@agents-agi-local-0000000d;2)": (
        200,
        "1",
        "Local/5551234@agents-agi-local-0000000d;2",
        "",
    ),
    "200 result=1 (Local/5550000@agents-agi-local-0000000f;2)": (
        200,
        "1",
        "Local/5550000@agents-agi-local-0000000f;2",
        "",
    ),
    "200 result=1 (Local/5559999@agents-agi-local-00000011;2)": (
        200,
        "1",
        "Local/5559999@agents-agi-local-00000011;2",
        "",
    ),
    "200 result=1 (agent2/5551234)": (200, "1", "agent2/5551234", ""),
    "200 result=1 (agent2/5550000)": (200, "1", "agent2/5550000", ""),
    "200 result=1 (1001/5551234)": (200, "1", "1001/5551234", ""),
    "200 result=1 (1001/5550000)": (200, "1", "1001/5550000", ""),
    "200 result=1 (allow)": (200, "1", "allow", ""),
    "200 result=1 (block)": (200, "1", "block", ""),
    "510 Invalid or unknown command": (510, None, None, "Invalid or unknown command"),
}
CAPTURED_BLOCK = [
    "520-Invalid command syntax.  Proper usage follows:",
    "Sets a variable to the current channel.",
    "520 End of proper usage.",
]

# Reply formats res_agi writes that the capture does not show.
OTHER_REPLIES: dict[str, tuple[int, str | None, str | None, tuple[tuple[str, str], ...], str]] = {
    "200 result=-1": (200, "-1", None, (), ""),
    "200 result=0 endpos=1234": (200, "0", None, (("endpos", "1234"),), ""),
    "200 result=49 endpos=8640": (200, "49", None, (("endpos", "8640"),), ""),
    "200 result=-1 endpos=0": (200, "-1", None, (("endpos", "0"),), ""),
    "200 result= (timeout)": (200, "", "timeout", (), ""),
    "200 result=12 (timeout)": (200, "12", "timeout", (), ""),
    "200 result=0123": (200, "0123", None, (), ""),
    "200 result=49 (dtmf) endpos=100": (200, "49", "dtmf", (("endpos", "100"),), ""),
    "200 result=-1 (hangup)": (200, "-1", "hangup", (), ""),
    "200 result=1 (digit) digit=5 endpos=7": (200, "1", "digit", (("digit", "5"), ("endpos", "7")), ""),
    "200 result=1 (speech) endpos=9 results=2 yes no": (
        200,
        "1",
        "speech",
        (("endpos", "9"), ("results", "2")),
        "yes no",
    ),
    "200 result=1 (a (b) c)": (200, "1", "a (b) c", (), ""),
    "200 result=1 (x) y)": (200, "1", "x) y", (), ""),
    "200 result=1 ()": (200, "1", "", (), ""),
    "200 result=1 (two  spaces )": (200, "1", "two  spaces ", (), ""),
    "200 result=0 Gosub complete": (200, "0", None, (), "Gosub complete"),
    "200 result=-1 Gosub label not found": (200, "-1", None, (), "Gosub label not found"),
    "100 result=0 Trying...": (100, "0", None, (), "Trying..."),
    "503 result=-2 Memory allocation failure": (503, "-2", None, (), "Memory allocation failure"),
    "511 Command Not Permitted on a dead channel or intercept routine": (
        511,
        None,
        None,
        (),
        "Command Not Permitted on a dead channel or intercept routine",
    ),
    "520 Invalid command syntax.  Proper usage not available.": (
        520,
        None,
        None,
        (),
        "Invalid command syntax.  Proper usage not available.",
    ),
    "200": (200, None, None, (), ""),
}


def test_the_table_covers_every_line_asterisk_sent_after_a_header() -> None:
    known = set(CAPTURED_REPLIES) | set(CAPTURED_BLOCK) | {"HANGUP"}
    lines = agi_capture.lines_from_asterisk_after_header()
    assert lines
    assert all(line.endswith("\n") for line in lines)
    assert {line[:-1] for line in lines} <= known


@pytest.mark.parametrize("line", sorted(CAPTURED_REPLIES))
def test_captured_reply(line: str) -> None:
    code, result, value, text = CAPTURED_REPLIES[line]
    reply = parse_reply(decode_line(line.encode() + b"\n"))
    assert (reply.code, reply.result, reply.value, reply.text) == (code, result, value, text)
    assert reply.fields == ()
    assert reply.ok is (code == 200)


@pytest.mark.parametrize("line", sorted(OTHER_REPLIES))
def test_other_reply_formats(line: str) -> None:
    reply = parse_reply(line)
    assert (reply.code, reply.result, reply.value, reply.fields, reply.text) == OTHER_REPLIES[line]


def test_reply_helpers() -> None:
    reply = parse_reply("200 result=49 (dtmf) endpos=100")
    assert reply.result_int == 49
    assert reply.get("endpos") == "100"
    assert reply.get("nothing") is None
    assert parse_reply("200 result= (timeout)").result_int is None
    assert parse_reply("510 Invalid or unknown command").result_int is None
    assert parse_reply("200 result=-1").result_int == -1


def test_reply_repr_hides_the_value() -> None:
    assert "5551234" not in repr(parse_reply("200 result=1 (agent2/5551234)"))


def test_captured_multi_line_520() -> None:
    assembler = ReplyAssembler()
    assert assembler.feed(CAPTURED_BLOCK[0]) is None
    assert assembler.feed(CAPTURED_BLOCK[1]) is None
    reply = assembler.feed(CAPTURED_BLOCK[2])
    assert reply == AgiReply(
        code=520,
        text="Invalid command syntax.  Proper usage follows:",
        usage="Sets a variable to the current channel.",
    )


def test_multi_line_520_with_several_and_empty_usage_lines() -> None:
    lines = ["520-Invalid command syntax.  Proper usage follows:", "one", "", "  three", "520 End."]
    assembler = ReplyAssembler()
    replies = [assembler.feed(line) for line in lines]
    assert replies[:-1] == [None] * 4
    assert replies[-1] is not None
    assert replies[-1].usage == "one\n\n  three"


def test_multi_line_block_is_bounded() -> None:
    assembler = ReplyAssembler(max_block_lines=3)
    assembler.feed("520-Invalid command syntax.  Proper usage follows:")
    for _ in range(3):
        assembler.feed("usage")
    with pytest.raises(PeerProtocolError):
        assembler.feed("more usage")


def test_parse_reply_refuses_a_multi_line_opening() -> None:
    with pytest.raises(PeerProtocolError):
        parse_reply("520-Invalid command syntax.  Proper usage follows:")


@pytest.mark.parametrize(
    "line", ["", "OK", "20 result=1", "2000 result=1", "abc 200", " 200 result=1", "HANGUP"]
)
def test_malformed_replies(line: str) -> None:
    with pytest.raises(PeerProtocolError):
        parse_reply(line)
    with pytest.raises(PeerProtocolError):
        ReplyAssembler().feed(line)


@pytest.mark.parametrize("conn", agi_capture.connections())
def test_each_captured_reply_stream_assembles(conn: int) -> None:
    """Replies of a whole session, HANGUP notices skipped: one per answered command."""
    records = agi_capture.after_header(conn)
    commands = [r for r in records if r.dir == ">>"]
    replies: list[AgiReply] = []
    assembler = ReplyAssembler()
    for record in records:
        line = decode_line(record.data.encode())
        if record.from_asterisk and not is_hangup(line) and (reply := assembler.feed(line)) is not None:
            replies.append(reply)
            assembler = ReplyAssembler()
    unanswered = 1 if conn == 5 else 0  # conn 5: GET VARIABLE got HANGUP, then the socket closed
    assert len(replies) == len(commands) - unanswered


def test_decode_line() -> None:
    assert decode_line(b"200 result=1\n") == "200 result=1"
    assert decode_line(b"200 result=1\r\n") == "200 result=1"
    assert decode_line(b"agi_calleridname: Agn\xe8s\n") == "agi_calleridname: Agn\ufffds"
    assert is_hangup(decode_line(b"HANGUP\n"))
    assert not is_hangup("HANGUP ")


@pytest.mark.parametrize(
    ("verb", "args", "wire"),
    [
        ("SET VARIABLE", ("NAME", "two words"), b'SET VARIABLE "NAME" "two words"\n'),
        ("SET VARIABLE", ("NAME", ""), b'SET VARIABLE "NAME" ""\n'),
        ("SET VARIABLE", ("NAME", 'say "hi"'), b'SET VARIABLE "NAME" "say \\"hi\\""\n'),
        ("SET VARIABLE", ("NAME", "C:\\dir\\"), b'SET VARIABLE "NAME" "C:\\\\dir\\\\"\n'),
        ("GET DATA", ("optout-prompt", "3000", "1"), b'GET DATA "optout-prompt" "3000" "1"\n'),
        ("ANSWER", (), b"ANSWER\n"),
        ("VERBOSE", ("\u00e9t\u00e9", "1"), 'VERBOSE "\u00e9t\u00e9" "1"\n'.encode()),
    ],
)
def test_format_command(verb: str, args: tuple[str, ...], wire: bytes) -> None:
    assert format_command(verb, *args) == wire
    command = Command(verb, *args)  # formatted once, sent as is
    assert (command.verb, command.line) == (verb, wire)


def test_a_command_is_checked_when_made_and_never_shows_its_arguments() -> None:
    with pytest.raises(ValueError, match="line break"):
        Command("SET VARIABLE", "NAME", "one\nHANGUP")
    assert repr(Command("SET VARIABLE", "SHIELD_NUMBER", "+8613800138000")) == "Command('SET VARIABLE')"


@pytest.mark.parametrize(
    "value",
    [
        "two words",
        'say "hi"',
        "back\\slash",
        "trailing\\",
        "",
        " lead and trail ",
        "tab\there",
        "${X}",
        "a'b",
        '\\"',
    ],
)
def test_asterisk_reads_back_exactly_what_was_quoted(value: str) -> None:
    line = format_command("SET VARIABLE", "SHIELD_REASON", value).decode()
    assert split_args(line[:-1]) == ["SET", "VARIABLE", "SHIELD_REASON", value]


@pytest.mark.parametrize("line", sorted(set(agi_capture.command_lines())))
def test_captured_commands_round_trip(line: str) -> None:
    words = split_args(line[:-1])
    verb_words = 0
    while verb_words < len(words) and words[verb_words].isalpha():
        verb_words += 1
    ours = format_command(" ".join(words[:verb_words]), *words[verb_words:]).decode()
    assert split_args(ours[:-1]) == words


@pytest.mark.parametrize("value", ["a\nHANGUP", "a\r", "\n", "nul\x00byte", "x\r\nEXEC System rm"])
def test_line_breaks_and_nul_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="line break or NUL") as info:
        format_command("SET VARIABLE", "NAME", value)
    assert value not in str(info.value)
    with pytest.raises(ValueError, match="line break or NUL"):
        quote(value)


@pytest.mark.parametrize(
    "verb", ["", "SET  VARIABLE", "SET VARIABLE\n", "SET\nVARIABLE", " ANSWER", "EXEC 5551234"]
)
def test_bad_verbs_are_refused(verb: str) -> None:
    with pytest.raises(ValueError, match="verb") as info:
        format_command(verb)
    assert "5551234" not in str(info.value)


def test_command_length_limit() -> None:
    fixed = len(b'SET VARIABLE "N" ""\n')
    assert len(format_command("SET VARIABLE", "N", "x" * (MAX_COMMAND_BYTES - fixed))) == MAX_COMMAND_BYTES
    with pytest.raises(ValueError, match="at most"):
        format_command("SET VARIABLE", "N", "x" * (MAX_COMMAND_BYTES - fixed + 1))


def test_the_shared_ok_reply_is_the_parsed_ok_line() -> None:
    assert parse_reply(decode_line(OK_LINE)) == OK_REPLY
    assert ReplyAssembler().feed(decode_line(OK_LINE)) == OK_REPLY
