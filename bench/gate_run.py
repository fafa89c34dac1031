"""The gate benchmarks' passes: K calls outstanding against one subject, measured.

A *subject* is a process that answers the peer: callshield (the code under test) or its floor
(the same protocol work with no shield work). A *pass* keeps ``K`` calls outstanding against one
subject for ``warmup`` + ``seconds`` seconds and records, for every call completed within the
``seconds`` window, the time from the peer's first byte to the verdict (see the peers for where
exactly they take it), the CPU time the subject and the peer used, and how long each waited for
a CPU. Passes interleave subjects and K values, ``repeats`` times, so background load hits all
alike; each repeat runs subject processes of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gate_procs import SubjectProcess
from gate_workload import Call

DRAIN_SECONDS = 10.0
"""Most time a pass waits for its outstanding calls once the window closed."""


@dataclass
class Load:
    """K calls outstanding: every finished call starts the next one while the pass is active."""

    k: int
    calls: Sequence[Call]
    launch: Callable[[Load, Call], None]
    """Starts one call; the peer later reports it with :meth:`finished` (or :meth:`failed`)."""
    cursor: int = 0
    active: bool = True
    measuring: bool = False
    outstanding: int = 0
    latencies: list[float] = field(default_factory=list)
    wrong: int = 0
    errors: int = 0
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the load is stopped and its last call is over."""

    def fill(self) -> None:
        while self.active and self.outstanding < self.k:
            call = self.calls[self.cursor % len(self.calls)]
            self.cursor += 1
            self.outstanding += 1
            self.launch(self, call)

    def finished(self, latency: float, right: bool) -> None:
        """A call got its verdict ``latency`` s after it started; ``right``: the one the store implies."""
        self.outstanding -= 1
        if self.measuring:
            self.latencies.append(latency)
            self.wrong += not right
        self._next()

    def failed(self) -> None:
        """A call ended without a verdict (connection refused, reset, ...)."""
        self.outstanding -= 1
        self.errors += 1
        self._next()

    def _next(self) -> None:
        if self.active:
            self.fill()
        elif self.outstanding == 0:
            self.drained.set()


def next_load(
    loads: dict[str, Load], subject: str, k: int, calls: Sequence[Call], launch: Callable[[Load, Call], None]
) -> Load:
    """A new load of ``subject`` (kept in ``loads``) that goes on through ``calls`` where its last
    one stopped, so that successive passes do not replay the same numbers."""
    last = loads.get(subject)
    load = Load(k, calls, launch, cursor=last.cursor if last is not None else 0)
    loads[subject] = load
    return load


@dataclass(frozen=True)
class PassResult:
    subject: str
    k: int
    seconds: float
    latencies: tuple[float, ...]
    wrong: int
    errors: int
    cpu: float
    """CPU seconds the subject process used in the window (all its threads)."""
    peer_cpu: float
    """CPU seconds the peer (this process) used in the window."""
    waited: float
    """Seconds the subject's main thread was runnable but waiting for a CPU (other load)."""
    peer_waited: float
    """The same for the peer's thread."""

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def cpu_us(self) -> float:
        """The subject's CPU microseconds per decision."""
        return self.cpu / max(1, len(self.latencies)) * 1e6

    def quantile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def run_delay(pid: int | str) -> float:
    """Seconds a thread has spent runnable but waiting for a CPU (``/proc/PID/schedstat``)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (``/proc/PID/stat``, all threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(subject: str, load: Load, warmup: float, seconds: float, pid: int) -> PassResult:
    """Run ``load`` for warmup + seconds, then stop starting calls and wait for the rest."""
    load.fill()
    await asyncio.sleep(warmup)
    load.measuring = True
    started, cpu, peer_cpu = time.perf_counter(), cpu_seconds(pid), time.process_time()
    waited, peer_waited = run_delay(pid), run_delay("thread-self")
    await asyncio.sleep(seconds)
    load.measuring = False
    window, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu
    peer_cpu = time.process_time() - peer_cpu
    waited, peer_waited = run_delay(pid) - waited, run_delay("thread-self") - peer_waited
    load.active = False
    if load.outstanding > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(load.drained.wait(), DRAIN_SECONDS)
    errors = load.errors + load.outstanding  # calls never answered count as errors
    return PassResult(
        subject, load.k, window, tuple(load.latencies), load.wrong, errors, cpu, peer_cpu, waited, peer_waited
    )


class Peer(Protocol):
    def load(self, subject: str, k: int) -> Load:
        """K calls against ``subject``, continuing the call pool where its last load stopped."""


async def run_repeat(
    peer: Peer, subjects: Sequence[SubjectProcess], ks: Sequence[int], args: argparse.Namespace, rep: int
) -> list[PassResult]:
    """The (K, subject) passes of repeat ``rep``; the subject order alternates between repeats."""
    results = []
    for k in ks:
        order = list(subjects) if rep % 2 == 0 else list(reversed(subjects))
        for subject in order:
            load = peer.load(subject.name, k)
            r = await measure(subject.name, load, args.warmup, args.seconds, subject.pid)
            results.append(r)
            print(f"  pass {rep + 1}/{args.repeats} {pass_line(r)}", flush=True)
    return results


def pass_line(r: PassResult) -> str:
    share = r.cpu / r.seconds, r.waited / r.seconds, r.peer_cpu / r.seconds, r.peer_waited / r.seconds
    return (
        f"K={r.k:<3} {r.subject:<10} {r.rate:7,.0f}/s  p50 {r.quantile_ms(0.5):6.3f} ms"
        f"  p99 {r.quantile_ms(0.99):7.3f} ms  cpu {share[0]:4.0%} ({r.cpu_us:3.0f} us/call)"
        f" waited {share[1]:3.0%}  peer cpu {share[2]:3.0%} waited {share[3]:3.0%}"
        f"  n={len(r.latencies):,} wrong={r.wrong} errors={r.errors}"
    )


async def run_subjects(
    peer: Peer,
    subjects: Sequence[SubjectProcess],
    ready: Callable[[SubjectProcess, list[str]], Awaitable[None]],
    args: argparse.Namespace,
) -> list[PassResult]:
    """Run the passes, each repeat with subject processes of its own: started (``ready`` gets each
    one's ``ready`` words), measured, stopped. A process can come out several per cent slower or
    faster than another for its whole life (memory layout, glibc's mmap history): with a process
    per repeat that counts once in the median, not in every pass of a run."""
    results: list[PassResult] = []
    for rep in range(args.repeats):
        try:
            for subject in subjects:
                await ready(subject, await subject.start())
            results += await run_repeat(peer, subjects, args.k, args, rep)
        finally:
            for subject in subjects:
                await subject.stop()
    return results
