"""``kmm replay [TRACE]``: replay a real ftrace ``kmem`` trace through the simulator.

TRACE is the text of ``/sys/kernel/tracing/trace`` with the kmem events on, plain or xz (by
default the real trace bundled with kmmlib, from the snapshot's machine; capture your own with
``sudo python -m kmmlib.trace.capture``). Every page allocation and free, every slab
allocation and free, is made again on a simulated machine sized like the traced one
(``--machine``: the ``x86_64-snapshot`` preset by default, ``proc`` for the machine of the
live /proc or ``--from DIR``), and the report puts the simulator's figures beside the
kernel's: buddy takes, per-cpu drains, fallbacks, slab shapes, and the free lists after.
A progress bar goes to stderr unless ``--no-progress``. ``--json`` prints ``events`` (a
count per event name, as parsed), the ``report`` and the ``speed``. See
:mod:`kmmlib.trace.replay`.
"""

from __future__ import annotations

import argparse
import json
import sys

from kmmlib.errors import BadRequest

NAME = "replay"
HELP = "replay an ftrace kmem trace (plain or .xz) through the simulated buddy and slab allocators"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", nargs="?", metavar="TRACE",
                        help="the trace file (default: the bundled real trace)")
    parser.add_argument("--machine", default="x86_64-snapshot", metavar="PRESET",
                        help="the simulated machine: a preset (x86_64-snapshot, tiny, "
                             "arm64-virt-1g, arm32-highmem-1g) or 'proc' for the machine of "
                             "/proc or --from DIR (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar on stderr")
    parser.add_argument("--no-slab", action="store_true",
                        help="replay only the page events")
    parser.add_argument("--slabinfo", type=int, default=10, metavar="N",
                        help="slabinfo lines to print after the replay (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    from kmmlib.trace.capture import bundled_trace
    from kmmlib.trace.replay import Replay, tqdm_progress

    if args.slabinfo < 0:
        raise BadRequest(f"--slabinfo N must be 0 or more, not {args.slabinfo}")
    path = args.trace or bundled_trace()
    rp = Replay(args.machine, source=args.source, slab=not args.no_slab)
    bar = None if args.no_progress else tqdm_progress(
        lambda: rp.stats.header.get("entries_in_buffer"), desc="kmm replay")
    try:
        rp.run(path, bar)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps({"trace": str(path), "machine": rp.setup.name,
                          "events": dict(rp.stats.events), "report": rp.report(),
                          "speed": rp.speed()}, indent=2))
        return 0
    print(rp.summary(slabinfo=args.slabinfo))
    if rp.stats.nr_events == sum(rp.stats.unknown.values()):
        print(f"note: {path} holds no kmem events ({rp.stats.lines} lines read); to capture "
              "some: sudo .venv/bin/python -m kmmlib.trace.capture -o my-trace.txt.xz",
              file=sys.stderr)
    return 0
