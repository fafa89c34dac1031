"""Settings of the guard: which outbound legs it watches, and how strictly.

[guard]
enabled = false                     # true: a guard connection next to the gate on every [[ari.server]]
app = "callshield-guard"            # its own ARI application (never the gate's app name)
trunks = ["PJSIP/carrier"]          # TECH/endpoint: a dialled channel on these is an outbound leg
dial_patterns = ["*@carrier"]       # and/or: a dial string matching one of these (a glob, or
                                    # "re:REGEX", searched; a (?P<number>...) group names the number)
strip_prefixes = ["0", "#31#"]      # removed from the dialled number (the longest that fits) first
strict = false                      # true: hang up every outbound leg that did not pass the gate
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from callshield.config import Settings
from callshield.errors import ConfigError

DEFAULT_APP = "callshield-guard"
_KEYS = {"enabled", "app", "trunks", "dial_patterns", "strip_prefixes", "strict"}
_APP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TRUNK = re.compile(r"[A-Za-z0-9_]+/[^\s/,&]+")
_PREFIX = re.compile(r"[0-9*#+]{1,16}")
REGEX_MARK = "re:"


@dataclass(frozen=True)
class GuardSettings:
    """What the guard watches. Built by :func:`guard_settings`; disabled by default."""

    enabled: bool = False
    app: str = DEFAULT_APP
    """The guard's ARI application name (its websocket uses ``subscribeAll=true``)."""
    trunks: frozenset[str] = frozenset()
    """``TECH/endpoint`` names: a channel ``PJSIP/carrier-0000002a`` is on trunk ``PJSIP/carrier``."""
    dial_patterns: tuple[re.Pattern[str], ...] = ()
    """Searched in a ``Dial`` event's dial string (``5559999@carrier``); globs are anchored."""
    strip_prefixes: tuple[str, ...] = ()
    """Removed from the dialled number before it is read, longest first (one of them at most)."""
    strict: bool = False
    """Hang up every outbound leg the gate did not allow, whatever the store says (emergency and
    service codes excepted)."""


def guard_settings(settings: Settings) -> GuardSettings:
    """The ``[guard]`` section of ``settings``; ConfigError names the bad key."""
    table = _table(settings.sections.get("guard", {}))
    enabled, strict = _flag(table, "enabled"), _flag(table, "strict")
    app = table.get("app", DEFAULT_APP)
    if not isinstance(app, str) or not _APP_NAME.fullmatch(app):
        raise ConfigError("guard.app: use 1-64 letters, digits, '_', '.', '-'")
    if app in _gate_apps(settings):
        raise ConfigError(f"guard.app {app!r} is the gate's application name: the guard needs its own")
    trunks = _strings(table, "trunks", _TRUNK, "TECH/endpoint, e.g. PJSIP/carrier")
    prefixes = _strings(table, "strip_prefixes", _PREFIX, "1-16 of 0-9 * # +")
    patterns = tuple(_pattern(p, i) for i, p in enumerate(_strings(table, "dial_patterns", None, "")))
    if enabled and not trunks and not patterns:
        raise ConfigError("guard.enabled needs guard.trunks or guard.dial_patterns (which calls go out)")
    return GuardSettings(
        enabled=enabled,
        app=app,
        trunks=frozenset(trunks),
        dial_patterns=patterns,
        strip_prefixes=tuple(sorted(set(prefixes), key=len, reverse=True)),
        strict=strict,
    )


def compile_pattern(text: str) -> re.Pattern[str]:
    """A dial-string pattern: ``re:REGEX`` as written (searched), anything else a glob."""
    if text.startswith(REGEX_MARK):
        return re.compile(text[len(REGEX_MARK) :])
    return re.compile(r"\A" + fnmatch.translate(text))


def _pattern(text: str, index: int) -> re.Pattern[str]:
    try:
        return compile_pattern(text)
    except re.error as e:
        raise ConfigError(f"guard.dial_patterns[{index}]: not a valid regular expression ({e})") from None


def _table(value: object) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError("[guard] must be a table")
    for key in value:
        if key not in _KEYS:
            raise ConfigError(f"unknown setting guard.{key}")
    return value


def _flag(table: Mapping[str, Any], key: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"guard.{key}: expected true or false")
    return value


def _strings(table: Mapping[str, Any], key: str, shape: re.Pattern[str] | None, hint: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"guard.{key}: expected a list of non-empty strings")
    for item in value:
        if shape is not None and not shape.fullmatch(item):
            raise ConfigError(f"guard.{key}: {item[:40]!r} is not {hint}")
    return value


def _gate_apps(settings: Settings) -> set[str]:
    """The gate's application names of the ``[[ari.server]]`` tables (default ``callshield``)."""
    ari = settings.sections.get("ari", {})
    servers = ari.get("server", []) if isinstance(ari, dict) else []
    if not isinstance(servers, list):
        return set()
    return {str(s.get("app", "callshield")) for s in servers if isinstance(s, dict)}
