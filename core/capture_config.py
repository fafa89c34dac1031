"""Settings of the refusal capture (``[capture]`` in callshield.toml).

[capture]
enabled = true
code = "*9"                     # the agent's keypad code (keep features.conf the same)
inter_digit_timeout_ms = 2000
tone = "tone:425/300"           # whispered to the agent once the refusal is stored
journal = "/var/lib/callshield/refusals.journal"   # refusals kept here while the store is down
optout_digit = "9"
optout_prompt = ["sound:vm-press", "sound:digits/9"]          # "press nine" (core sounds)
optout_confirmation = ["sound:auth-thankyou", "sound:vm-goodbye"]
optout_timeout_ms = 8000
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callshield.config import Settings
from callshield.errors import ConfigError, InvalidInput
from callshield.keypad import KeypadCode

DEFAULT_JOURNAL = "/var/lib/callshield/refusals.journal"
_KEYS = {
    "enabled", "code", "inter_digit_timeout_ms", "tone", "journal", "optout_digit", "optout_prompt",
    "optout_confirmation", "optout_timeout_ms",
}  # fmt: skip


@dataclass(frozen=True)
class OptOutSettings:
    prompt: tuple[str, ...] = ("sound:vm-press", "sound:digits/9")
    """Played at once: "press nine" (Asterisk core sounds); record your own wording."""
    confirmation: tuple[str, ...] = ("sound:auth-thankyou", "sound:vm-goodbye")
    digit: str = "9"
    timeout: float = 8.0
    """Seconds from the prompt's start to wait for the digit."""
    confirmation_seconds: float = 2.0
    """How long the confirmation is given before the call is ended."""


@dataclass(frozen=True)
class CaptureSettings:
    enabled: bool = True
    keypad: KeypadCode = field(default_factory=KeypadCode)
    tone: str = "tone:425/300"
    journal: Path = Path(DEFAULT_JOURNAL)
    optout: OptOutSettings = field(default_factory=OptOutSettings)


def capture_settings(settings: Settings) -> CaptureSettings:
    table: Mapping[str, Any] = settings.sections.get("capture", {})
    unknown = set(table) - _KEYS
    if unknown:
        raise ConfigError(f"unknown setting capture.{sorted(unknown)[0]}")
    try:
        keypad = KeypadCode(str(table.get("code", "*9")), _seconds(table, "inter_digit_timeout_ms", 2000))
        digit = str(table.get("optout_digit", "9"))
        if len(digit) != 1 or digit not in "0123456789*#":
            raise InvalidInput("capture.optout_digit must be one key: 0-9, * or #")
    except InvalidInput as e:
        raise ConfigError(str(e)) from None
    defaults = OptOutSettings()
    optout = OptOutSettings(
        prompt=_sounds(table, "optout_prompt", defaults.prompt),
        confirmation=_sounds(table, "optout_confirmation", defaults.confirmation),
        digit=digit,
        timeout=_seconds(table, "optout_timeout_ms", 8000),
    )
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError("capture.enabled: expected true or false")
    return CaptureSettings(
        enabled,
        keypad,
        str(table.get("tone", "tone:425/300")),
        Path(str(table.get("journal", DEFAULT_JOURNAL))),
        optout,
    )


def _seconds(table: Mapping[str, Any], key: str, default: int) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 60000:
        raise ConfigError(f"capture.{key}: expected milliseconds from 100 to 60000, got {value!r}")
    return value / 1000


def _sounds(table: Mapping[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = table.get(key, list(default))
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and ":" in v for v in value):
        raise ConfigError(f'capture.{key}: expected a list of media URIs such as "sound:vm-press"')
    return tuple(value)
