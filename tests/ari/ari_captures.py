"""Read the captured ARI traffic of ``../shared/asterisk/captures`` (real Asterisk 22.10.1)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CAPTURE_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "asterisk" / "captures"
ARI_CAPTURES = tuple(sorted(p.name for p in CAPTURE_DIR.glob("*.jsonl") if p.name != "fastagi.jsonl"))


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured websocket event frame."""

    file: str
    raw: str

    @property
    def data(self) -> dict[str, object]:
        """The decoded frame."""
        decoded: dict[str, object] = json.loads(self.raw)
        return decoded

    @property
    def type(self) -> str:
        """The event type."""
        return str(self.data["type"])


@cache
def records(name: str) -> tuple[dict[str, object], ...]:
    """Every record of capture file ``name``."""
    lines = (CAPTURE_DIR / name).read_text().splitlines()
    return tuple(json.loads(line) for line in lines if line.strip())


def frames(name: str) -> list[Frame]:
    """The event frames of capture file ``name``, in order."""
    return [Frame(name, str(r["raw"])) for r in records(name) if r["kind"] == "event"]


def all_frames() -> list[Frame]:
    """Every event frame of every ARI capture."""
    return [frame for name in ARI_CAPTURES for frame in frames(name)]


def nth(name: str, event_type: str, n: int = 0) -> Frame:
    """The ``n``-th frame of ``event_type`` in capture ``name``."""
    return [f for f in frames(name) if f.type == event_type][n]


def rest_responses(name: str, method: str, path_prefix: str) -> list[object]:
    """Decoded JSON answers of successful REST calls recorded in capture ``name``."""
    found: list[object] = []
    for record in records(name):
        if record["kind"] != "rest" or record["method"] != method:
            continue
        status = record["status"]
        if str(record["path"]).startswith(path_prefix) and isinstance(status, int) and status < 300:
            found.append(json.loads(str(record["response"])))
    return found


@cache
def key_orders() -> dict[str, set[tuple[str, ...]]]:
    """For each captured event type, the top-level key orders seen (the fake must match one)."""
    orders: dict[str, set[tuple[str, ...]]] = {}
    for frame in all_frames():
        orders.setdefault(frame.type, set()).add(tuple(frame.data))
    return orders


CHANNEL_KEYS = ("id", "name", "state", "protocol_id", "caller", "connected", "accountcode", "dialplan",
                "creationtime", "language")  # fmt: skip
BRIDGE_KEYS = ("id", "technology", "bridge_type", "bridge_class", "creator", "name", "channels",
               "creationtime", "video_mode")  # fmt: skip
UNCAPTURED_KEYS = {"ApplicationReplaced": ("type", "timestamp", "asterisk_id", "application")}


def check_shape(event: dict[str, object]) -> None:
    """Fail unless ``event`` has the key order of a captured event of its type (and sub-objects)."""
    event_type = str(event["type"])
    orders = key_orders().get(event_type) or {UNCAPTURED_KEYS[event_type]}
    assert tuple(event) in orders, f"{event_type} keys {tuple(event)} not as captured: {orders}"
    for key in ("channel", "caller", "peer", "replace_channel"):
        value = event.get(key)
        if isinstance(value, dict):
            assert tuple(value) == CHANNEL_KEYS, f"{event_type}.{key} keys {tuple(value)}"
    bridge = event.get("bridge")
    if isinstance(bridge, dict):
        assert tuple(bridge) == BRIDGE_KEYS, f"{event_type}.bridge keys {tuple(bridge)}"
