"""A FastAGI peer for the gate benchmark: Asterisk's side of ``AGI(agi://.../callshield/gate,...)``.

Per call it connects to the subject on 127.0.0.1, writes the header block exactly as Asterisk 22
does (the first session of ``captures/fastagi.jsonl``, with the script, channel, unique id,
extension and ``agi_arg_1..3`` = ``NUMBER, acme, spring`` substituted), answers every command
line with ``200 result=1`` as res_agi answers ``SET VARIABLE``, and waits for the subject to close
the socket: Asterisk continues the dialplan then. The latency of a call is from starting the TCP
connect to that end of stream. A verdict is *right* when the three ``SET VARIABLE`` lines are
exactly those the store implies (``BLOCK``/``shielded``/the expiry, or ``ALLOW``/``clean``/empty).
Raw asyncio protocols keep the peer's own cost small.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path

from gate_run import Load, next_load
from gate_workload import CAMPAIGN, COMPANY, Call

CAPTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "asterisk" / "captures"
REPLY = b"200 result=1\n"


def captured_header(captures: Path) -> list[tuple[str, str]]:
    """The header lines of the first captured session, in order, without its ``agi_arg_N``."""
    headers: list[tuple[str, str]] = []
    for line in (captures / "fastagi.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["dir"] != "<<":
            continue
        if record["data"] == "\n" and headers:
            return headers
        name, _, value = record["data"].rstrip("\n").partition(": ")
        if not name.startswith("agi_arg_"):
            headers.append((name, value))
    raise ValueError("no complete header block in fastagi.jsonl")


def header_template(headers: list[tuple[str, str]], port: int) -> str:
    """The block with ``{n}`` (a sequence number) and ``{number}`` left to fill in."""
    script = "callshield/gate"
    values = {
        "agi_network_script": script,
        "agi_request": f"agi://127.0.0.1:{port}/{script}",
        "agi_channel": "PJSIP/agent2-{n:08x}",
        "agi_uniqueid": "1795847965.{n}",
        "agi_dnid": "{number}",
        "agi_extension": "{number}",
    }
    lines = [f"{name}: {values.get(name, value)}" for name, value in headers]
    lines += ["agi_arg_1: {number}", f"agi_arg_2: {COMPANY}", f"agi_arg_3: {CAMPAIGN}"]
    return "".join(f"{line}\n" for line in lines) + "\n"


def expected_commands(call: Call, until: str) -> frozenset[bytes]:
    verdict = ("BLOCK", "shielded", until) if call.blocked else ("ALLOW", "clean", "")
    names = ("SHIELD_RESULT", "SHIELD_REASON", "SHIELD_UNTIL")
    return frozenset(f'SET VARIABLE "{n}" "{v}"'.encode() for n, v in zip(names, verdict, strict=True))


class AgiCall(asyncio.Protocol):
    """One FastAGI session, Asterisk's side."""

    def __init__(self, load: Load, call: Call, expected: frozenset[bytes], header: bytes, started: float):
        self.load, self.call, self.expected, self.header, self.started = load, call, expected, header, started
        self.transport: asyncio.Transport | None = None
        self.commands: list[bytes] = []
        self.ended: float | None = None
        self._buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.header)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while (end := self._buf.find(b"\n")) >= 0:
            self.commands.append(self._buf[:end])
            self._buf = self._buf[end + 1 :]
            assert self.transport is not None
            self.transport.write(REPLY)

    def eof_received(self) -> bool:
        self.ended = time.perf_counter()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ended is None:
            self.load.failed()
            return
        right = len(self.commands) == len(self.expected) and set(self.commands) == self.expected
        self.load.finished(self.ended - self.started, right)


class AgiPeer:
    """Starts FastAGI sessions against the subjects' ports, K at a time."""

    def __init__(self, calls: Sequence[Call], until: str, *, captures: Path = CAPTURES) -> None:
        self.calls, self.until = calls, until
        self.headers = captured_header(captures)
        self.ports: dict[str, int] = {}
        self._templates: dict[str, str] = {}
        self._loads: dict[str, Load] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._seq = 0

    def add_subject(self, name: str, port: int) -> None:
        self.ports[name] = port
        self._templates[name] = header_template(self.headers, port)

    def load(self, subject: str, k: int) -> Load:
        return next_load(
            self._loads, subject, k, self.calls, lambda load, call: self._launch(subject, load, call)
        )

    def _launch(self, subject: str, load: Load, call: Call) -> None:
        self._seq += 1
        header = self._templates[subject].format(n=self._seq, number=call.number).encode()
        task = asyncio.create_task(self._connect(self.ports[subject], load, call, header))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, port: int, load: Load, call: Call, header: bytes) -> None:
        loop = asyncio.get_running_loop()
        expected = expected_commands(call, self.until)
        started = time.perf_counter()
        try:
            await loop.create_connection(
                lambda: AgiCall(load, call, expected, header, started), "127.0.0.1", port
            )
        except OSError:
            load.failed()
