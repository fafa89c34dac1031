"""The subject side of the gate benchmarks: options, pinning, readiness, stopping, profiling."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path


def subject_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every subject process takes."""
    parser.add_argument("subject", choices=["callshield", "floor"])
    parser.add_argument("--until", default="", help="floor: SHIELD_UNTIL of the shielded numbers")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--key-file", type=Path, required=True)
    parser.add_argument("--calls", type=Path, required=True)
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile the serving, dump here")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="exit by itself after this")


def pin_self(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def run_subject(
    args: argparse.Namespace,
    callshield: Callable[[argparse.Namespace], Awaitable[None]],
    floor: Callable[[argparse.Namespace], Awaitable[None]],
) -> None:
    """Pinned to ``--cpu``, serve as the subject ``args.subject`` names until stopped."""
    pin_self(args.cpu)
    serve = callshield if args.subject == "callshield" else floor

    async def main() -> None:
        await serve(args)

    asyncio.run(main())


async def until_stopped(max_seconds: float) -> None:
    """Until stdin closes (the benchmark is done, or gone), SIGTERM/SIGINT, or ``max_seconds``."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def stdin_closed() -> None:
        await reader.read()
        stop.set()

    watcher = asyncio.create_task(stdin_closed())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max_seconds)
    watcher.cancel()


def announce(*words: object) -> None:
    print("ready", *words, flush=True)


@contextlib.contextmanager
def profiled(path: Path | None) -> Iterator[None]:
    """cProfile everything the event loop runs meanwhile (this thread); dump to ``path``."""
    if path is None:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        profile.dump_stats(path)
