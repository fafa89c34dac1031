"""``callshield mark`` as a desk or CRM runs it: by number, by channel on a (fake) Asterisk, and
with the store unavailable (the refusal waits in the journal; exit 0 only once durable)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from fake_ari import FakeAri


async def cli(config: Path, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSHIELD_")} | {
        "CALLSHIELD_CONFIG": str(config)
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callshield",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode(), err.decode()


def write_config(tmp_path: Path, store: str, extra: str = "") -> Path:
    config = tmp_path / "callshield.toml"
    config.write_text(
        f'[store]\npath = "{store}"\nkey_file = "{tmp_path}/shield.key"\n'
        f'[capture]\njournal = "{tmp_path}/refusals.journal"\n{extra}'
    )
    return config


async def test_mark_a_number(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"{tmp_path}/shield.db")
    assert (await cli(config, "init"))[0] == 0
    status, out, _ = await cli(config, "mark", "138 0013 8000", "--company", "acme", "--agent", "a7")
    assert (status, out.strip()) == (0, "marked +86138****8000 (company:acme): stored")
    assert (await cli(config, "check", "13800138000", "--company", "acme"))[0] == 1


async def test_mark_with_the_store_unavailable_goes_to_the_journal(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"{tmp_path}/shield.db")
    assert (await cli(config, "init"))[0] == 0
    (tmp_path / "shield.db").rename(tmp_path / "moved.db")
    (tmp_path / "shield.db").mkdir()
    status, out, err = await cli(config, "mark", "13800138000")
    assert status == 0, err
    assert "kept in the journal" in out
    journal = (tmp_path / "refusals.journal").read_bytes()
    assert journal
    assert b"13800138000" not in journal


async def test_mark_a_call_by_channel_ends_it(tmp_path: Path) -> None:
    async with FakeAri() as fake:
        extra = (
            f'[[ari.server]]\nname = "pbx1"\nurl = "{fake.url.removesuffix("/ari")}"\n'
            f'username = "{fake.username}"\npassword = "{fake.password}"\n'
        )
        config = write_config(tmp_path, f"{tmp_path}/shield.db", extra)
        assert (await cli(config, "init"))[0] == 0
        agent = await fake.create_channel(
            name="PJSIP/agent1-00000002", caller_number="agent1", connected_number="13900139000"
        )
        peer = await fake.dial(agent.id, "13900139000@carrier", caller_number="13900139000")
        await fake.answer_dial(peer.id)
        status, out, err = await cli(config, "mark", "--channel", agent.id, "--reason", "CRM flag")
        assert status == 0, err
        assert out.strip() == f"marked +86139****9000 (global); call ended (channel {peer.id})"
        assert peer.hangup_cause == 16
        missing = await cli(config, "mark", "--channel", "no-such-channel")
        assert missing[0] == 2
        assert "no live channel" in missing[2]
    assert (await cli(config, "check", "13900139000"))[0] == 1


async def test_journal_shows_waiting_refusals_and_replay_stores_them(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"{tmp_path}/shield.db")
    assert (await cli(config, "init"))[0] == 0
    assert (await cli(config, "journal"))[:2] == (
        0,
        f"journal {tmp_path}/refusals.journal: 0 refusal(s) waiting for the store\n",
    )
    (tmp_path / "shield.db").rename(tmp_path / "moved.db")
    (tmp_path / "shield.db").mkdir()
    assert (await cli(config, "mark", "13800138000", "--company", "acme"))[0] == 0
    status, out, _ = await cli(config, "journal", "status")
    assert status == 1
    assert "1 refusal(s) waiting" in out
    assert "+86138****8000  company:acme  agent_flag  until 20" in out
    assert "13800138000" not in out
    failed = await cli(config, "journal", "replay")
    assert failed[0] == 2  # the store is still unavailable: an error, nothing lost
    assert (await cli(config, "journal"))[0] == 1
    (tmp_path / "shield.db").rmdir()
    (tmp_path / "moved.db").rename(tmp_path / "shield.db")
    status, out, _ = await cli(config, "journal", "replay")
    assert (status, out.splitlines()[0]) == (0, "journal replay: 1 refusal(s) stored")
    assert "0 refusal(s) waiting" in out
    assert (await cli(config, "check", "13800138000", "--company", "acme"))[0] == 1
