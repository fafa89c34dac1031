"""The two subjects of the FastAGI gate benchmark; ``gate_agi.py`` runs each as its own process.

``callshield``: the service's FastAGI gate as ``callshield serve`` builds it: ``SqliteStore`` +
``Gate(store, NumberRules())`` + ``AgiServer({"callshield/gate": gate_handler(gate)})``, logging
configured like ``serve`` (``--log-level``, INFO by default: one line per decision). Without a
guard, serve hands the gate no ledger of allowed calls; ``--guard-ledger`` gives it one, as serve
does when a guard runs (a guard needs an ARI server, which this benchmark has none of).

``floor``: a bare asyncio FastAGI responder: reads the header block in one ``readuntil`` up to
its blank line, takes ``agi_arg_1``, writes the same three ``SET VARIABLE`` lines byte for byte,
reading each reply, and closes (nothing is left to flush then, so it does not wait for the close).
Which numbers are shielded it takes from the calls file, not from the store.

Both listen on 127.0.0.1 (a free port), print ``ready PORT``, and serve until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from callshield import logsetup
from callshield.agi.gate import GATE_SCRIPT, gate_handler
from callshield.agi.server import AgiServer
from callshield.ari.guard_ledger import GateLedger
from callshield.gate import Gate
from callshield.numbers import NumberRules
from callshield.store.sqlite import SqliteStore
from gate_serve import announce, profiled, run_subject, subject_arguments, until_stopped
from gate_workload import load_key, read_calls

ARG_1 = b"\nagi_arg_1: "


async def serve_callshield(args: argparse.Namespace) -> None:
    logsetup.configure(args.log_level)  # as `callshield serve` does
    store = await SqliteStore.open(args.store, load_key(args.key_file), create=False)
    gate = Gate(store, NumberRules())
    ledger = GateLedger() if args.guard_ledger else None
    server = AgiServer({GATE_SCRIPT: gate_handler(gate, ledger)}, "127.0.0.1", 0)
    try:
        await server.start()
        announce(server.port)
        with profiled(args.profile):
            await until_stopped(args.max_seconds)
        await server.close()
    finally:
        await store.close()
    logging.getLogger("bench").warning("decisions: %s", dict(gate.counts))


def commands(blocked: bool, until: str) -> tuple[bytes, ...]:
    verdict = ("BLOCK", "shielded", until) if blocked else ("ALLOW", "clean", "")
    names = ("SHIELD_RESULT", "SHIELD_REASON", "SHIELD_UNTIL")
    return tuple(f'SET VARIABLE "{n}" "{v}"\n'.encode() for n, v in zip(names, verdict, strict=True))


async def serve_floor(args: argparse.Namespace) -> None:
    blocked = {c.number for c in read_calls(args.calls) if c.blocked}
    script = {True: commands(True, args.until), False: commands(False, args.until)}

    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            block = await reader.readuntil(b"\n\n")
            start = block.find(ARG_1) + len(ARG_1)
            number = block[start : block.index(b"\n", start)].decode() if start >= len(ARG_1) else ""
            for command in script[number in blocked]:
                writer.write(command)
                await reader.readuntil(b"\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(respond, "127.0.0.1", 0, limit=8192)
    async with server:
        announce(server.sockets[0].getsockname()[1])
        await until_stopped(args.max_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    subject_arguments(parser)
    parser.add_argument("--guard-ledger", action="store_true", help="callshield: note ALLOWs for a guard")
    run_subject(parser.parse_args(), serve_callshield, serve_floor)


if __name__ == "__main__":
    main()
