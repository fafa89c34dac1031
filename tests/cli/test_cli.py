"""The ``callshield`` command as an operator runs it: a real process, real files, exit statuses."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(tmp_path: Path) -> Run:
    config = tmp_path / "callshield.toml"
    config.write_text(
        f'[store]\npath = "{tmp_path}/shield.db"\nkey_file = "{tmp_path}/shield.key"\n'
        '[numbers]\nstrip_prefixes = ["9"]\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSHIELD_")}
    env |= {"CALLSHIELD_CONFIG": str(config), "CALLSHIELD_ACTOR": "tester"}

    def run(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "callshield", *args],
            capture_output=True,
            text=True,
            env=env | (extra_env or {}),
            timeout=60,
            check=False,
        )

    return run


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_init_creates_a_private_key_and_the_store(cli: Run, tmp_path: Path) -> None:
    result = cli("init")
    assert result.returncode == 0, result.stderr
    mode = stat.S_IMODE((tmp_path / "shield.key").stat().st_mode)
    assert mode == 0o600
    assert (tmp_path / "shield.db").exists()
    again = cli("init")
    assert again.returncode == 0
    assert "created key" not in again.stdout


def test_check_exit_status_is_0_allowed_1_blocked_2_error(cli: Run) -> None:
    cli("init")
    added = cli("add", "138 0013 8000", "--reason", "said no on the phone")
    assert added.returncode == 0, added.stderr
    assert "shielded +86138****8000 (global) until" in added.stdout
    blocked = cli("check", "913800138000")
    assert blocked.returncode == 1
    assert blocked.stdout.startswith("BLOCKED +86138****8000: shielded")
    allowed = cli("check", "13900139000")
    assert (allowed.returncode, allowed.stdout.split()[0]) == (0, "ALLOWED")
    assert cli("check", "110").stdout.startswith("ALLOWED 110: exempt")
    bad = cli("check", "13800")
    assert bad.returncode == 2
    assert "error" in bad.stderr


@pytest.mark.parametrize("args", [("check", "1380013800099"), ("add", "x13800138000"), ("add", "110")])
def test_bad_numbers_exit_2_with_the_number_masked(cli: Run, args: tuple[str, ...]) -> None:
    cli("init")
    result = cli(*args)
    assert result.returncode == 2
    assert "callshield: error:" in result.stderr
    assert "13800138000" not in result.stderr + result.stdout


def test_a_store_without_its_key_is_never_given_a_new_key(cli: Run, tmp_path: Path) -> None:
    cli("init")
    cli("add", "13800138000")
    (tmp_path / "shield.key").unlink()
    before = digest(tmp_path / "shield.db")
    refused = cli("init")
    assert refused.returncode == 2
    assert "key file" in refused.stderr
    assert "missing" in refused.stderr
    assert not (tmp_path / "shield.key").exists()
    assert cli("check", "13800138000").returncode == 2
    assert digest(tmp_path / "shield.db") == before


def test_a_wrong_key_is_refused(cli: Run, tmp_path: Path) -> None:
    cli("init")
    result = cli("check", "13800138000", extra_env={"CALLSHIELD_KEY": "ab" * 32})
    assert result.returncode == 2
    assert "does not match" in result.stderr


def test_a_corrupt_store_is_refused_and_left_as_it_is(cli: Run, tmp_path: Path) -> None:
    cli("init")
    db = tmp_path / "shield.db"
    db.write_bytes(b"garbage" * 1000)
    for args in (("check", "13800138000"), ("add", "13800138000"), ("stats",)):
        result = cli(*args)
        assert result.returncode == 2
        assert "damaged or not a SQLite database" in result.stderr
    assert db.read_bytes() == b"garbage" * 1000


def test_config_errors_exit_2_and_name_the_problem(cli: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[shield]\ndefault_dayz = 365\n")
    result = cli("--config", str(bad), "stats")
    assert result.returncode == 2
    assert "shield.default_dayz" in result.stderr
    missing = cli("--config", str(tmp_path / "nope.toml"), "stats")
    assert (missing.returncode, "does not exist" in missing.stderr) == (2, True)


def test_remove_needs_a_reason_and_is_audited(cli: Run) -> None:
    cli("init")
    cli("add", "13800138000")
    assert cli("remove", "13800138000").returncode == 2
    removed = cli("remove", "13800138000", "--reason", "customer re-consented in writing")
    assert removed.returncode == 0
    assert cli("check", "13800138000").returncode == 0
    log = cli("audit", "--number", "13800138000").stdout
    assert [line.split()[3] for line in log.splitlines()] == ["add", "remove", "check"]
    assert "re-consented" in log


def test_import_export_and_audit_verify(cli: Run, tmp_path: Path) -> None:
    cli("init")
    leads = tmp_path / "leads.txt"
    leads.write_bytes(b"13800138000\n+8613900139000\nbad\xff\n")
    first = cli("import", str(leads))
    assert first.returncode == 0, first.stderr
    assert "3 lines, 2 added, 0 already present, 1 invalid" in first.stdout
    assert "rejected line 3: not UTF-8" in first.stderr
    assert "0 added, 2 already present" in cli("import", str(leads)).stdout
    masked = cli("export").stdout
    assert masked.splitlines()[0] == "masked,scope,source,reason,created_at,expires_at"
    assert "+86138****8000" in masked
    hashes = cli("export", "--hashes").stdout
    assert hashes.startswith("# callshield-export hashes v1 key=")
    for out in (masked, hashes):
        assert "13800138000" not in out
        assert "13900139000" not in out
    verify = cli("audit", "verify")
    assert (verify.returncode, verify.stdout.startswith("audit chain OK")) == (0, True)


def test_audit_verify_exits_1_on_a_tampered_log(cli: Run, tmp_path: Path) -> None:
    cli("init")
    cli("add", "13800138000")
    with sqlite3.connect(tmp_path / "shield.db") as db:
        db.execute("DROP TRIGGER audit_no_update")
        db.execute("UPDATE audit SET actor = 'someone else' WHERE seq = 2")
    result = cli("audit", "verify")
    assert result.returncode == 1
    assert "record 2 was edited" in result.stdout


def test_a_killed_import_leaves_a_consistent_store_and_a_rerun_completes_it(cli: Run, tmp_path: Path) -> None:
    cli("init")
    leads = tmp_path / "big.txt"
    total = 120_000
    leads.write_text("".join(f"+86138{i:08d}\n" for i in range(total)))
    db = tmp_path / "shield.db"
    config = os.environ.copy()
    proc = subprocess.Popen(
        [sys.executable, "-m", "callshield", "import", str(leads), "--workers", "0", "--batch-lines", "1000"],
        env=config | {"CALLSHIELD_CONFIG": str(tmp_path / "callshield.toml")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    count = 0
    deadline = time.monotonic() + 60
    while count < 3000 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
        with sqlite3.connect(db, timeout=5) as conn:
            count = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        partial = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
    assert 0 < partial < total
    assert partial % 1000 == 0
    rerun = cli("import", str(leads), "--workers", "0")
    assert f"{total - partial} added, {partial} already present" in rerun.stdout
    assert cli("audit", "verify").returncode == 0


@pytest.mark.parametrize(
    "command",
    [
        "init",
        "check",
        "add",
        "remove",
        "list",
        "import",
        "export",
        "purge",
        "stats",
        "audit",
        "prefix",
        "journal",
    ],
)
def test_every_command_has_help(cli: Run, command: str) -> None:
    result = cli(command, "--help")
    assert result.returncode == 0
    assert "Usage: callshield" in result.stdout
