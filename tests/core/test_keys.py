"""core/keys.py: creating, loading and fingerprinting the deployment key."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from callshield.config import Settings
from callshield.errors import KeyFileError
from callshield.keys import fingerprint, generate_key_file, load_key

HEX = "0123456789abcdef" * 4


def test_generate_key_file_creates_a_private_hex_file(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "callshield" / "shield.key"
    key = generate_key_file(path)
    text = path.read_text(encoding="ascii")
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert text == key.hex() + "\n"
    assert len(text.strip()) == 64
    assert all(c in "0123456789abcdef" for c in text.strip())


def test_generate_key_file_is_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        path = tmp_path / "shield.key"
        generate_key_file(path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_generate_key_file_makes_a_new_key_each_time(tmp_path: Path) -> None:
    assert generate_key_file(tmp_path / "a.key") != generate_key_file(tmp_path / "b.key")


def test_generate_key_file_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "shield.key"
    key = generate_key_file(path)
    with pytest.raises(KeyFileError, match="already exists"):
        generate_key_file(path)
    assert path.read_text(encoding="ascii") == key.hex() + "\n"


def test_generate_key_file_refuses_any_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "shield.key"
    path.write_text("precious", encoding="ascii")
    with pytest.raises(KeyFileError, match="already exists"):
        generate_key_file(path)
    assert path.read_text(encoding="ascii") == "precious"


def test_generated_key_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "shield.key"
    key = generate_key_file(path)
    assert load_key(Settings(key_file=path)) == key


def _key_file(tmp_path: Path, content: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "shield.key"
    path.write_bytes(content)
    path.chmod(mode)
    return path


GOOD = [
    (HEX.encode() + b"\n", 0o600, "newline"),
    (HEX.encode(), 0o400, "read-only-no-newline"),
    (HEX.upper().encode(), 0o600, "upper-case"),
    (b"  " + HEX.encode() + b"\n\n", 0o700, "whitespace-owner-exec"),
]


@pytest.mark.parametrize(("content", "mode"), [c[:2] for c in GOOD], ids=[c[2] for c in GOOD])
def test_load_key_from_file(tmp_path: Path, content: bytes, mode: int) -> None:
    path = _key_file(tmp_path, content, mode)
    assert load_key(Settings(key_file=path)) == bytes.fromhex(HEX)


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "absent.key"


def _directory(tmp_path: Path) -> Path:
    return tmp_path


BAD_FILES: list[tuple[Callable[[Path], Path], str, str]] = [
    (_missing, "does not exist", "missing"),
    (_directory, "cannot be read", "directory"),
    (lambda p: _key_file(p, HEX.encode(), 0o640), "readable by others", "group-readable"),
    (lambda p: _key_file(p, HEX.encode(), 0o604), "readable by others", "world-readable"),
    (lambda p: _key_file(p, HEX.encode(), 0o620), "readable by others", "group-writable"),
    (lambda p: _key_file(p, HEX.encode(), 0o644), "readable by others", "default-umask-mode"),
    (lambda p: _key_file(p, HEX[:-2].encode()), "64 hex digits", "too-short"),
    (lambda p: _key_file(p, (HEX + "00").encode()), "64 hex digits", "too-long"),
    (lambda p: _key_file(p, b"zz" * 32), "64 hex digits", "not-hex"),
    (lambda p: _key_file(p, HEX[:-1].encode()), "64 hex digits", "odd-length"),
    (lambda p: _key_file(p, b""), "64 hex digits", "empty"),
    (lambda p: _key_file(p, b"\xff" * 64), "cannot be read", "not-ascii"),
]


@pytest.mark.parametrize(("make", "problem"), [c[:2] for c in BAD_FILES], ids=[c[2] for c in BAD_FILES])
def test_load_key_errors(tmp_path: Path, make: Callable[[Path], Path], problem: str) -> None:
    path = make(tmp_path)
    with pytest.raises(KeyFileError, match=problem) as info:
        load_key(Settings(key_file=path))
    assert str(path) in str(info.value)
    assert HEX[:16] not in str(info.value)


def test_environment_key_beats_the_file(tmp_path: Path) -> None:
    path = _key_file(tmp_path, HEX.encode())
    assert load_key(Settings(key_file=path, key_hex="ab" * 32)) == bytes.fromhex("ab" * 32)


def test_environment_key_needs_no_file(tmp_path: Path) -> None:
    assert load_key(Settings(key_file=tmp_path / "absent", key_hex=HEX)) == bytes.fromhex(HEX)


@pytest.mark.parametrize(
    "value",
    [HEX[:-2], HEX + "ab", "g" * 64, "", "0x" + HEX[2:]],
    ids=["short", "long", "not-hex", "empty", "0x-prefix"],
)
def test_bad_environment_key(tmp_path: Path, value: str) -> None:
    with pytest.raises(KeyFileError, match="CALLSHIELD_KEY: expected 64 hex digits") as info:
        load_key(Settings(key_file=tmp_path / "absent", key_hex=value))
    if value:
        assert value not in str(info.value)


def test_fingerprint_known_answer() -> None:
    assert fingerprint(bytes(range(32))) == "bae7d5114974e8eb"


def test_fingerprint_is_stable_short_and_key_dependent() -> None:
    key = bytes.fromhex(HEX)
    first = fingerprint(key)
    assert fingerprint(key) == first
    assert len(first) == 16
    assert all(c in "0123456789abcdef" for c in first)
    assert fingerprint(bytes(32)) != first
    assert HEX[:16] not in first
