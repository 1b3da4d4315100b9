"""kmalloc's size classes against a real kernel: every kmalloc event of the bundled kmem trace
(kmmlib/data/kmalloc_seen.txt, extracted from ../shared/data/kmem-trace.txt.xz) round-trips
through ``kmm kmalloc``, and every cache it names exists in the snapshot's slabinfo with that
object size; then the simulator's kmalloc/kfree/ksize, kmalloc_large and kmalloc(0)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kmmlib.cli import main
from kmmlib.errors import BadRequest
from kmmlib.mm import page_flags as pf
from kmmlib.procfs.slabinfo import parse_slabinfo
from kmmlib.slab.kmalloc import (
    KMALLOC_SIZE_INDEX,
    ZERO_SIZE_PTR,
    kmalloc_cache_names,
    kmalloc_class,
    kmalloc_index,
    kmalloc_size_roundup,
    kmalloc_slab_index,
    kmalloc_type,
)
from kmmlib.slab.slub import Slub, make_zone

ROOT = Path(__file__).resolve().parent.parent
SEEN = Path(__file__).parent.parent / "kmmlib" / "data" / "kmalloc_seen.txt"
SNAP = {r.name: r for r in parse_slabinfo(
    (ROOT / "kmmlib" / "data" / "snapshot" / "slabinfo").read_text())}


def seen_events() -> list[tuple[int, int, str, bool, int]]:
    out = []
    for line in SEEN.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        req, alloc, gfp, accounted, count = line.split()
        out.append((int(req), int(alloc), gfp, accounted == "true", int(count)))
    return out


def test_the_extract_covers_the_whole_trace():
    events = seen_events()
    assert sum(e[-1] for e in events) == 9519        # every kmalloc event of the trace
    assert len(events) == 120


def test_every_traced_kmalloc_round_trips(capsys):
    """The contract: for every kmalloc event, ``kmm kmalloc`` gives the trace's bytes_alloc."""
    by_gfp: dict[str, list[tuple[int, int]]] = {}
    for req, alloc, gfp, _, _ in seen_events():
        by_gfp.setdefault(gfp, []).append((req, alloc))
    for gfp, pairs in by_gfp.items():
        assert main(["kmalloc", *(str(r) for r, _ in pairs), "--gfp", gfp, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert [(r["bytes_req"], r["bytes_alloc"]) for r in rows] == pairs, gfp
        for r in rows:
            assert set(r) >= {"bytes_req", "cache", "bytes_alloc"}


def test_traced_caches_exist_in_the_real_slabinfo():
    """The trace does not name kmalloc caches; the names we predict must be caches of the same
    kernel (its slabinfo) whose objects have exactly the traced bytes_alloc."""
    for req, alloc, gfp, accounted, _ in seen_events():
        k = kmalloc_class(req, gfp)
        assert k.cache in SNAP, (req, gfp)
        assert SNAP[k.cache].objsize == alloc
        # accounted=true in the event means __GFP_ACCOUNT: a cg cache unless the allocation is
        # reclaimable (kmalloc-rcl-* wins over kmalloc-cg-*).
        if "__GFP_RECLAIMABLE" in gfp:
            assert k.cache.startswith("kmalloc-rcl-")
        elif accounted:
            assert k.cache.startswith("kmalloc-cg-")
        else:
            assert k.cache.startswith("kmalloc-") and "-cg-" not in k.cache


def test_every_kmalloc_cache_name_is_in_the_real_slabinfo():
    names = kmalloc_cache_names()
    assert len(names) == 52 and all(n in SNAP for n in names)
    assert all(SNAP[n].objsize == kmalloc_size_roundup(
        int(n.rsplit("-", 1)[1].replace("k", "")) * (1024 if n.endswith("k") else 1))
        for n in names)


@pytest.mark.parametrize("size, expected", [
    (1, 8), (8, 8), (9, 16), (16, 16), (17, 32), (33, 64), (64, 64), (65, 96), (96, 96),
    (97, 128), (128, 128), (129, 192), (192, 192), (193, 256), (257, 512), (513, 1024),
    (1025, 2048), (4096, 4096), (4097, 8192), (8192, 8192), (8193, 16384), (16385, 32768),
    (1 << 20, 1 << 20), (4 << 20, 4 << 20), (0, 0), ((4 << 20) + 1, (4 << 20) + 1),
])
def test_kmalloc_size_roundup(size, expected):
    assert kmalloc_size_roundup(size) == expected


def test_compile_time_and_runtime_indices_agree():
    for size in range(1, 8193):
        assert kmalloc_index(size) == kmalloc_slab_index(size), size
    assert len(KMALLOC_SIZE_INDEX) == 24
    assert kmalloc_index(0) == 0
    # __kmalloc_index()'s table ends at 2 MiB (index 21), below KMALLOC_MAX_SIZE (4 MiB).
    assert kmalloc_index(2 << 20) == 21
    for size in ((2 << 20) + 1, 3 << 20, 8 << 20):
        with pytest.raises(BadRequest, match="ends at 2 MiB"):
            kmalloc_index(size)
    with pytest.raises(BadRequest):
        kmalloc_slab_index(8193)


def test_kmalloc_type_priority():
    assert kmalloc_type("GFP_KERNEL") == 0
    assert kmalloc_class(100, "GFP_KERNEL|__GFP_RECLAIMABLE").cache == "kmalloc-rcl-128"
    assert kmalloc_class(100, "GFP_KERNEL_ACCOUNT").cache == "kmalloc-cg-128"
    assert kmalloc_class(100, "GFP_KERNEL_ACCOUNT|__GFP_RECLAIMABLE").cache == "kmalloc-rcl-128"
    assert kmalloc_class(100, "GFP_DMA|__GFP_RECLAIMABLE").cache == "dma-kmalloc-128"
    assert kmalloc_class(100, "GFP_DMA32").cache == "kmalloc-128"     # no DMA32 family


def test_large_zero_and_too_large():
    big = kmalloc_class(9000)
    assert (big.cache, big.bytes_alloc, big.order, big.waste) == (None, 16384, 2, 7384)
    zero = kmalloc_class(0)
    assert (zero.cache, zero.bytes_alloc) == (None, 0)
    huge = kmalloc_class((4 << 20) + 1)
    assert huge.bytes_alloc is None and "NULL" in huge.note
    with pytest.raises(BadRequest):
        kmalloc_class(-1)


def test_kmm_kmalloc_text_and_errors(capsys):
    assert main(["kmalloc", "100", "4k", "9000"]) == 0
    out = capsys.readouterr().out
    assert "kmalloc-128" in out and "28 (22%)" in out and "kmalloc_large" in out
    assert main(["kmalloc", "ten"]) == 2
    assert "not a size" in capsys.readouterr().err
    assert main(["kmalloc", "8", "--gfp", "GFP_BOGUS"]) == 2


def test_python_dash_m_kmm_kmalloc():
    run = subprocess.run([sys.executable, "-m", "kmmlib", "kmalloc", "60", "--gfp",
                          "GFP_NOFS|__GFP_ZERO", "--json"], capture_output=True, text=True,
                         check=True)
    assert json.loads(run.stdout)[0] == {"bytes_req": 60, "cache": "kmalloc-64",
                                         "bytes_alloc": 64, "waste": 4,
                                         "gfp": "GFP_NOFS|__GFP_ZERO"}


# -- the simulator's kmalloc ---------------------------------------------------------------

@pytest.fixture()
def slub() -> Slub:
    return Slub(make_zone(4096), nr_cpus=2)


def test_model_kmalloc_uses_the_predicted_cache(slub):
    from kmmlib.events import Collect

    for req, alloc, gfp, _, _ in seen_events()[::7]:
        with Collect(slub.events) as seen:
            p = slub.kmalloc(req, gfp)
        ev = [e for e in seen if e.kind == "kmalloc"][-1]
        assert (ev.data["bytes_req"], ev.data["bytes_alloc"]) == (req, alloc)
        assert ev.data["cache"] == kmalloc_class(req, gfp).cache
        assert slub.ksize(p) == alloc
    slub.check()


def test_kmalloc_zero_and_kfree_null(slub):
    assert slub.kmalloc(0) == ZERO_SIZE_PTR
    assert slub.ksize(ZERO_SIZE_PTR) == 0
    slub.kfree(ZERO_SIZE_PTR)
    slub.kfree(None)
    slub.kfree(0)


def test_kmalloc_large_takes_whole_pages_and_gives_them_back(slub):
    zone = slub.pages
    before = zone.nr_free_pages
    p = slub.kmalloc(9000)
    pfn = slub.virt_to_pfn(p)
    assert zone.nr_free_pages == before - 4 and slub.ksize(p) == 16384
    assert zone.mem_map.page_type[zone.mem_map.index(pfn)] >> 24 == pf.PGTY_large_kmalloc
    assert zone.mem_map.test_flag(pfn, pf.PG_head)        # a compound page (__GFP_COMP)
    assert slub.meminfo()["SUnreclaim"] >= 16
    with pytest.raises(BadRequest):
        slub.kfree(p + 4096)                             # not the start of the block
    slub.kfree(p)
    assert zone.nr_free_pages == before
    assert slub.kmalloc(5 << 20) is None and "MAX_PAGE_ORDER" in slub.dmesg[-1]


def test_kfree_of_a_foreign_address(slub):
    with pytest.raises(BadRequest):
        slub.kfree(slub.page_address(slub.pages.zone_end_pfn - 1))
    with pytest.raises(BadRequest):
        slub.kfree(12345)


def test_kzalloc_zeroes_and_kmalloc_does_not(slub):
    p = slub.kmalloc(64)
    slub.write(p, b"\xff" * 64)
    slub.kfree(p)
    q = slub.kmalloc(64)              # the same object again (LIFO), not cleared …
    data = slub.read(q, 64)
    assert q == p
    assert data[:32] == b"\xff" * 32 and data[40:] == b"\xff" * 24
    # … but for the free pointer SLUB stored in its middle (offset 64 / 2 = 32) while it was
    # free: the address of the next free object of the slab.
    fp = int.from_bytes(data[32:40], "little")
    assert slub.virt_to_pfn(fp) == slub.virt_to_pfn(q) and fp != q
    slub.kfree(q)
    z = slub.kzalloc(64)
    assert z == p and slub.read(z, 64) == bytes(64)


def test_kmalloc_families_use_their_caches(slub):
    rcl = slub.kmalloc(100, "GFP_KERNEL|__GFP_RECLAIMABLE")
    cg = slub.kmalloc(100, "GFP_KERNEL_ACCOUNT")
    assert slub._cache_of_object(rcl).name == "kmalloc-rcl-128"
    assert slub._cache_of_object(cg).name == "kmalloc-cg-128"
    assert slub.meminfo()["SReclaimable"] == 4          # one reclaimable slab page
    # A single Normal zone has no ZONE_DMA: dma-kmalloc gets no slab, as on a machine
    # without one.
    assert slub.kmalloc(100, "GFP_DMA") is None
