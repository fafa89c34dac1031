"""A minimal ARI-like peer for the gate benchmark: an Asterisk that only parks calls in Stasis.

Raw asyncio protocols (HTTP/1.1 keep-alive, RFC 6455 server framing), so that the peer costs little
next to the subjects. It serves, on 127.0.0.1:

- ``GET /ari/events?app=NAME`` (websocket upgrade): registers NAME; pings are answered;
- ``GET /ari/applications/NAME``: the Application (callshield lists parked channels on connect);
- ``POST /ari/channels/ID/variable``: 204, and a ``ChannelVarset`` event, as Asterisk does;
- ``POST /ari/channels/ID/continue``: a ``StasisEnd`` event, then 204 (Asterisk's order): the
  call is done; its latency is from writing its ``StasisStart`` to reading this request;
- anything else: 404, an unknown channel: 404 ``Channel not found``.

Events are the first ``StasisStart`` / ``ChannelVarset`` / ``StasisEnd`` of
``captures/pjsip_flow.jsonl`` with the channel id, name, number and arguments substituted
(``Stasis(APP,gate,NUMBER,acme,spring)``). A verdict is *right* when the label is
``block-shielded`` after ``SHIELD_UNTIL`` was set to the store's expiry (shielded numbers), or
``allow-clean`` with no variable (the others).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, unquote

from gate_run import Load, next_load
from gate_workload import CAMPAIGN, COMPANY, Call

CAPTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "asterisk" / "captures"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA
TOKENS = {"id": "XXCIDXX", "name": "XXNAMEXX", "number": "XXNUMXX", "app": "XXAPPXX"}


def captured_templates(captures: Path) -> dict[str, str]:
    """The first StasisStart, ChannelVarset and StasisEnd of pjsip_flow, with tokens to substitute."""
    found: dict[str, str] = {}
    for line in (captures / "pjsip_flow.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("kind") != "event":
            continue
        event = json.loads(record["raw"])
        if event["type"] in ("StasisStart", "ChannelVarset", "StasisEnd") and event["type"] not in found:
            channel = event["channel"]
            channel.update(id=TOKENS["id"], name=TOKENS["name"])
            channel["dialplan"].update(
                exten=TOKENS["number"],
                app_data=f"{TOKENS['app']},gate,{TOKENS['number']},{COMPANY},{CAMPAIGN}",
            )
            event["application"] = TOKENS["app"]
            if "args" in event:
                event["args"] = ["gate", TOKENS["number"], COMPANY, CAMPAIGN]
            if "variable" in event:
                event.update(variable="SHIELD_UNTIL", value="XXVALUEXX")
            found[event["type"]] = json.dumps(event, separators=(",", ":"))
    return found


def ws_frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big") + payload


def http_response(status: str, body: bytes = b"", date: str = "") -> bytes:
    kind = b"Content-Type: application/json\r\n" if body else b""
    head = (
        f"HTTP/1.1 {status}\r\nServer: Asterisk/22.10.1\r\nDate: {date}\r\nConnection: Keep-Alive\r\n"
        f"Cache-Control: no-cache, no-store\r\nContent-Length: {len(body)}\r\n"
    ).encode()
    return head + kind + b"\r\n" + body


@dataclass(slots=True)
class Pending:
    load: Load
    call: Call
    app: str
    channel: str
    sent: float
    until_set: bool = False


class Connection(asyncio.Protocol):
    """One TCP connection: HTTP requests until it is upgraded to the events websocket."""

    def __init__(self, peer: AriPeer) -> None:
        self.peer = peer
        self.app: str | None = None
        self.transport: asyncio.Transport | None = None
        self._buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.peer.connections.discard(self)
        if self.app is not None and self.peer.sockets.get(self.app) is self:
            del self.peer.sockets[self.app]

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while self.app is None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buf[:end]
            marker = head.lower().find(b"content-length:")
            length = int(head[marker + 15 :].split(b"\r\n", 1)[0]) if marker >= 0 else 0
            if len(self._buf) < end + 4 + length:
                return
            self._buf = self._buf[end + 4 + length :]
            self.peer.handle(self, head)
        self._ws_frames()

    def _ws_frames(self) -> None:
        """Client frames (always masked): answer pings and close; ignore the rest."""
        while len(self._buf) >= 2:
            opcode, n, at = self._buf[0] & 0x0F, self._buf[1] & 0x7F, 2
            if n >= 126:
                size = 2 if n == 126 else 8
                if len(self._buf) < at + size:
                    return
                n, at = int.from_bytes(self._buf[at : at + size], "big"), at + size
            if len(self._buf) < at + 4 + n:
                return
            mask, payload = self._buf[at : at + 4], self._buf[at + 4 : at + 4 + n]
            self._buf = self._buf[at + 4 + n :]
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == OP_PING:
                self.write(ws_frame(OP_PONG, data))
            elif opcode == OP_CLOSE and self.transport is not None:
                self.write(ws_frame(OP_CLOSE, data[:2]))
                self.transport.close()


class AriPeer:
    """The fake, and the load it puts on each connected application."""

    def __init__(self, calls: Sequence[Call], until: str, *, events: bool = True, captures: Path = CAPTURES):
        self.calls, self.until, self.events = calls, until, events
        self.templates = captured_templates(captures)
        self.sockets: dict[str, Connection] = {}
        self.connections: set[Connection] = set()
        self._pending: dict[str, Pending] = {}
        self._loads: dict[str, Load] = {}
        self._seq = 0
        self._base = int(time.time())
        self._date = formatdate(usegmt=True)
        self._no_content = http_response("204 No Content", date=self._date)
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Connection(self), "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()

    async def wait_app(self, app: str, within: float = 30.0) -> None:
        deadline = time.perf_counter() + within
        while app not in self.sockets:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"application {app} never connected its websocket")
            await asyncio.sleep(0.01)

    def load(self, subject: str, k: int) -> Load:
        return next_load(
            self._loads, subject, k, self.calls, lambda load, call: self._launch(subject, load, call)
        )

    def _render(self, kind: str, app: str, pending: Pending, value: str = "") -> bytes:
        seq = pending.channel.rsplit(".", 1)[1]
        text = (
            self.templates[kind]
            .replace(TOKENS["id"], pending.channel)
            .replace(TOKENS["name"], f"PJSIP/agent1-{int(seq):08x}")
            .replace(TOKENS["number"], pending.call.number)
            .replace(TOKENS["app"], app)
            .replace("XXVALUEXX", value)
        )
        return ws_frame(OP_TEXT, text.encode())

    def _launch(self, app: str, load: Load, call: Call) -> None:
        conn = self.sockets.get(app)
        if conn is None:
            load.active = False
            load.failed()
            return
        self._seq += 1
        pending = Pending(load, call, app, f"{self._base}.{self._seq}", 0.0)
        self._pending[pending.channel] = pending
        frame = self._render("StasisStart", app, pending)
        pending.sent = time.perf_counter()
        conn.write(frame)

    def handle(self, conn: Connection, head: bytes) -> None:
        """One request; ``head`` is the request line and headers."""
        arrived = time.perf_counter()
        line, _, headers = head.partition(b"\r\n")
        method, target, _ = line.decode("latin-1").split(" ", 2)
        path, _, query = target.partition("?")
        parts = path.split("/")
        if method == "POST" and len(parts) == 5 and parts[1:3] == ["ari", "channels"]:
            self._channel(conn, unquote(parts[3]), parts[4], dict(parse_qsl(query)), arrived)
        elif method == "GET" and path == "/ari/events":
            self._upgrade(conn, headers, parse_qs(query).get("app", [""])[0])
        elif method == "GET" and len(parts) == 4 and parts[1:3] == ["ari", "applications"]:
            conn.write(self._application(unquote(parts[3])))
        else:
            conn.write(self._not_found("Resource not found"))

    def _channel(
        self, conn: Connection, channel: str, action: str, params: dict[str, str], at: float
    ) -> None:
        pending = self._pending.get(channel)
        if pending is None or action not in ("variable", "continue"):
            conn.write(self._not_found("Channel not found"))
            return
        ws = self.sockets.get(pending.app)
        if action == "variable":
            value = params.get("value", "")
            pending.until_set = params.get("variable") == "SHIELD_UNTIL" and value == self.until
            if self.events and ws is not None:
                ws.write(self._render("ChannelVarset", pending.app, pending, value))
            conn.write(self._no_content)
            return
        del self._pending[channel]
        expected = "block-shielded" if pending.call.blocked else "allow-clean"
        right = params.get("label") == expected and pending.until_set == pending.call.blocked
        if self.events and ws is not None:
            ws.write(self._render("StasisEnd", pending.app, pending))
        conn.write(self._no_content)
        pending.load.finished(at - pending.sent, right)  # starts the next call

    def _upgrade(self, conn: Connection, headers: bytes, app: str) -> None:
        fields = dict(h.split(b":", 1) for h in headers.split(b"\r\n") if b":" in h)
        lowered = {k.strip().lower(): v.strip() for k, v in fields.items()}
        key = lowered.get(b"sec-websocket-key", b"")
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        conn.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        conn.app = app
        self.sockets[app] = conn

    def _application(self, app: str) -> bytes:
        if app not in self.sockets:
            return self._not_found("Application not found")
        parked = [c for c, p in self._pending.items() if p.app == app]
        body = {"name": app, "channel_ids": parked, "bridge_ids": [], "endpoint_ids": [], "device_names": []}
        body |= {"events_allowed": [], "events_disallowed": []}
        return http_response("200 OK", json.dumps(body).encode(), self._date)

    def _not_found(self, message: str) -> bytes:
        return http_response("404 Not Found", json.dumps({"message": message}).encode(), self._date)
