"""``SLAB_*`` cache flags (include/linux/slab.h, Linux 6.18) and the ``slab_debug=`` letters.

Since 6.9 the flags are bits of ``enum _slab_flag_bits``, numbered in order with the optional
ones present only when configured. The numbers here are those of a config with MEMCG, KFENCE
and SLAB_OBJ_EXT and without DEBUG_OBJECTS, FAILSLAB or KASAN_GENERIC (the bundled snapshot's
kind of kernel); they are internal to the kernel and nothing in the course depends on them,
only the names do.
"""

from __future__ import annotations

from kmmlib.errors import BadRequest

_BITS = ("CONSISTENCY_CHECKS", "RED_ZONE", "POISON", "KMALLOC", "HWCACHE_ALIGN", "CACHE_DMA",
         "CACHE_DMA32", "STORE_USER", "PANIC", "TYPESAFE_BY_RCU", "TRACE", "NOLEAKTRACE",
         "NO_MERGE", "ACCOUNT", "NO_USER_FLAGS", "SKIP_KFENCE", "RECLAIM_ACCOUNT",
         "OBJECT_POISON", "CMPXCHG_DOUBLE", "NO_OBJ_EXT")
FLAGS: dict[str, int] = {f"SLAB_{name}": 1 << bit for bit, name in enumerate(_BITS)}

SLAB_CONSISTENCY_CHECKS = FLAGS["SLAB_CONSISTENCY_CHECKS"]  # F: check every alloc and free
SLAB_RED_ZONE = FLAGS["SLAB_RED_ZONE"]                      # Z: guard bytes around objects
SLAB_POISON = FLAGS["SLAB_POISON"]                          # P: fill free objects with 0x6b
SLAB_KMALLOC = FLAGS["SLAB_KMALLOC"]                        # a kmalloc-* cache
SLAB_HWCACHE_ALIGN = FLAGS["SLAB_HWCACHE_ALIGN"]            # align objects to cache lines
SLAB_CACHE_DMA = FLAGS["SLAB_CACHE_DMA"]                    # slabs from ZONE_DMA
SLAB_CACHE_DMA32 = FLAGS["SLAB_CACHE_DMA32"]                # slabs from ZONE_DMA32
SLAB_STORE_USER = FLAGS["SLAB_STORE_USER"]                  # U: remember who alloc'd/freed
SLAB_PANIC = FLAGS["SLAB_PANIC"]                            # panic if creation fails
SLAB_TYPESAFE_BY_RCU = FLAGS["SLAB_TYPESAFE_BY_RCU"]        # slab pages freed after RCU
SLAB_TRACE = FLAGS["SLAB_TRACE"]                            # T: print every alloc/free
SLAB_NOLEAKTRACE = FLAGS["SLAB_NOLEAKTRACE"]
SLAB_NO_MERGE = FLAGS["SLAB_NO_MERGE"]                      # never merge with another cache
SLAB_ACCOUNT = FLAGS["SLAB_ACCOUNT"]                        # charge objects to the memcg
SLAB_NO_USER_FLAGS = FLAGS["SLAB_NO_USER_FLAGS"]
SLAB_SKIP_KFENCE = FLAGS["SLAB_SKIP_KFENCE"]
SLAB_RECLAIM_ACCOUNT = FLAGS["SLAB_RECLAIM_ACCOUNT"]        # shrinkable: SReclaimable
SLAB_OBJECT_POISON = FLAGS["SLAB_OBJECT_POISON"]            # internal: __OBJECT_POISON
SLAB_CMPXCHG_DOUBLE = FLAGS["SLAB_CMPXCHG_DOUBLE"]
SLAB_NO_OBJ_EXT = FLAGS["SLAB_NO_OBJ_EXT"]

# mm/slab.h
SLAB_DEBUG_FLAGS = (SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER | SLAB_TRACE
                    | SLAB_CONSISTENCY_CHECKS)
# mm/slab_common.c: flags that forbid merging, and flags two caches must share to merge.
SLAB_NEVER_MERGE = (SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER | SLAB_TRACE
                    | SLAB_TYPESAFE_BY_RCU | SLAB_NOLEAKTRACE | SLAB_NO_MERGE)
SLAB_MERGE_SAME = SLAB_RECLAIM_ACCOUNT | SLAB_CACHE_DMA | SLAB_CACHE_DMA32 | SLAB_ACCOUNT
# mm/slub.c: slab_debug with no letters means F, Z, P and U.
DEBUG_DEFAULT_FLAGS = SLAB_CONSISTENCY_CHECKS | SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER

DEBUG_LETTERS = {"F": SLAB_CONSISTENCY_CHECKS, "Z": SLAB_RED_ZONE, "P": SLAB_POISON,
                 "U": SLAB_STORE_USER, "T": SLAB_TRACE}


def parse_slab_debug(letters: str) -> int:
    """``parse_slub_debug_flags()``: the letters of ``slab_debug=`` (``slub_debug=`` before
    6.8) as flags: ``"FZPU"``; ``""`` means all four, as a bare ``slab_debug`` does; ``"-"``
    switches debugging off. Letters are case-insensitive. (A, failslab, and O, which skips
    caches whose order would grow, are not modelled.)"""
    if not isinstance(letters, str):
        raise BadRequest(f"slab_debug: expected letters such as 'FZPU', not {letters!r}")
    if letters == "":
        return DEBUG_DEFAULT_FLAGS
    out = 0
    for ch in letters.upper():
        if ch == "-":
            out = 0
        elif ch in DEBUG_LETTERS:
            out |= DEBUG_LETTERS[ch]
        else:
            raise BadRequest(f"slab_debug option '{ch}' unknown (use F, Z, P, U, T or -)")
    return out


def parse_flags(value: int | str) -> int:
    """A flag mask, or names joined by ``|``: ``"SLAB_HWCACHE_ALIGN|SLAB_ACCOUNT"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise BadRequest(f"slab flags: expected a mask or SLAB_* names, not {value!r}")
    out = 0
    for part in filter(None, (p.strip() for p in value.split("|"))):
        name = part if part.startswith("SLAB_") else f"SLAB_{part}"
        if name not in FLAGS:
            raise BadRequest(f"unknown slab flag {part!r}; known: {', '.join(FLAGS)}")
        out |= FLAGS[name]
    return out


def format_flags(flags: int) -> str:
    """The names of the set flags joined by ``|`` (``0`` when none)."""
    names = [n for n, m in FLAGS.items() if flags & m]
    return "|".join(names) or "0"


def debug_letters(flags: int) -> str:
    """The ``slab_debug=`` letters that give these flags' debug options (``""`` for none)."""
    return "".join(ch for ch, m in DEBUG_LETTERS.items() if flags & m)
