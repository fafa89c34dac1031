"""The gate benchmarks' summary: best / median per subject and K, ratios, and the options."""

from __future__ import annotations

import argparse
import io
import os
import pstats
import statistics
from collections.abc import Sequence
from pathlib import Path

from gate_run import PassResult
from gate_workload import Workload

PEER_BOUND = 0.9
"""Peer CPU share from which a pass is limited by the peer rather than by the subject."""


def _row(name: str, k: int, rs: Sequence[PassResult]) -> str:
    rates = [r.rate for r in rs]
    p50 = [r.quantile_ms(0.5) for r in rs]
    p99 = [r.quantile_ms(0.99) for r in rs]
    cpu = [r.cpu_us for r in rs]
    load = [r.cpu / r.seconds for r in rs]
    waited = [r.waited / r.seconds for r in rs]
    peer = [r.peer_waited / r.seconds for r in rs]
    return (
        f"{name:<11}{k:>3} {max(rates):9,.0f} {statistics.median(rates):9,.0f} {min(rates):9,.0f}"
        f" {min(p50):8.3f} {statistics.median(p50):8.3f} {min(p99):8.3f} {statistics.median(p99):8.3f}"
        f" {statistics.median(cpu):8.0f} {statistics.median(load):6.0%} {max(waited):7.0%} {max(peer):6.0%}"
        f" {sum(len(r.latencies) for r in rs):8,} {sum(r.wrong for r in rs):5} {sum(r.errors for r in rs):5}"
    )


def report(title: str, results: Sequence[PassResult], subject: str, floor: str, ks: Sequence[int]) -> None:
    """Best and median per subject and K, and the subject/floor ratios."""
    print(f"\n{title}")
    print(f"{'':<11}{'':>3} {'decisions/s':^29} {'p50 ms':^17} {'p99 ms':^17} {'subject CPU':^15}"
          f" {'waited, max':^14}")  # fmt: skip
    print(f"{'':<11}{'K':>3} {'best':>9} {'median':>9} {'worst':>9} {'best':>8} {'median':>8} {'best':>8}"
          f" {'median':>8} {'us/call':>8} {'busy':>6} {'subject':>7} {'peer':>6} {'calls':>8} {'wrong':>5}"
          f" {'errs':>5}")  # fmt: skip
    for k in ks:
        mine = [r for r in results if r.subject == subject and r.k == k]
        base = [r for r in results if r.subject == floor and r.k == k]
        print(_row(subject, k, mine))
        print(_row(floor, k, base))
        paired = sorted(a.rate / b.rate for a, b in zip(mine, base, strict=True))
        best = max(r.rate for r in mine) / max(r.rate for r in base)
        median = statistics.median(r.rate for r in mine) / statistics.median(r.rate for r in base)
        cpu = statistics.median(r.cpu_us for r in mine) / statistics.median(r.cpu_us for r in base)
        p99 = statistics.median(r.quantile_ms(0.99) for r in mine)
        print(
            f"{'ratio':<11}{k:>3} decisions/s {subject}/{floor}: best/best {best:.2f}x, median/median"
            f" {median:.2f}x, paired passes {' '.join(f'{x:.2f}' for x in paired)} (target >= 0.70x);"
            f" CPU per call {cpu:.2f}x the floor's (capacity on a full core {1 / cpu:.2f}x)"
        )
        if k == 1:
            print(f"{'':<14} {subject} p99 at K=1: best {min(r.quantile_ms(0.99) for r in mine):.3f} ms,"
                  f" median {p99:.3f} ms (target <= 2 ms)")  # fmt: skip
        peer = max(r.peer_cpu / r.seconds for r in base)
        if peer >= PEER_BOUND:
            print(f"{'':<14} the peer used up to {peer:.0%} of its core in {floor} passes: the {floor}'s"
                  " figure is a lower bound, the ratio an upper bound")  # fmt: skip


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--entries", type=int, default=100_000, help="numbers in the store")
    parser.add_argument("--pool", type=int, default=20_000, help="distinct numbers the calls cycle through")
    parser.add_argument("--blocked-share", type=float, default=0.1, help="share of calls to shielded numbers")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 50], help="calls outstanding")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds before each window")
    parser.add_argument("--seconds", type=float, default=2.0, help="measured window per pass")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin peer and subject")
    parser.add_argument("--log-level", default="INFO", help="callshield's log level (serve's default: INFO)")
    parser.add_argument("--profile", action="store_true", help="cProfile the callshield process")
    parser.add_argument(
        "--mmap-threshold",
        type=int,
        default=128 * 1024,
        help="glibc MALLOC_MMAP_THRESHOLD_ for both subjects (0: leave glibc's dynamic threshold)",
    )


def header(title: str, args: argparse.Namespace, work: Workload, cpus: tuple[int | None, int | None]) -> None:
    """What is measured, and on what machine."""
    blocked = sum(c.blocked for c in work.calls)
    threshold = f"{args.mmap_threshold:,} B" if args.mmap_threshold > 0 else "dynamic"
    print(
        f"{title}: store {args.entries:,} entries; calls cycle over {len(work.calls):,} numbers,"
        f" {blocked:,} shielded; K={args.k}; {args.repeats} x ({args.warmup:g} s warm-up"
        f" + {args.seconds:g} s) per subject and K; callshield log level {args.log_level}"
        + (" (under cProfile)" if args.profile else "")
    )
    print(f"{machine_line(*cpus)}; subjects' glibc mmap threshold {threshold}", flush=True)


def machine_line(peer_cpu: int | None, subject_cpu: int | None) -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    where = f"peer on CPU {peer_cpu}, subjects on CPU {subject_cpu}" if peer_cpu is not None else "not pinned"
    return f"{os.cpu_count()} CPUs, {where}, load average {load}"


def print_profile(path: Path, top: int = 30) -> None:
    """The heaviest functions by own time, then by cumulative time."""
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(str(path), stream=out).strip_dirs().sort_stats(order).print_stats(top)
        print(f"\n--- profile of the callshield process by {order} ({path}) ---")
        print(out.getvalue().strip())
