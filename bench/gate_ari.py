"""Benchmark: the ARI gate's decisions/s and latency against a bare aiohttp client, in one run.

The peer (``gate_ari_peer``: a minimal ARI server on 127.0.0.1, in this process) parks calls in
Stasis and keeps ``K`` of them outstanding per pass, a new ``StasisStart`` each time a channel is
continued. Two subject processes (``gate_ari_subjects``), pinned to the other core when there are
two, serve it in turn:

* ``callshield``: ``StasisApp`` + ``Gate`` + ``SqliteStore`` (``--entries`` numbers), logging as
  ``callshield serve`` does (INFO unless ``--log-level``);
* ``floor``: a bare aiohttp client doing the same websocket reading and REST calls with no shield
  work.

Per pass it prints decisions/s and the p50/p99 latency from the peer writing ``StasisStart`` to
the peer reading ``POST /channels/{id}/continue``, as Asterisk would see it; then, per subject and
K, best and median over ``--repeats`` interleaved passes and the callshield/floor ratios
(targets: >= 0.7x the floor's throughput, p99 <= 2 ms at K=1). Nothing is asserted.

    .venv/bin/python bench/gate_ari.py                          # K=1 and K=50, 3 repeats, ~35 s
    .venv/bin/python bench/gate_ari.py --k 50 --repeats 1 --profile   # where callshield's time goes
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from gate_ari_peer import AriPeer
from gate_procs import SubjectProcess, cpu_plan, profile_path, subjects
from gate_report import common_arguments, header, machine_line, print_profile, report
from gate_run import run_subjects
from gate_workload import prepare

SCRIPT = str(Path(__file__).resolve().parent / "gate_ari_subjects.py")
EVENTS = {True: "StasisStart+ChannelVarset+StasisEnd", False: "StasisStart only"}


async def main(args: argparse.Namespace) -> None:
    cpus = cpu_plan(args.pin)
    if cpus[0] is not None:
        os.sched_setaffinity(0, {cpus[0]})
    work = await prepare(args.entries, args.pool, args.blocked_share, args.seed)
    peer = AriPeer(work.calls, work.until, events=args.events)
    url = f"http://127.0.0.1:{await peer.start()}/ari"
    procs = subjects(SCRIPT, "ari", args, work, cpus[1], lambda name: ["--url", url, "--app", name])
    header(f"ARI gate (events {EVENTS[args.events]})", args, work, cpus)

    async def ready(subject: SubjectProcess, _words: list[str]) -> None:
        await peer.wait_app(subject.name)

    try:
        results = await run_subjects(peer, procs, ready, args)
    finally:
        await peer.close()
    title = "ARI gate: decisions/s, latency StasisStart written -> continue read"
    report(title, results, "callshield", "floor", args.k)
    print(machine_line(*cpus))
    if args.profile:
        print_profile(profile_path("ari"))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    common_arguments(parser)
    parser.add_argument(
        "--start-only",
        dest="events",
        action="store_false",
        help="send only StasisStart (default: also ChannelVarset and StasisEnd, as Asterisk does)",
    )
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
