"""Two PBXs, one list: two ``callshield serve`` processes (FastAGI gate) on one PostgreSQL store, and
the ``callshield`` command configured with ``store.url``. A refusal marked by an operator is in
the very next gate decision of both; the password never shows."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from callshield.store import describe

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agi"))
from fake_asterisk import FakeAsterisk, FakeCall

CLI = [sys.executable, "-m", "callshield"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(tmp_path: Path, url: str, name: str, agi_port: int) -> Path:
    """A PBX's config: the store by URL (no password in it), its own FastAGI port, the shared key."""
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'[store]\nurl = "{url}"\nkey_file = "{tmp_path}/shield.key"\n'
        f'[agi]\nlisten = "127.0.0.1:{agi_port}"\n'
    )
    return path


async def run(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode()


async def verdict(port: int, digits: str) -> tuple[str, str]:
    variables = (await FakeAsterisk(port, FakeCall(args=(digits,))).run()).variables
    return variables["SHIELD_RESULT"], variables["SHIELD_REASON"]


async def until_listening(port: int, proc: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(30):
        while True:
            assert proc.returncode is None, "callshield serve exited"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return


@pytest.fixture
async def two_pbxs(pg_url: str, tmp_path: Path) -> AsyncIterator[tuple[dict[str, str], list[int], list[str]]]:
    """``callshield init`` run once, then two services; yields (CLI env, their AGI ports, their logs)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CALLSHIELD_")}
    base |= {"PGPASSWORD": str(urlsplit(pg_url).password), "CALLSHIELD_ACTOR": "tester"}
    ports = [free_port(), free_port()]
    configs = [config(tmp_path, describe(pg_url), f"pbx{i}", port) for i, port in enumerate(ports)]
    envs = [base | {"CALLSHIELD_CONFIG": str(path)} for path in configs]
    status, out = await run(envs[0], "init")
    assert status == 0, out
    procs = [
        await asyncio.create_subprocess_exec(*CLI, "serve", env=env, stderr=asyncio.subprocess.PIPE)
        for env in envs
    ]
    logs: list[str] = []
    try:
        for port, proc in zip(ports, procs, strict=True):
            await until_listening(port, proc)
        yield envs[0], ports, logs
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            assert proc.stderr is not None
            logs.append((await asyncio.wait_for(proc.stderr.read(), 20)).decode())
            await proc.wait()


async def test_a_refusal_marked_once_blocks_the_next_call_on_both_pbxs(
    two_pbxs: tuple[dict[str, str], list[int], list[str]], pg_url: str
) -> None:
    env, (pbx_a, pbx_b), logs = two_pbxs
    assert await verdict(pbx_a, "13800138000") == ("ALLOW", "clean")
    assert await verdict(pbx_b, "13800138000") == ("ALLOW", "clean")
    status, out = await run(env, "add", "13800138000", "--reason", "said no on pbx a")
    assert status == 0, out
    assert await verdict(pbx_b, "13800138000") == ("BLOCK", "shielded")
    assert await verdict(pbx_a, "13800138000") == ("BLOCK", "shielded")
    assert (await run(env, "check", "13800138000"))[0] == 1
    status, out = await run(env, "remove", "13800138000", "--reason", "consent")
    assert status == 0, out
    assert await verdict(pbx_a, "13800138000") == ("ALLOW", "clean")
    status, out = await run(env, "audit", "verify")
    assert status == 0, out
    password = str(urlsplit(pg_url).password)
    for text in (out, *logs):
        assert password not in text and "13800138000" not in text


async def test_the_cli_marks_overlapping_numbers_from_several_processes_at_once(
    pg_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSHIELD_")}
    env |= {"CALLSHIELD_STORE": pg_url, "CALLSHIELD_KEY_FILE": str(tmp_path / "shield.key")}
    assert (await run(env, "init"))[0] == 0
    numbers = [f"1380013{i:04d}" for i in range(4)]
    results = await asyncio.gather(*(run(env, "add", numbers[i % 4]) for i in range(8)))
    assert [status for status, _ in results] == [0] * 8, results
    status, out = await run(env, "stats")
    assert status == 0, out
    assert re.search(r"^entries: +4$", out, re.M), out
    status, out = await run(env, "audit", "verify")
    assert status == 0, out
