"""Benchmark: the FastAGI gate's decisions/s and latency against a bare asyncio responder, in one run.

The peer (``gate_agi_peer``, in this process) plays Asterisk: it opens ``K`` FastAGI sessions at a
time on 127.0.0.1, a new one each time one ends, sends the captured header block, answers every
command with ``200 result=1`` and waits for the subject to close. Two subject processes
(``gate_agi_subjects``), pinned to the other core when there are two, serve it in turn:

* ``callshield``: ``AgiServer`` + ``gate_handler`` + ``Gate`` + ``SqliteStore`` (``--entries``
  numbers), logging as ``callshield serve`` does (INFO unless ``--log-level``); with
  ``--guard-ledger`` it also notes its ALLOWs for a guard, as serve does when one runs;
* ``floor``: a bare asyncio server doing the same header read, the same three ``SET VARIABLE``
  round trips and the close, with no shield work.

Per pass it prints decisions/s and the p50/p99 latency from the peer starting the TCP connect to
the subject closing the socket (when Asterisk continues the dialplan); then, per subject and K,
best and median over ``--repeats`` interleaved passes and the callshield/floor ratios (target:
>= 0.7x the floor's throughput). Nothing is asserted.

    .venv/bin/python bench/gate_agi.py                          # K=1 and K=50, 3 repeats, ~35 s
    .venv/bin/python bench/gate_agi.py --k 50 --repeats 1 --profile   # where callshield's time goes
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from gate_agi_peer import AgiPeer
from gate_procs import SubjectProcess, cpu_plan, profile_path, subjects
from gate_report import common_arguments, header, machine_line, print_profile, report
from gate_run import run_subjects
from gate_workload import prepare

SCRIPT = str(Path(__file__).resolve().parent / "gate_agi_subjects.py")


async def main(args: argparse.Namespace) -> None:
    cpus = cpu_plan(args.pin)
    if cpus[0] is not None:
        os.sched_setaffinity(0, {cpus[0]})
    work = await prepare(args.entries, args.pool, args.blocked_share, args.seed)
    peer = AgiPeer(work.calls, work.until)
    ledger = ["--guard-ledger"] if args.guard_ledger else []
    procs = subjects(SCRIPT, "agi", args, work, cpus[1], lambda name: ledger if name == "callshield" else [])
    header("FastAGI gate", args, work, cpus)
    if args.guard_ledger:
        print("callshield notes its ALLOWs for a guard (--guard-ledger), as serve does when one runs")

    async def ready(subject: SubjectProcess, words: list[str]) -> None:
        peer.add_subject(subject.name, int(words[0]))

    results = await run_subjects(peer, procs, ready, args)
    report(
        "FastAGI gate: decisions/s, latency connect -> socket closed", results, "callshield", "floor", args.k
    )
    print(machine_line(*cpus))
    if args.profile:
        print_profile(profile_path("agi"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    common_arguments(parser)
    parser.add_argument(
        "--guard-ledger",
        action="store_true",
        help="callshield notes its ALLOWs for a guard, as serve does when one runs",
    )
    asyncio.run(main(parser.parse_args()))
