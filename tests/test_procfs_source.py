"""Where /proc files come from: live, a folder, KMMLIB_PROC_ROOT, and the snapshot fallback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kmmlib.procfs.source import SNAPSHOT_DIR, ProcFileMissing, ProcSource, snapshot


def test_folder_of_copies_is_read_without_fallback(snapshot_dir, tmp_path):
    (tmp_path / "meminfo").write_text("MemTotal:       1000 kB\n")
    src = ProcSource(tmp_path)
    assert src.read("meminfo") == "MemTotal:       1000 kB\n"
    assert src.origin("meminfo") == str(tmp_path / "meminfo")
    assert src.notes() == [] and not src.fell_back("meminfo")


def test_missing_file_falls_back_to_the_snapshot_and_says_so(tmp_path):
    src = ProcSource(tmp_path)  # an empty folder, as on macOS
    text = src.read("pagetypeinfo")
    assert text == (SNAPSHOT_DIR / "pagetypeinfo").read_text()
    assert src.fell_back("pagetypeinfo")
    [note] = src.notes()
    assert "pagetypeinfo: not found" in note and "bundled snapshot" in note
    src.read("pagetypeinfo")  # the same note is not repeated
    assert len(src.notes()) == 1


def test_unreadable_file_falls_back(tmp_path, monkeypatch):
    # Root can read anything, so simulate a non-root user's EACCES on the one file.
    (tmp_path / "slabinfo").write_text("secret")
    real = Path.read_bytes

    def deny(self, *a, **k):
        if self == tmp_path / "slabinfo":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_bytes", deny)
    src = ProcSource(tmp_path)
    assert src.read("slabinfo").startswith("slabinfo - version: 2.1")
    assert "permission denied" in src.notes()[0]


def test_no_fallback_raises(tmp_path):
    with pytest.raises(ProcFileMissing, match="meminfo: not found"):
        ProcSource(tmp_path, fallback=False).read("meminfo")
    with pytest.raises(ProcFileMissing, match="bundled snapshot has no"):
        ProcSource(tmp_path).read("no-such-file")


def test_env_var_points_notebooks_elsewhere(tmp_path, monkeypatch):
    (tmp_path / "nproc").write_text("64\n")
    monkeypatch.setenv("KMMLIB_PROC_ROOT", str(tmp_path))
    src = ProcSource()
    assert src.root == tmp_path and src.read("nproc") == "64\n"


def test_live_sysctls_live_under_sys_vm(monkeypatch):
    monkeypatch.delenv("KMMLIB_PROC_ROOT", raising=False)
    src = ProcSource()
    assert src.live
    assert src.path("min_free_kbytes") == Path("/proc/sys/vm/min_free_kbytes")
    assert src.path("zoneinfo") == Path("/proc/zoneinfo")
    assert int(src.read("nproc")) == (os.cpu_count() or 1)


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="no /proc on this machine")
def test_live_meminfo_is_read_live(monkeypatch):
    monkeypatch.delenv("KMMLIB_PROC_ROOT", raising=False)
    src = ProcSource()
    assert src.read("meminfo").startswith("MemTotal:")
    assert src.origin("meminfo") == "/proc/meminfo" and src.notes() == []


def test_snapshot_source_has_every_file_the_design_names():
    src = snapshot()
    for name in ("meminfo", "zoneinfo", "buddyinfo", "pagetypeinfo", "slabinfo", "vmstat",
                 "min_free_kbytes", "watermark_scale_factor", "lowmem_reserve_ratio", "nproc"):
        assert src.read(name), name
    assert src.notes() == []
