"""Overcommit: CommitLimit against real kernels' /proc/meminfo, and __vm_enough_memory()'s
three modes at their boundaries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kmmlib.errors import BadRequest
from kmmlib.events import Collect
from kmmlib.procfs.meminfo import parse_meminfo
from kmmlib.procfs.source import ProcSource, snapshot
from kmmlib.userspace.overcommit import (
    VmCommit,
    commit_limit_from_meminfo,
    init_admin_reserve,
    init_user_reserve,
    read_overcommit_sysctls,
    vm_commit_limit,
)

LIVE = Path("/proc/sys/vm/overcommit_ratio").exists()


def test_commit_limit_equals_the_snapshot_kernels():
    """The bundled snapshot (Linux 6.18, no swap, default ratio 50) printed CommitLimit
    12342040 kB; (6171021 pages × 50 / 100) × 4 kB gives exactly that."""
    text = snapshot().read("meminfo")
    mi = parse_meminfo(text)
    assert commit_limit_from_meminfo(mi) == mi["CommitLimit"] == 12342040
    vm = VmCommit(mi["MemTotal"] // 4)
    vm.vm_acct_memory(mi["Committed_AS"] // 4)
    assert vm.meminfo_lines().splitlines() == [
        ln for ln in text.splitlines() if ln.startswith(("CommitLimit", "Committed_AS"))]


@pytest.mark.skipif(not LIVE, reason="needs Linux /proc/sys/vm")
def test_commit_limit_equals_this_machines():
    src = ProcSource("/proc")
    sysctls, notes = read_overcommit_sysctls(src)
    assert notes == []
    mi = parse_meminfo(src.read("meminfo"))
    assert commit_limit_from_meminfo(
        mi, overcommit_ratio=sysctls["overcommit_ratio"],
        overcommit_kbytes=sysctls["overcommit_kbytes"]) == mi["CommitLimit"]


def test_sysctls_fall_back_to_the_defaults_with_a_note(tmp_path):
    values, notes = read_overcommit_sysctls(snapshot())
    assert values == {"overcommit_memory": 0, "overcommit_ratio": 50, "overcommit_kbytes": 0}
    assert len(notes) == 3 and all("not found; using the kernel's default" in n for n in notes)
    (tmp_path / "overcommit_ratio").write_text("lots\n")
    (tmp_path / "overcommit_memory").write_text("2\n")
    values, notes = read_overcommit_sysctls(ProcSource(tmp_path))
    assert values["overcommit_memory"] == 2 and values["overcommit_ratio"] == 50
    assert any("overcommit_ratio: not a number; using" in n for n in notes)


def test_commit_limit_formula():
    assert vm_commit_limit(1000, 0) == 500
    assert vm_commit_limit(1000, 300, overcommit_ratio=80) == 1100
    assert vm_commit_limit(1000, 300, hugetlb_total_pages=200) == 700
    assert vm_commit_limit(1000, 300, overcommit_kbytes=4000) == 1300    # kbytes wins
    with pytest.raises(BadRequest):
        vm_commit_limit(-1)


def test_reserves_are_a_32nd_of_free_memory_capped():
    assert init_user_reserve(4096) == 512 and init_admin_reserve(4096) == 512
    assert init_user_reserve(1 << 22) == 131072 and init_admin_reserve(1 << 22) == 8192


def test_mode_0_refuses_only_one_request_bigger_than_ram_plus_swap():
    vm = VmCommit(1000, 200)
    assert vm.vm_enough_memory(1200)
    assert vm.vm_enough_memory(1200)          # already promised does not matter
    assert vm.committed_as == 2400
    d = vm.vm_enough_memory(1201, pid=7, comm="big")
    assert not d and "RAM + swap" in str(d)
    assert vm.committed_as == 2400            # un-charged on failure
    assert vm.dmesg == ["__vm_enough_memory: pid: 7, comm: big, bytes: 4919296 not enough "
                        "memory for the allocation"]


def test_mode_1_always_says_yes():
    vm = VmCommit(1000, overcommit_memory=1)
    assert vm.vm_enough_memory(10**9) and vm.committed_as == 10**9


def test_mode_2_charges_first_and_needs_to_stay_strictly_below_allowed():
    vm = VmCommit(1000, 100, overcommit_memory=2, admin_reserve_kbytes=40,
                  user_reserve_kbytes=400)
    assert vm.commit_limit == 600
    # allowed = 600 - 10 (admin, non-root) - min(total_vm/32, 100) = 590 - 3 for total_vm 96
    assert vm.vm_enough_memory(586, total_vm=96)        # 586 < 587
    assert not vm.vm_enough_memory(1, total_vm=96)      # 587 is not < 587
    assert vm.vm_enough_memory(1, total_vm=96, cap_sys_admin=True)   # root may use the reserve
    assert vm.committed_as == 587


def test_decisions_are_events_and_bad_input_is_refused():
    vm = VmCommit(1000)
    with Collect(vm.events) as seen:
        vm.vm_enough_memory(10)
    assert seen[0].kind == "overcommit" and "yes" in seen[0].text
    with pytest.raises(BadRequest):
        vm.overcommit_memory = 3
    with pytest.raises(BadRequest):
        vm.vm_enough_memory(-1)
    assert "OVERCOMMIT_GUESS" in vm.describe()


# -- kmm overcommit -----------------------------------------------------------------------------
def test_kmm_overcommit_on_the_snapshot(capsys, snapshot_dir):
    from kmmlib.cli import main

    assert main(["overcommit", "--from", str(snapshot_dir)]) == 0
    out, err = capsys.readouterr()
    assert "= 3085510 pages = 12342040 kB    (meminfo: 12342040 kB, equal)" in out
    assert "default overcommit_ratio = 50" in err
    assert main(["overcommit", "--json", "--from", str(snapshot_dir)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["commit_limit_kb"] == data["meminfo_commit_limit_kb"] == 12342040
    assert data["match"] is True and data["committed_as_kb"] == 47076


def test_kmm_overcommit_reads_sysctls_beside_the_copies(tmp_path, snapshot_dir):
    (tmp_path / "meminfo").write_text((snapshot_dir / "meminfo").read_text())
    for name, value in (("overcommit_memory", 2), ("overcommit_ratio", 80),
                        ("overcommit_kbytes", 0)):
        (tmp_path / name).write_text(f"{value}\n")
    out = subprocess.run([sys.executable, "-m", "kmmlib", "overcommit", "--json", "--from",
                          str(tmp_path)], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    assert data["overcommit_memory"] == 2 and data["mode_name"] == "OVERCOMMIT_NEVER"
    assert data["commit_limit_kb"] == 6171021 * 80 // 100 * 4
    assert data["match"] is False and out.stderr == ""
