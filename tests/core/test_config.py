"""core/config.py: Settings from TOML and an explicit environment; shield periods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from callshield import config
from callshield.config import Settings, ShieldPeriods, load_settings
from callshield.errors import ConfigError
from callshield.models import GLOBAL, Scope, Source
from callshield.numbers import NumberRules


@pytest.fixture(autouse=True)
def no_default_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the default config path at a file that does not exist, whatever the machine has."""
    absent = tmp_path / "etc" / "callshield.toml"
    monkeypatch.setattr(config, "DEFAULT_CONFIG", absent)
    return absent


def write(tmp_path: Path, text: str, name: str = "callshield.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_when_default_file_is_missing() -> None:
    settings = load_settings(None, environ={})
    assert settings == Settings()
    assert settings.store == "/var/lib/callshield/shield.db"
    assert settings.key_file == Path("/etc/callshield/shield.key")
    assert settings.key_hex is None
    assert settings.numbers == NumberRules("CN")
    assert settings.periods.default_days == 365
    assert settings.source == "defaults"


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_settings(missing, environ={})
    assert str(missing) in str(info.value)


def test_config_from_environment_missing_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "env.toml"
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(None, environ={"CALLSHIELD_CONFIG": str(missing)})


def test_config_from_environment_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, '[store]\npath = "/srv/env.db"\n')
    settings = load_settings(None, environ={"CALLSHIELD_CONFIG": str(path)})
    assert (settings.store, settings.source) == ("/srv/env.db", str(path))


def test_explicit_path_beats_environment(tmp_path: Path) -> None:
    chosen = write(tmp_path, '[store]\npath = "/srv/chosen.db"\n', "chosen.toml")
    other = write(tmp_path, '[store]\npath = "/srv/other.db"\n', "other.toml")
    settings = load_settings(chosen, environ={"CALLSHIELD_CONFIG": str(other)})
    assert settings.store == "/srv/chosen.db"


def test_full_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[store]
path = "/srv/shield.db"
key_file = "/srv/shield.key"

[numbers]
default_region = "us"
strip_prefixes = ["9", "1010321"]
exempt = ["611"]

[shield]
default_days = 400
source_days = { customer_optout = "permanent", agent_flag = 30 }
company_days = { acme = 1000 }

