"""SLUB's arithmetic against the real kernel: ``calculate_order()`` on every slabinfo row (the
bundled snapshot's and the live machine's), ``calculate_sizes()`` on real caches whose object
size and slot size the kmem trace printed, and the ≤ 6.6 algorithm against the 6.7+ one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kmmlib.errors import BadRequest
from kmmlib.procfs.slabinfo import parse_slabinfo
from kmmlib.slab import flags as F
from kmmlib.slab.calculate import (
    FREEPTR_OFFSET_CACHES,
    calculate_alignment,
    calculate_order,
    calculate_order_legacy,
    calculate_sizes,
    explain_order,
    get_order,
    min_objects_for,
    oo_make,
    slab_shape,
)

ROOT = Path(__file__).resolve().parent.parent
SNAP_ROWS = parse_slabinfo((ROOT / "kmmlib" / "data" / "snapshot" / "slabinfo").read_text())


@pytest.mark.parametrize("row", SNAP_ROWS, ids=lambda r: r.name)
def test_every_snapshot_row(row):
    assert slab_shape(row.objsize, 2) == (row.objperslab, row.pagesperslab)


def test_every_live_row():
    p = Path("/proc/slabinfo")
    if not p.exists() or not os.access(p, os.R_OK):
        pytest.skip("/proc/slabinfo missing or root-only here")
    present = Path("/sys/devices/system/cpu/present").read_text().strip()
    ncpu = sum(int(b) - int(a) + 1 for a, _, b in
               (part.partition("-") if "-" in part else (part, "-", part)
                for part in present.split(",")))
    rows = parse_slabinfo(p.read_text())
    wrong = [r.name for r in rows if slab_shape(r.objsize, ncpu) != (r.objperslab,
                                                                      r.pagesperslab)]
    assert not wrong


SYS_SLAB = Path("/sys/kernel/slab")
# The sysfs files that show a cache's flags (show_slab_flag attributes in mm/slub.c).
SYSFS_FLAGS = {"hwcache_align": F.SLAB_HWCACHE_ALIGN, "destroy_by_rcu": F.SLAB_TYPESAFE_BY_RCU,
               "poison": F.SLAB_POISON, "red_zone": F.SLAB_RED_ZONE,
               "store_user": F.SLAB_STORE_USER, "cache_dma": F.SLAB_CACHE_DMA,
               "reclaim_account": F.SLAB_RECLAIM_ACCOUNT,
               "sanity_checks": F.SLAB_CONSISTENCY_CHECKS}


def test_calculate_sizes_on_every_live_cache():
    """Every cache of the live kernel's /sys/kernel/slab (aliases of merged caches aside):
    calculate_sizes() from its object_size, align, flags and constructor gives its slab_size,
    order and objs_per_slab."""
    if not SYS_SLAB.is_dir():
        pytest.skip("no /sys/kernel/slab here (not Linux, or not SLUB)")
    present = Path("/sys/devices/system/cpu/present").read_text().strip()
    ncpu = sum(int(b) - int(a) + 1 for a, _, b in
               (part.partition("-") if "-" in part else (part, "-", part)
                for part in present.split(",")))
    wrong, checked = [], 0
    for d in sorted(SYS_SLAB.iterdir()):
        if d.is_symlink():
            continue
        try:
            read = {f: (d / f).read_text().strip() for f in
                    ("object_size", "align", "slab_size", "order", "objs_per_slab", "ctor",
                     *SYSFS_FLAGS)}
        except OSError:                     # a file root-only here, or the cache just went
            continue
        flags = sum(bit for f, bit in SYSFS_FLAGS.items() if read[f] == "1")
        if d.name.startswith(("kmalloc", "dma-kmalloc")):
            flags |= F.SLAB_KMALLOC
        lay = calculate_sizes(int(read["object_size"]), flags, int(read["align"]),
                              ctor=bool(read["ctor"]), nr_cpus=ncpu,
                              freeptr_offset=0 if d.name in FREEPTR_OFFSET_CACHES else None)
        checked += 1
        if (lay.size, lay.order, lay.objects) != (int(read["slab_size"]), int(read["order"]),
                                                  int(read["objs_per_slab"])):
            wrong.append((d.name, (lay.size, lay.order, lay.objects), read))
    if not checked:
        pytest.skip("/sys/kernel/slab is not readable here")
    assert not wrong


def test_min_objects_by_cpu_count():
    assert [min_objects_for(n) for n in (1, 2, 3, 4, 7, 8, 16, 64, 127)] == \
        [8, 12, 12, 16, 16, 20, 24, 32, 32]
    assert min_objects_for(1, nr_cpu_ids=8) == 20     # "don't trust the number if it's just 1"
    assert min_objects_for(4, slub_min_objects=5) == 5
    with pytest.raises(BadRequest):
        min_objects_for(0)


@pytest.mark.parametrize("cpus", [1, 2, 3, 4, 8, 16, 32, 64, 128])
def test_legacy_and_new_algorithms_agree(cpus):
    """6.7 rewrote calculate_order(); with the default tunables the orders are the same."""
    for size in range(8, 8193, 8):
        assert calculate_order(size, cpus) == calculate_order_legacy(size, cpus), size


def test_orders_never_exceed_slub_max_order_unless_one_object_needs_it():
    for size in range(8, 40000, 24):
        order = calculate_order(size, 4)
        assert order <= max(3, get_order(size))


def test_calculate_order_corner_cases():
    assert calculate_order(8, 2) == 0 and oo_make(0, 8) == 512
    assert calculate_order(5888, 2) == 3            # task_struct: 5 objects in 8 pages
    assert calculate_order(50000, 2) == get_order(50000) == 4
    assert calculate_order(4096, 2, slub_max_order=0) == 0
    with pytest.raises(BadRequest):
        calculate_order(0, 2)
    with pytest.raises(BadRequest, match="MAX_PAGE_ORDER"):
        calculate_order(8 << 20, 2)
    with pytest.raises(BadRequest):
        get_order(0)


def test_explain_order_ends_in_the_answer():
    text = explain_order(192, 2)
    assert "min_objects = 4 * (fls(2) + 1) = 12" in text
    assert text.splitlines()[-1].strip().startswith("→ order 0: 21 objects")
    assert "order 3: 4 objects" in explain_order(8192, 2)


# -- calculate_sizes() on real caches --------------------------------------------------------
# (cache, object_size = the trace's bytes_req, flags and ctor as the kernel source creates the
#  cache, s->size = the trace's bytes_alloc). Objects and pages per slab then come from the
# snapshot's slabinfo row of the same cache.
H, R, A, T = F.SLAB_HWCACHE_ALIGN, F.SLAB_RECLAIM_ACCOUNT, F.SLAB_ACCOUNT, F.SLAB_TYPESAFE_BY_RCU
REAL_CACHES = [
    # mm/rmap.c: SLAB_TYPESAFE_BY_RCU|SLAB_PANIC|SLAB_ACCOUNT, anon_vma_ctor
    ("anon_vma", 96, T | A, True, None, 104),
    # fs/ext4/super.c: SLAB_RECLAIM_ACCOUNT|SLAB_ACCOUNT, init_once
    ("ext4_inode_cache", 1120, R | A, True, None, 1128),
    # fs/inode.c: SLAB_RECLAIM_ACCOUNT|SLAB_PANIC|SLAB_ACCOUNT, init_once
    ("inode_cache", 616, R | A, True, None, 624),
    # lib/radix-tree.c: SLAB_PANIC|SLAB_RECLAIM_ACCOUNT, radix_tree_node_ctor
    ("radix_tree_node", 576, R, True, None, 584),
    # kernel/fork.c: SLAB_HWCACHE_ALIGN|SLAB_PANIC|SLAB_TYPESAFE_BY_RCU|SLAB_ACCOUNT, sighand_ctor
    ("sighand_cache", 2080, H | T | A, True, None, 2112),
    # kernel/fork.c: SLAB_HWCACHE_ALIGN|SLAB_PANIC|SLAB_ACCOUNT, no ctor
    ("mm_struct", 1568, H | A, False, None, 1600),
    # kernel/pid.c: KMEM_CACHE(pid, SLAB_HWCACHE_ALIGN|SLAB_PANIC|SLAB_ACCOUNT)
    ("pid", 184, H | A, False, None, 192),
    # fs/file_table.c: SLAB_TYPESAFE_BY_RCU|SLAB_HWCACHE_ALIGN|…, freeptr_offset in the object
    ("filp", 184, T | H | A, False, 0, 192),
    # net/socket.c: SLAB_HWCACHE_ALIGN|SLAB_RECLAIM_ACCOUNT|SLAB_ACCOUNT, init_once
    ("sock_inode_cache", 768, H | R | A, True, None, 832),
    # net/core/skbuff.c: SLAB_HWCACHE_ALIGN|SLAB_PANIC
    ("skbuff_head_cache", 224, H, False, None, 256),
    # fs/ext4/extents_status.c: KMEM_CACHE(extent_status, SLAB_RECLAIM_ACCOUNT)
    ("extent_status", 40, R, False, None, 40),
    # fs/buffer.c: KMEM_CACHE(buffer_head, SLAB_RECLAIM_ACCOUNT|SLAB_PANIC)
    ("buffer_head", 104, R, False, None, 104),
    # fs/dcache.c: names_cache, PATH_MAX, SLAB_HWCACHE_ALIGN|SLAB_PANIC
    ("names_cache", 4096, H, False, None, 4096),
    # fs/proc/inode.c: SLAB_RECLAIM_ACCOUNT|SLAB_ACCOUNT|SLAB_PANIC, init_once
    ("proc_inode_cache", 688, R | A, True, None, 696),
]
SNAP = {r.name: r for r in SNAP_ROWS}


@pytest.mark.parametrize("name, object_size, flags, ctor, freeptr, size", REAL_CACHES,
                         ids=[c[0] for c in REAL_CACHES])
def test_calculate_sizes_on_real_caches(name, object_size, flags, ctor, freeptr, size):
    layout = calculate_sizes(object_size, flags, ctor=ctor, nr_cpus=2, freeptr_offset=freeptr)
    assert layout.size == size
    row = SNAP[name]
    assert layout.size == row.objsize
    assert (layout.objects, 1 << layout.order) == (row.objperslab, row.pagesperslab)


def test_free_pointer_placement():
    mid = calculate_sizes(100)                       # inside, in the middle, word aligned
    assert (mid.offset, mid.size, mid.freeptr_outside) == (48, 104, False)
    with_ctor = calculate_sizes(100, ctor=True)      # the ctor's work must survive a free
    assert (with_ctor.offset, with_ctor.size, with_ctor.freeptr_outside) == (104, 112, True)
    poisoned = calculate_sizes(100, F.SLAB_POISON)   # so must the poison
    assert poisoned.offset == 104 and poisoned.object_poison
    assert not calculate_sizes(100, F.SLAB_POISON, ctor=True).object_poison


def test_debug_metadata_grows_the_slot():
    plain = calculate_sizes(64, F.SLAB_KMALLOC, 64)
    assert plain.size == 64
    full = calculate_sizes(64, F.SLAB_KMALLOC | F.DEBUG_DEFAULT_FLAGS, 64)
    # 64 object + 8 right red zone + 8 free pointer + 2×32 tracks + 4 orig size + 8 padding,
    # then a 64-byte left red zone (aligned to the cache's 64), rounded up to 64.
    assert (full.inuse, full.offset, full.red_left_pad, full.size) == (72, 72, 64, 256)
    assert full.orig_size_offset == 144 and full.track_offset == 80


def test_hwcache_alignment_halves_for_small_objects():
    assert calculate_alignment(F.SLAB_HWCACHE_ALIGN, 0, 20) == 32
    assert calculate_alignment(F.SLAB_HWCACHE_ALIGN, 0, 40) == 64
    assert calculate_alignment(F.SLAB_HWCACHE_ALIGN, 0, 8) == 8
    assert calculate_alignment(0, 0, 20) == 8
    assert calculate_alignment(0, 16, 20) == 16


def test_bad_geometry_is_refused():
    with pytest.raises(BadRequest):
        calculate_sizes(0)
    with pytest.raises(BadRequest):
        calculate_sizes(64, 0, 24)                  # align not a power of two
