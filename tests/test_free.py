"""``kmm free`` against real procps-ng ``free``: the snapshot's recorded outputs byte for byte,
the live machine's ``free``, and ``free`` run on hand-made meminfo files (bind-mounted over
/proc/meminfo in a private mount namespace) where rounding is delicate."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kmmlib.cli import main
from kmmlib.errors import BadRequest
from kmmlib.procfs.meminfo import parse_meminfo, render_meminfo
from kmmlib.userspace.free import free_columns, free_output, scale_size

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "kmmlib" / "data" / "snapshot"

# The recorded outputs beside the snapshot, made by procps-ng free from its own meminfo.
RECORDED = {
    "free.txt": [],
    "free-b.txt": ["-b"],
    "free-g.txt": ["-g"],
    "free-h.txt": ["-h"],
    "free-m.txt": ["-m"],
    "free-t.txt": ["-t"],
    "free-w.txt": ["-w"],
}
_KW = {"-b": {"exponent": 1}, "-g": {"exponent": 4}, "-h": {"human": True},
       "-m": {"exponent": 3}, "-t": {"total": True}, "-w": {"wide": True}}


@pytest.fixture(scope="module")
def snap_mi() -> dict[str, int]:
    return parse_meminfo((SNAPSHOT / "meminfo").read_text())


@pytest.mark.parametrize("name, opts", RECORDED.items())
def test_library_matches_recorded_free(snap_mi, name, opts):
    kw = _KW[opts[0]] if opts else {}
    assert free_output(snap_mi, **kw) == (SNAPSHOT / name).read_text()


@pytest.mark.parametrize("name, opts", RECORDED.items())
def test_kmm_free_matches_recorded_free(capsys, name, opts):
    assert main(["free", *opts, "--from", str(SNAPSHOT)]) == 0
    out = capsys.readouterr()
    assert out.out == (SNAPSHOT / name).read_text()
    assert out.err == ""      # a complete folder: no fallback notes


def test_python_dash_m_kmm_free():
    run = subprocess.run([sys.executable, "-m", "kmmlib", "free", "-h", "--from", str(SNAPSHOT)],
                         capture_output=True, text=True, check=True)
    assert run.stdout == (SNAPSHOT / "free-h.txt").read_text()


def test_columns_follow_procps4(snap_mi):
    c = free_columns(snap_mi)
    assert c["used"] == snap_mi["MemTotal"] - snap_mi["MemAvailable"]          # not total-free
    assert c["buff_cache"] == snap_mi["Buffers"] + snap_mi["Cached"] + snap_mi["SReclaimable"]
    assert c["buff_cache"] == c["buffers"] + c["cache"]


def test_lxc_and_old_kernel_fallbacks(snap_mi):
    lxc = dict(snap_mi, MemAvailable=snap_mi["MemTotal"] + 1)
    assert free_columns(lxc)["available"] == snap_mi["MemFree"]
    assert free_columns(lxc)["used"] == snap_mi["MemTotal"] - snap_mi["MemFree"]
    old = {k: v for k, v in snap_mi.items() if k != "MemAvailable"}   # kernels before 3.14
    assert free_columns(old)["available"] == snap_mi["MemFree"]


def test_json(capsys, snap_mi):
    import json
    assert main(["free", "--json", "--from", str(SNAPSHOT)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"] == snap_mi["MemTotal"] and data["unit"] == "KiB"
    assert data["used"] == free_columns(snap_mi)["used"]


def test_unit_options_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        main(["free", "-m", "-g", "--from", str(SNAPSHOT)])
    assert "not allowed with" in capsys.readouterr().err


def test_bad_exponent(snap_mi):
    with pytest.raises(BadRequest):
        free_output(snap_mi, exponent=9)


def test_c_integer_semantics():
    # Committed_AS above CommitLimit: procps subtracts unsigned longs and prints the wrap as a
    # signed number; C's division truncates toward zero.
    assert scale_size(-5) == "-5"
    assert scale_size(-5, si=True) == str(-(5 * 1024 // 1000))
    assert scale_size(-5, exponent=3) == "0"          # -5120/1048576 truncated is 0, not -1


# --- real procps-ng free ------------------------------------------------------------------

def _procps4() -> str | None:
    exe = shutil.which("free")
    if not exe:
        return None
    ver = subprocess.run([exe, "-V"], capture_output=True, text=True).stdout
    return exe if "procps-ng 4" in ver else None


FREE = _procps4()
OPTION_SETS = [[], ["-h"], ["-h", "--si"], ["-b"], ["-k"], ["-m"], ["-g"], ["--tebi"],
               ["--pebi"], ["--kilo"], ["--mega"], ["--giga"], ["--tera"], ["--peta"], ["--si"],
               ["-w"], ["-t"], ["-l"], ["-v"], ["-h", "-w", "-t", "-l", "-v"]]


def _kw(opts: list[str]) -> dict:
    units = {"-b": (1, False), "-k": (2, False), "-m": (3, False), "-g": (4, False),
             "--tebi": (5, False), "--pebi": (6, False), "--kilo": (2, True),
             "--mega": (3, True), "--giga": (4, True), "--tera": (5, True), "--peta": (6, True)}
    kw: dict = {"si": "--si" in opts, "human": "-h" in opts, "wide": "-w" in opts,
                "total": "-t" in opts, "lohi": "-l" in opts, "committed": "-v" in opts}
    for o in opts:
        if o in units:
            kw["exponent"], si = units[o]
            kw["si"] = kw["si"] or si
    return kw


def _can_bind_mount() -> bool:
    if FREE is None or os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c",
                            "mount --bind /proc/meminfo /proc/meminfo"], capture_output=True)
    return probe.returncode == 0


def _meminfo_cases() -> list[dict[str, int]]:
    """Meminfos where the rounding is delicate, plus seeded random ones."""
    snap = parse_meminfo((SNAPSHOT / "meminfo").read_text())
    cases = [snap]
    # (float)(bytes / 1024^i) and (float)(bytes / 1000^i) round differently from the double
    # at these sizes: 1.05 TB and just below 1.05 TiB (found by searching near x.x5 borders).
    for kb in (1025390625, 1127428916, 1127428915, 48828125, 1048572, 1048576, 10239, 10240,
               1023, 1024, 9, 10, 999, 1000, 10238976, 1073741823, 1099511627775):
        cases.append(dict(snap, MemTotal=kb, MemFree=kb, MemAvailable=kb, Shmem=kb // 3,
                          Buffers=kb // 7, Cached=kb // 5, SReclaimable=kb // 11))
    cases.append(dict(snap, Committed_AS=snap["CommitLimit"] + 12345))           # Comm wraps
    cases.append(dict(snap, MemAvailable=snap["MemTotal"] + 1))                   # lxc
    cases.append({k: v for k, v in snap.items() if k != "MemAvailable"})          # < 3.14
    cases.append(dict(snap, SwapTotal=8388604, SwapFree=8000000))                 # swap used
    cases.append(dict(snap, HighTotal=2000000, HighFree=1500000, LowTotal=800000,
                      LowFree=100000))                                            # 32-bit
    rng = random.Random(20251125)
    for _ in range(20):
        total = rng.choice([rng.randrange(1 << 10, 1 << 20), rng.randrange(1 << 20, 1 << 36)])
        free = rng.randrange(0, total)
        cases.append(dict(snap, MemTotal=total, MemFree=free,
                          MemAvailable=rng.randrange(free, total + 1),
                          Buffers=rng.randrange(0, 1 << 20), Cached=rng.randrange(0, total),
                          SReclaimable=rng.randrange(0, 1 << 22), Shmem=rng.randrange(0, 1 << 24),
                          SwapTotal=(st := rng.choice([0, rng.randrange(1, 1 << 30)])),
                          SwapFree=rng.randrange(0, st + 1),
                          CommitLimit=rng.randrange(0, 1 << 34),
                          Committed_AS=rng.randrange(0, 1 << 34)))
    return cases


@pytest.mark.skipif(not _can_bind_mount(),
                    reason="needs root, unshare and procps-ng 4 free to run free on test data")
def test_real_free_on_handmade_meminfo(tmp_path):
    cases = _meminfo_cases()
    script = ["set -e"]
    for i, mi in enumerate(cases):
        (tmp_path / f"m{i}").write_text(render_meminfo(mi))
        script.append(f"mount --bind {tmp_path}/m{i} /proc/meminfo")
        for j, opts in enumerate(OPTION_SETS):
            script.append(f"{FREE} {' '.join(opts)} > {tmp_path}/out{i}_{j}")
        script.append("umount /proc/meminfo")
    subprocess.run(["unshare", "-m", "sh", "-c", "\n".join(script)], check=True)
    checked = 0
    for i, mi in enumerate(cases):
        for j, opts in enumerate(OPTION_SETS):
            real = (tmp_path / f"out{i}_{j}").read_text()
            assert free_output(mi, **_kw(opts)) == real, (opts, render_meminfo(mi))
            checked += 1
    assert checked == len(cases) * len(OPTION_SETS) > 800


@pytest.mark.skipif(FREE is None or not Path("/proc/meminfo").exists(),
                    reason="no procps-ng 4 free or no /proc/meminfo on this machine")
@pytest.mark.parametrize("opts", [[], ["-h"], ["-w", "-t"], ["-m", "-l"]])
def test_live_free(opts, tmp_path):
    # /proc/meminfo moves between two reads: read, run free, read again, and compare only when
    # both reads agree, so free saw the same numbers. (Not -v: free's own process adds to the
    # Committed_AS it reads, which our two reads never see.)
    for _ in range(50):
        before = Path("/proc/meminfo").read_text()
        real = subprocess.run([FREE, *opts], capture_output=True, text=True, check=True).stdout
        if Path("/proc/meminfo").read_text() == before:
            assert free_output(parse_meminfo(before), **_kw(opts)) == real
            return
    # Never still: hold one read of the live meminfo still under free (a bind mount), and
    # compare exactly — a comparison within a tolerance would let wrong figures through.
    if not _can_bind_mount():
        pytest.skip("/proc/meminfo moved on every read, and holding it still needs root")
    (tmp_path / "meminfo").write_text(before)
    real = subprocess.run(["unshare", "-m", "sh", "-c",
                           f"mount --bind {tmp_path}/meminfo /proc/meminfo && "
                           f"{FREE} {' '.join(opts)}"],
                          capture_output=True, text=True, check=True).stdout
    assert free_output(parse_meminfo(before), **_kw(opts)) == real


def test_malformed_meminfo_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "meminfo").write_text("MemTotal:       1000 kB\nMemFree:   lots kB\n")
    assert main(["free", "--from", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kmm free: meminfo line 2:") and "Traceback" not in err
