"""``kmm overcommit``: the overcommit policy, and CommitLimit recomputed beside the kernel's.

Reads ``vm.overcommit_memory``, ``vm.overcommit_ratio`` and ``vm.overcommit_kbytes`` (their
defaults, with a note, where the source has none) and /proc/meminfo, and recomputes
``vm_commit_limit()`` (mm/util.c) term by term — see :mod:`kmmlib.userspace.overcommit`.
``--json`` gives the numbers, ``commit_limit_kb`` among them.
"""

from __future__ import annotations

import json
import sys

from kmmlib.procfs.meminfo import parse_meminfo
from kmmlib.userspace.overcommit import (
    MODE_NAMES,
    commit_limit_from_meminfo,
    read_overcommit_sysctls,
)

NAME = "overcommit"
HELP = "the overcommit policy, and CommitLimit recomputed as vm_commit_limit() does"

_MEANING = {0: "refuse only a single request bigger than RAM + swap",
            1: "never refuse", 2: "refuse once Committed_AS would reach CommitLimit"}


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    sysctls, notes = read_overcommit_sysctls(args.source)
    mi = parse_meminfo(args.source.read("meminfo"))
    mode, ratio, kbytes = (sysctls["overcommit_memory"], sysctls["overcommit_ratio"],
                           sysctls["overcommit_kbytes"])
    limit = commit_limit_from_meminfo(mi, overcommit_ratio=ratio, overcommit_kbytes=kbytes)
    pages, swap = mi["MemTotal"] // 4, mi.get("SwapTotal", 0) // 4
    huge = mi.get("HugePages_Total", 0) * mi.get("Hugepagesize", 2048) // 4
    kernel = mi.get("CommitLimit")
    committed = mi.get("Committed_AS", 0)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps({**sysctls, "mode_name": MODE_NAMES.get(mode, "?"),
                          "commit_limit_kb": limit, "meminfo_commit_limit_kb": kernel,
                          "match": limit == kernel, "committed_as_kb": committed,
                          "mem_total_kb": mi["MemTotal"], "swap_total_kb": swap * 4,
                          "sources": {"meminfo": args.source.origin("meminfo")}}, indent=2))
        return 0
    if kbytes:
        how = f"overcommit_kbytes {kbytes} kB = {kbytes // 4} pages"
    else:
        how = f"({pages} pages RAM − {huge} pages huge) × {ratio} / 100"
    print(f"vm.overcommit_memory = {mode} ({MODE_NAMES.get(mode, '?')}: "
          f"{_MEANING.get(mode, '?')})")
    print(f"vm.overcommit_ratio  = {ratio}")
    print(f"vm.overcommit_kbytes = {kbytes}")
    print(f"CommitLimit  = {how} + {swap} pages swap")
    if kernel is None:
        said = "meminfo has no CommitLimit line to compare with"
    else:
        said = f"meminfo: {kernel} kB, {'equal' if limit == kernel else 'DIFFERENT'}"
    print(f"             = {limit // 4} pages = {limit} kB    ({said})")
    share = f"{100 * committed / limit:.1f}% of CommitLimit" if limit else "no CommitLimit"
    enforced = "enforced" if mode == 2 else "not enforced in this mode"
    print(f"Committed_AS = {committed} kB ({share}; {enforced})")
    return 0