[ari]
url = "http://127.0.0.1:8088"
""",
    )
    settings = load_settings(path, environ={})
    assert settings.store == "/srv/shield.db"
    assert settings.key_file == Path("/srv/shield.key")
    assert settings.numbers == NumberRules("US", ("1010321", "9"), frozenset({"611"}))
    assert settings.periods == ShieldPeriods(
        400, {Source.CUSTOMER_OPTOUT: None, Source.AGENT_FLAG: 30}, {"acme": 1000}
    )
    assert settings.sections == {"ari": {"url": "http://127.0.0.1:8088"}}
    assert settings.source == str(path)


def test_url_beats_path(tmp_path: Path) -> None:
    path = write(tmp_path, '[store]\npath = "/srv/a.db"\nurl = "postgresql://db/shield"\n')
    assert load_settings(path, environ={}).store == "postgresql://db/shield"


@pytest.mark.parametrize(
    "content",
    [b"[store\npath = 1\n", b'[store]\npath = "unterminated\n', b"key = = 1\n", b"[store]\npath = '\xff'\n"],
    ids=["unclosed-table", "unterminated-string", "double-equals", "not-utf8"],
)
def test_invalid_toml_names_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_settings(path, environ={})
    assert str(path) in str(info.value)


def test_unreadable_config_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(tmp_path, environ={})


UNKNOWN = [
    ("[stor]\npath = 'x'\n", "[stor]", "misspelt-section"),
    ("[store]\npth = 'x'\n", "store.pth", "misspelt-store-key"),
    ("[numbers]\nregion = 'US'\n", "numbers.region", "misspelt-numbers-key"),
    ("[shield]\ndays = 30\n", "shield.days", "misspelt-shield-key"),
    ("default_days = 30\n", "[default_days]", "top-level-key"),
    ("store = 'x'\n", "[store] must be a table", "known-section-not-a-table"),
]


@pytest.mark.parametrize(("text", "named"), [c[:2] for c in UNKNOWN], ids=[c[2] for c in UNKNOWN])
def test_unknown_sections_and_keys_are_named(tmp_path: Path, text: str, named: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert named in str(info.value)
    assert str(path) in str(info.value)


ENV = [
    ({"CALLSHIELD_STORE": "/env/shield.db"}, "store", "/env/shield.db", "store"),
    ({"CALLSHIELD_STORE": "postgresql://h/db"}, "store", "postgresql://h/db", "store-url"),
    ({"CALLSHIELD_STORE": ""}, "store", "/file/shield.db", "empty-store-ignored"),
    ({"CALLSHIELD_KEY_FILE": "/env/key"}, "key_file", Path("/env/key"), "key-file"),
    ({"CALLSHIELD_KEY_FILE": ""}, "key_file", Path("/file/key"), "empty-key-file-ignored"),
    ({"CALLSHIELD_KEY": "ab" * 32}, "key_hex", "ab" * 32, "key"),
    ({"CALLSHIELD_KEY": ""}, "key_hex", None, "empty-key-ignored"),
    ({}, "key_hex", None, "no-key"),
]


@pytest.mark.parametrize(("environ", "attribute", "expected"), [c[:3] for c in ENV], ids=[c[3] for c in ENV])
def test_environment_overrides_the_file(
    tmp_path: Path, environ: dict[str, str], attribute: str, expected: object
) -> None:
    path = write(tmp_path, '[store]\npath = "/file/shield.db"\nkey_file = "/file/key"\n')
    assert getattr(load_settings(path, environ=environ), attribute) == expected


def test_environment_overrides_without_a_file() -> None:
    environ = {"CALLSHIELD_STORE": "/env/s.db", "CALLSHIELD_KEY_FILE": "/env/k", "CALLSHIELD_KEY": "cd" * 32}
    settings = load_settings(None, environ=environ)
    assert (settings.store, settings.key_file, settings.key_hex) == ("/env/s.db", Path("/env/k"), "cd" * 32)
    assert "cd" * 32 not in repr(settings)


BAD_DAYS = [
    ("0", "zero"),
    ("-1", "negative"),
    ('"x"', "text"),
    ("true", "boolean"),
    ("1.5", "float"),
    ("36501", "over-a-century"),
    ('"Permanent"', "capitalised-permanent"),
]
WHERE = [
    ("[shield]\ndefault_days = {}\n", "shield.default_days"),
    ("[shield]\nsource_days = {{ customer_optout = {} }}\n", "shield.source_days.customer_optout"),
    ("[shield]\ncompany_days = {{ acme = {} }}\n", "shield.company_days.acme"),
]


@pytest.mark.parametrize(("template", "name"), WHERE, ids=["default", "source", "company"])
@pytest.mark.parametrize("value", [c[0] for c in BAD_DAYS], ids=[c[1] for c in BAD_DAYS])
def test_invalid_days_are_refused(tmp_path: Path, template: str, name: str, value: str) -> None:
    path = write(tmp_path, template.format(value))
    with pytest.raises(ConfigError, match="expected days") as info:
        load_settings(path, environ={})
    assert name in str(info.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[shield]\nsource_days = { telepathy = 30 }\n", "sources are"),
        ("[shield]\nsource_days = 30\n", "expected a table"),
        ("[shield]\ncompany_days = [1]\n", "expected a table"),
        ("[numbers]\nstrip_prefixes = '9'\n", "list of strings"),
        ("[numbers]\nexempt = [110]\n", "list of strings"),
        ("[numbers]\nstrip_prefixes = ['9x']\n", "dial-out prefix"),
        ("[numbers]\ndefault_region = 'XX'\n", "unknown default region"),
    ],
    ids=[
        "unknown-source",
        "source-days-not-table",
        "company-days-list",
        "prefixes-string",
        "exempt-ints",
        "prefix-not-digits",
        "unknown-region",
    ],
)
def test_invalid_values_are_config_errors(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings(write(tmp_path, text), environ={})


@pytest.mark.parametrize(
    "text",
    ["key_file = 5", "key_file = true", "path = 5", 'url = ["x"]'],
    ids=["key-file-int", "key-file-bool", "path-int", "url-list"],
)
def test_store_values_of_the_wrong_type_are_config_errors(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        load_settings(write(tmp_path, f"[store]\n{text}\n"), environ={})


ACME = Scope("acme")
PERIODS = ShieldPeriods(
    default_days=365,
    source_days={Source.AGENT_FLAG: 30, Source.IMPORT: 730, Source.CUSTOMER_OPTOUT: None},
    company_days={"acme": 1000, "short": 10},
)
DAYS_FOR = [
    (Source.ADMIN, GLOBAL, 365, "default"),
    (Source.AGENT_FLAG, GLOBAL, 365, "shorter-source-does-not-shorten"),
    (Source.IMPORT, GLOBAL, 730, "longer-source"),
    (Source.CUSTOMER_OPTOUT, GLOBAL, None, "permanent-source"),
    (Source.ADMIN, ACME, 1000, "longer-company"),
    (Source.ADMIN, Scope("acme", "summer"), 1000, "company-of-campaign"),
    (Source.IMPORT, Scope("short"), 730, "shorter-company-does-not-shorten"),
    (Source.CUSTOMER_OPTOUT, ACME, None, "permanent-beats-company"),
    (Source.ADMIN, Scope("globex"), 365, "company-without-setting"),
]


@pytest.mark.parametrize(("source", "scope", "days"), [c[:3] for c in DAYS_FOR], ids=[c[3] for c in DAYS_FOR])
def test_days_for_is_the_longest_period(source: Source, scope: Scope, days: int | None) -> None:
    assert PERIODS.days_for(source, scope) == days


def test_permanent_company_and_default() -> None:
    assert ShieldPeriods(company_days={"acme": None}).days_for(Source.ADMIN, ACME) is None
    assert ShieldPeriods(company_days={"acme": None}).days_for(Source.ADMIN, GLOBAL) == 365
    assert ShieldPeriods(default_days=None).days_for(Source.ADMIN, GLOBAL) is None


CREATED = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("source", "scope", "expiry"),
    [
        (Source.ADMIN, GLOBAL, CREATED + timedelta(days=365)),
        (Source.ADMIN, ACME, CREATED + timedelta(days=1000)),
        (Source.CUSTOMER_OPTOUT, GLOBAL, None),
    ],
    ids=["default", "company", "permanent"],
)
def test_expiry(source: Source, scope: Scope, expiry: datetime | None) -> None:
    assert PERIODS.expiry(CREATED, source, scope) == expiry


def test_permanent_days_from_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[shield]\ndefault_days = "permanent"\n')
    periods = load_settings(path, environ={}).periods
    assert periods.expiry(CREATED, Source.ADMIN, GLOBAL) is None
