"""Settings: one frozen :class:`Settings` built from a TOML file and the environment, then passed in.

Where the file is: ``--config PATH``, else ``$CALLSHIELD_CONFIG``, else
``/etc/callshield/callshield.toml``. A missing default file means "all defaults"; a missing file
that was named explicitly is an error. Unknown sections and keys are errors too: a typo in a
compliance setting must not pass silently.

Environment overrides (secrets need not live in the file): ``CALLSHIELD_STORE`` (store path or
URL), ``CALLSHIELD_KEY_FILE``, ``CALLSHIELD_KEY`` (the key itself, 64 hex digits).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from callshield.errors import ConfigError, InvalidInput
from callshield.models import Scope, Source
from callshield.numbers import NumberRules

DEFAULT_CONFIG = Path("/etc/callshield/callshield.toml")
DEFAULT_STORE = "/var/lib/callshield/shield.db"
DEFAULT_KEY_FILE = "/etc/callshield/shield.key"
#: The one-year rule.
DEFAULT_DAYS = 365
PERMANENT = "permanent"

Days = int | None  # None: permanent


@dataclass(frozen=True)
class ShieldPeriods:
    """How long a refusal shields a number: the longest of the default, its source's and its company's."""

    default_days: Days = DEFAULT_DAYS
    source_days: Mapping[Source, Days] = field(default_factory=dict)
    company_days: Mapping[str, Days] = field(default_factory=dict)

    def days_for(self, source: Source, scope: Scope) -> Days:
        candidates = [self.default_days, self.source_days.get(source, 0)]
        if scope.company is not None:
            candidates.append(self.company_days.get(scope.company, 0))
        if None in candidates:
            return None
        return max(d for d in candidates if d is not None)

    def expiry(self, created: datetime, source: Source, scope: Scope) -> datetime | None:
        days = self.days_for(source, scope)
        return None if days is None else created + timedelta(days=days)


@dataclass(frozen=True)
class Settings:
    """Everything callshield is configured with. Built by :func:`load_settings`, never global."""

    store: str = DEFAULT_STORE
    """SQLite file path (embedded default) or ``postgresql://`` URL."""
    key_file: Path = Path(DEFAULT_KEY_FILE)
    key_hex: str | None = field(default=None, repr=False)
    """The key from ``$CALLSHIELD_KEY``, if given (takes precedence over the file)."""
    numbers: NumberRules = field(default_factory=NumberRules)
    periods: ShieldPeriods = field(default_factory=ShieldPeriods)
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Raw sections read by the adapters' own settings (``ari``, ``agi``, ``gate``, ...)."""
    source: str = "defaults"
    """Where the settings came from, for messages."""


_KNOWN = {
    "store": {"path", "url", "key_file"},
    "numbers": {"default_region", "strip_prefixes", "exempt"},
    "shield": {"default_days", "source_days", "company_days"},
}
#: Sections owned by the adapters; validated by their own settings classes.
ADAPTER_SECTIONS = {"ari", "agi", "gate", "guard", "capture", "service", "servers"}


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (see module doc for which) and apply the environment."""
    env = os.environ if environ is None else environ
    explicit = path is not None or "CALLSHIELD_CONFIG" in env
    config_path = path or Path(env.get("CALLSHIELD_CONFIG", str(DEFAULT_CONFIG)))
    data = _read_toml(config_path, required=explicit)
    _check_keys(data, config_path)
    store = {k: _string(v, f"{config_path}: store.{k}") for k, v in data.get("store", {}).items()}
    settings = Settings(
        store=env.get("CALLSHIELD_STORE") or store.get("url") or store.get("path") or DEFAULT_STORE,
        key_file=Path(env.get("CALLSHIELD_KEY_FILE") or store.get("key_file") or DEFAULT_KEY_FILE),
        key_hex=env.get("CALLSHIELD_KEY") or None,
        numbers=_number_rules(data.get("numbers", {}), config_path),
        periods=_periods(data.get("shield", {}), config_path),
        sections={k: v for k, v in data.items() if k in ADAPTER_SECTIONS},
        source=str(config_path) if data else "defaults",
    )
    return settings


def _read_toml(path: Path, *, required: bool) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path} does not exist") from None
        return {}
    except OSError as e:
        raise ConfigError(f"config file {path} cannot be read: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None


def _check_keys(data: Mapping[str, Any], path: Path) -> None:
    for section, body in data.items():
        if section in ADAPTER_SECTIONS:
            continue
        if section not in _KNOWN:
            raise ConfigError(f"{path}: unknown section [{section}]")
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
        for key in body:
            if key not in _KNOWN[section]:
                raise ConfigError(f"{path}: unknown setting {section}.{key}")


def _number_rules(section: Mapping[str, Any], path: Path) -> NumberRules:
    try:
        return NumberRules(
            default_region=str(section.get("default_region", "CN")).upper(),
            strip_prefixes=tuple(_str_list(section.get("strip_prefixes", []), "numbers.strip_prefixes")),
            extra_exempt=frozenset(_str_list(section.get("exempt", []), "numbers.exempt")),
        )
    except InvalidInput as e:
        raise ConfigError(f"{path}: [numbers] {e}") from None


def _periods(section: Mapping[str, Any], path: Path) -> ShieldPeriods:
    where = f"{path}: shield"
    sources = _table(section.get("source_days", {}), f"{where}.source_days")
    companies = _table(section.get("company_days", {}), f"{where}.company_days")
    try:
        source_days = {Source(k): parse_days(v, f"{where}.source_days.{k}") for k, v in sources.items()}
    except ValueError:
        raise ConfigError(f"{where}.source_days: sources are {', '.join(Source)}") from None
    for company in companies:
        try:
            Scope(company)
        except InvalidInput as e:
            raise ConfigError(f"{where}.company_days: {e}") from None
    return ShieldPeriods(
        default_days=parse_days(section.get("default_days", DEFAULT_DAYS), f"{where}.default_days"),
        source_days=source_days,
        company_days={k: parse_days(v, f"{where}.company_days.{k}") for k, v in companies.items()},
    )


def parse_days(value: object, name: str) -> Days:
    """A shield period: a whole number of days >= 1, or ``"permanent"``."""
    if value == PERMANENT:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 36500:
        raise ConfigError(f'{name}: expected days (1-36500) or "permanent", got {value!r}')
    return value


def _string(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name}: expected a non-empty string, got {value!r}")
    return value


def _str_list(value: object, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{name}: expected a list of strings")
    return value


def _table(value: object, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: expected a table")
    return value
