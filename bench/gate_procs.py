"""The subject processes, seen from the benchmark: started, pinned, stopped.

The peer runs in the benchmark's own process; the subjects are child processes pinned to another
core when there are two (``--no-pin`` leaves the scheduler free). Each prints ``ready ...`` once
it serves and stops when its stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from gate_workload import OUT, Workload


def subject_env(mmap_threshold: int) -> dict[str, str] | None:
    """The subjects' environment: glibc's mmap threshold fixed (0: inherited, dynamic).

    Python's socket reads allocate a 256 KiB buffer each (asyncio's ``max_size``), then shrink
    it. Under glibc's *dynamic* threshold that buffer is mmapped (+ mremap + munmap: three system
    calls and page faults per read) until the process happens to free some mmapped block larger
    than 128 KiB, and comes from the heap afterwards: two processes doing the same work can differ
    by tens of microseconds per call just by their history. A fixed threshold makes the subjects
    comparable; the default, 128 KiB, is glibc's starting value (what a fresh process has).
    """
    if mmap_threshold <= 0:
        return None
    return {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(mmap_threshold)}


def cpu_plan(pin: bool) -> tuple[int | None, int | None]:
    """(peer CPU, subject CPU): two different cores when pinning and there are two."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


class SubjectProcess:
    """One subject: a child process that prints ``ready ...`` and serves until its stdin closes."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, env: Mapping[str, str] | None) -> None:
        self.name, self.argv, self.log, self.env = name, list(argv), log, env
        self._proc: asyncio.subprocess.Process | None = None
        self._started = 0

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    async def start(self, within: float = 60.0) -> list[str]:
        """Start it; return the words after ``ready`` on its first line of output. Its standard error
        goes to ``log``, from the first start on (later starts append)."""
        self._started += 1
        with self.log.open("wb" if self._started == 1 else "ab") as err:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env=self.env,
            )
        assert self._proc.stdout is not None
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), within)
        except TimeoutError:
            line = b""
        words = line.decode().split()
        if words[:1] != ["ready"]:
            await self.stop()
            raise RuntimeError(f"{self.name} did not start; see {self.log}")
        return words[1:]

    async def stop(self, within: float = 15.0) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            return await asyncio.wait_for(proc.wait(), within)
        except TimeoutError:
            proc.kill()
            return await proc.wait()


def subjects(
    script: str,
    kind: str,
    args: argparse.Namespace,
    work: Workload,
    cpu: int | None,
    own: Callable[[str], list[str]],
) -> list[SubjectProcess]:
    """The callshield subject and the floor, run by ``script``; ``own(name)``: options of one."""
    env = subject_env(args.mmap_threshold)
    common = [*work.subject_args(), *([] if cpu is None else ["--cpu", str(cpu)])]
    profile = ["--profile", str(profile_path(kind))] if args.profile else []
    mine = [script, "callshield", *own("callshield"), "--log-level", args.log_level, *common, *profile]
    floor = [script, "floor", *own("floor"), "--until", work.until, *common]
    return [
        SubjectProcess("callshield", mine, OUT / f"gate-{kind}-callshield.log", env),
        SubjectProcess("floor", floor, OUT / f"gate-{kind}-floor.log", env),
    ]


def profile_path(kind: str) -> Path:
    return OUT / f"gate-{kind}-callshield.prof"
