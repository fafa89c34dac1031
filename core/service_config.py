"""Settings of ``callshield serve``: the Asterisk servers, the FastAGI listener, the gate.

[[ari.server]]                      # one table per Asterisk; several are allowed
name = "pbx1"                       # for logs and metrics
url = "http://127.0.0.1:8088"       # Asterisk's http.conf address (https:// with TLS)
username = "callshield"             # ari.conf user
password_file = "/etc/callshield/ari-pbx1.secret"   # or password = "...",
                                    # or $CALLSHIELD_ARI_PASSWORD_PBX1 / $CALLSHIELD_ARI_PASSWORD
app = "callshield"                  # the Stasis application name used in the dialplan

[agi]
listen = "127.0.0.1:4573"           # FastAGI gate; "" disables it

[gate]
timeout_ms = 1000                   # a decision not made in time is BLOCK (reason error)
hangup_blocked = false              # true: the app hangs up blocked calls itself (cause 21)
audit_decisions = false             # true: one audit record per gate decision (costs a write)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from callshield.config import Settings
from callshield.errors import ConfigError


@dataclass(frozen=True)
class AriServer:
    name: str
    url: str
    """Base URL of Asterisk's HTTP server, without ``/ari``."""
    username: str
    password: str = field(repr=False)
    app: str = "callshield"


@dataclass(frozen=True)
class GateSettings:
    timeout: float = 1.0
    """Seconds a decision may take before the call is blocked with reason ``error``."""
    hangup_blocked: bool = False
    audit_decisions: bool = False


@dataclass(frozen=True)
class AgiSettings:
    host: str = "127.0.0.1"
    port: int = 4573
    enabled: bool = True


@dataclass(frozen=True)
class ServiceSettings:
    servers: tuple[AriServer, ...]
    agi: AgiSettings
    gate: GateSettings
    purge_interval: float = 3600.0
    """Seconds between automatic purges of expired entries."""


def service_settings(settings: Settings, environ: Mapping[str, str] | None = None) -> ServiceSettings:
    env = os.environ if environ is None else environ
    ari = _table(settings.sections.get("ari", {}), "ari", {"server"})
    servers = ari.get("server", [])
    if not isinstance(servers, list):
        raise ConfigError("[ari] server must be written [[ari.server]] (a list of tables)")
    parsed = tuple(_server(s, i, env) for i, s in enumerate(servers))
    if len({s.name for s in parsed}) != len(parsed):
        raise ConfigError("[[ari.server]] names must be unique")
    service = _table(settings.sections.get("service", {}), "service", {"purge_interval_s"})
    return ServiceSettings(
        servers=parsed,
        agi=_agi(_table(settings.sections.get("agi", {}), "agi", {"listen"})),
        gate=_gate(
            _table(
                settings.sections.get("gate", {}), "gate", {"timeout_ms", "hangup_blocked", "audit_decisions"}
            )
        ),
        purge_interval=float(
            _number(service.get("purge_interval_s", 3600), "service.purge_interval_s", 1, 86400)
        ),
    )


def _table(value: object, name: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    for key in value:
        if key not in keys:
            raise ConfigError(f"unknown setting {name}.{key}")
    return value


def _server(raw: object, index: int, env: Mapping[str, str]) -> AriServer:
    where = f"[[ari.server]] #{index + 1}"
    table = _table(raw, where, {"name", "url", "username", "password", "password_file", "app"})
    name = str(table.get("name", f"pbx{index + 1}"))
    url = str(table.get("url", "http://127.0.0.1:8088")).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where} url {url!r}: expected http://HOST:PORT or https://HOST:PORT")
    if "username" not in table:
        raise ConfigError(f"{where} needs username (the ari.conf user)")
    password = _password(table, name, env, where)
    return AriServer(name, url, str(table["username"]), password, str(table.get("app", "callshield")))


def _password(table: Mapping[str, Any], name: str, env: Mapping[str, str], where: str) -> str:
    from_env = env.get(f"CALLSHIELD_ARI_PASSWORD_{name.upper()}") or env.get("CALLSHIELD_ARI_PASSWORD")
    if from_env:
        return from_env
    if "password_file" in table:
        path = Path(str(table["password_file"]))
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(f"{where} password_file {path}: {e.strerror}") from None
    if "password" in table:
        return str(table["password"])
    raise ConfigError(f"{where} needs password, password_file or $CALLSHIELD_ARI_PASSWORD")


def _agi(table: Mapping[str, Any]) -> AgiSettings:
    listen = str(table.get("listen", "127.0.0.1:4573"))
    if not listen:
        return AgiSettings(enabled=False)
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"agi.listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:4573")
    return AgiSettings(host.strip("[]"), int(port))


def _gate(table: Mapping[str, Any]) -> GateSettings:
    timeout = _number(table.get("timeout_ms", 1000), "gate.timeout_ms", 10, 30000)
    flags = {k: table.get(k, False) for k in ("hangup_blocked", "audit_decisions")}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise ConfigError(f"gate.{key}: expected true or false")
    return GateSettings(timeout / 1000, flags["hangup_blocked"], flags["audit_decisions"])


def _number(value: object, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"{name}: expected a number from {low:g} to {high:g}, got {value!r}")
    return float(value)
