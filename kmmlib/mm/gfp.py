"""GFP flags: what an allocation may do, and where its memory may come from.

Every page or slab allocation passes a ``gfp_t`` mask (``include/linux/gfp_types.h``): which
zones it may use (``__GFP_DMA``, ``__GFP_DMA32``, ``__GFP_HIGHMEM``, ``__GFP_MOVABLE``), which
pageblocks it belongs in (``__GFP_MOVABLE``, ``__GFP_RECLAIMABLE``), whether it may sleep and
reclaim (``__GFP_DIRECT_RECLAIM``, ``__GFP_KSWAPD_RECLAIM``), start I/O (``__GFP_IO``) or call
into filesystems (``__GFP_FS``), and how hard to try (``__GFP_NORETRY``, ``__GFP_RETRY_MAYFAIL``,
``__GFP_NOFAIL``). Code rarely spells bits out; it uses the composites ``GFP_KERNEL``,
``GFP_ATOMIC``, ``GFP_HIGHUSER_MOVABLE`` …

Bit numbers are Linux 6.18's: since 6.10 the bits are an enum, so the optional ones (KASAN
hardware tags, lockdep, slab object extensions) are numbered in sequence after bit 23 and move
when an option is off. :class:`GfpConfig` chooses them; the default is the bundled snapshot's
kernel (x86_64 with ``CONFIG_SLAB_OBJ_EXT``: ``__GFP_NO_OBJ_EXT`` is bit 24).

:func:`format_gfp` prints a mask exactly as the ``kmem:mm_page_alloc`` tracepoint does
(``show_gfp_flags`` in ``include/trace/events/mmflags.h`` through ``trace_print_flags_seq``),
and :func:`parse_gfp` reads such a string back.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from kmmlib.errors import BadRequest, ParseError

# Bits 0..23 (include/linux/gfp_types.h, enum ___GFP_*_BIT). Bit 9 is unused since 6.3
# (it was ___GFP_ATOMIC).
_FIXED_BITS = ("DMA", "HIGHMEM", "DMA32", "MOVABLE", "RECLAIMABLE", "HIGH", "IO", "FS", "ZERO",
               None, "DIRECT_RECLAIM", "KSWAPD_RECLAIM", "WRITE", "NOWARN", "RETRY_MAYFAIL",
               "NOFAIL", "NORETRY", "MEMALLOC", "COMP", "NOMEMALLOC", "HARDWALL", "THISNODE",
               "ACCOUNT", "ZEROTAGS")


@dataclass(frozen=True)
class GfpConfig:
    """The options that add GFP bits after bit 23, in the enum's order."""

    kasan_hw_tags: bool = False     # CONFIG_KASAN_HW_TAGS: __GFP_SKIP_ZERO, __GFP_SKIP_KASAN
    lockdep: bool = False           # CONFIG_LOCKDEP: __GFP_NOLOCKDEP
    slab_obj_ext: bool = True       # CONFIG_SLAB_OBJ_EXT (MEMCG or MEM_ALLOC_PROFILING)

    def bit_names(self) -> tuple[str | None, ...]:
        names: list[str | None] = list(_FIXED_BITS)
        if self.kasan_hw_tags:
            names += ["SKIP_ZERO", "SKIP_KASAN"]
        if self.lockdep:
            names.append("NOLOCKDEP")
        if self.slab_obj_ext:
            names.append("NO_OBJ_EXT")
        return tuple(names)


SNAPSHOT_CONFIG = GfpConfig()


class Gfp:
    """Every ``__GFP_*`` bit and ``GFP_*`` composite for one :class:`GfpConfig`.

    ``g = Gfp(); g.GFP_KERNEL`` is 0xcc0. ``g.bits`` maps ``__GFP_X`` to its bit number,
    ``g.masks`` every known name (singles and composites) to its mask, and ``g.table`` is the
    tracepoint's print table in order.
    """

    def __init__(self, config: GfpConfig = SNAPSHOT_CONFIG):
        self.config = config
        self.bits: dict[str, int] = {
            f"__GFP_{n}": b for b, n in enumerate(config.bit_names()) if n is not None}
        self.bits_shift = len(config.bit_names())           # __GFP_BITS_SHIFT
        self.bits_mask = (1 << self.bits_shift) - 1          # __GFP_BITS_MASK
        m = {name: 1 << b for name, b in self.bits.items()}
        get = lambda n: m.get(n, 0)  # noqa: E731 - an unconfigured flag is 0, as in the kernel
        m["__GFP_RECLAIM"] = get("__GFP_DIRECT_RECLAIM") | get("__GFP_KSWAPD_RECLAIM")
        comp = {}
        comp["GFP_ATOMIC"] = get("__GFP_HIGH") | get("__GFP_KSWAPD_RECLAIM")
        comp["GFP_KERNEL"] = m["__GFP_RECLAIM"] | get("__GFP_IO") | get("__GFP_FS")
        comp["GFP_KERNEL_ACCOUNT"] = comp["GFP_KERNEL"] | get("__GFP_ACCOUNT")
        comp["GFP_NOWAIT"] = get("__GFP_KSWAPD_RECLAIM") | get("__GFP_NOWARN")
        comp["GFP_NOIO"] = m["__GFP_RECLAIM"]
        comp["GFP_NOFS"] = m["__GFP_RECLAIM"] | get("__GFP_IO")
        comp["GFP_USER"] = m["__GFP_RECLAIM"] | get("__GFP_IO") | get("__GFP_FS") \
            | get("__GFP_HARDWALL")
        comp["GFP_DMA"] = get("__GFP_DMA")
        comp["GFP_DMA32"] = get("__GFP_DMA32")
        comp["GFP_HIGHUSER"] = comp["GFP_USER"] | get("__GFP_HIGHMEM")
        comp["GFP_HIGHUSER_MOVABLE"] = comp["GFP_HIGHUSER"] | get("__GFP_MOVABLE") \
            | get("__GFP_SKIP_KASAN")
        comp["GFP_TRANSHUGE_LIGHT"] = (comp["GFP_HIGHUSER_MOVABLE"] | get("__GFP_COMP")
                                       | get("__GFP_NOMEMALLOC") | get("__GFP_NOWARN")) \
            & ~m["__GFP_RECLAIM"]
        comp["GFP_TRANSHUGE"] = comp["GFP_TRANSHUGE_LIGHT"] | get("__GFP_DIRECT_RECLAIM")
        self.composites = comp
        self.masks: dict[str, int] = {**m, **comp}
        # Masks the kernel's code uses (the tracepoint never prints them).
        self.masks["GFP_ZONEMASK"] = get("__GFP_DMA") | get("__GFP_HIGHMEM") \
            | get("__GFP_DMA32") | get("__GFP_MOVABLE")
        self.masks["GFP_MOVABLE_MASK"] = get("__GFP_RECLAIMABLE") | get("__GFP_MOVABLE")
        # __def_gfpflag_names (include/trace/events/mmflags.h, 6.18): composites first,
        # then __GFP_RECLAIM, then every single bit in bit order (TRACE_GFP_FLAGS).
        order = ["GFP_TRANSHUGE", "GFP_TRANSHUGE_LIGHT", "GFP_HIGHUSER_MOVABLE", "GFP_HIGHUSER",
                 "GFP_USER", "GFP_KERNEL_ACCOUNT", "GFP_KERNEL", "GFP_NOFS", "GFP_ATOMIC",
                 "GFP_NOIO", "GFP_NOWAIT", "GFP_DMA", "GFP_DMA32", "__GFP_RECLAIM"]
        order += sorted(self.bits, key=self.bits.get)
        self.table: tuple[tuple[str, int], ...] = tuple((n, self.masks[n]) for n in order)

    def __getattr__(self, name: str) -> int:
        masks = self.__dict__.get("masks", {})
        if name in masks:
            return masks[name]
        raise AttributeError(name)

    def __dir__(self):
        return [*super().__dir__(), *self.masks]

    # -- printing and parsing ------------------------------------------------------------------

    def format(self, gfp: int) -> str:
        """``show_gfp_flags(gfp)``: ``none`` for 0; otherwise walk the table, print every entry
        whose whole mask is still present and remove its bits, stop when nothing is left, and
        print any leftover bits as ``0x%lx`` (``trace_print_flags_seq``)."""
        if not isinstance(gfp, int) or gfp < 0:
            raise BadRequest(f"a gfp mask is a non-negative integer, not {gfp!r}")
        if gfp == 0:
            return "none"
        parts = []
        for name, mask in self.table:
            if not gfp:
                break
            if gfp & mask == mask:
                parts.append(name)
                gfp &= ~mask
        if gfp:
            parts.append(f"{gfp:#x}")
        return "|".join(parts)

    def parse(self, text: str) -> int:
        """The mask for ``"GFP_KERNEL|__GFP_ZERO"``, ``"0xdc0"``, ``"none"``, or a string the
        tracepoint printed (leftover hex parts such as ``GFP_KERNEL|0x200`` included).

        Unknown names raise :class:`ParseError` naming the nearest known ones."""
        if not isinstance(text, str):
            raise ParseError(f"a gfp flag string is text, not {type(text).__name__}")
        text = text.strip()
        if not text:
            raise ParseError("empty gfp flags")
        if text == "none":
            return 0
        mask = 0
        for part in text.split("|"):
            part = part.strip()
            if not part:
                raise ParseError(f"empty flag between '|' in {text!r}")
            mask |= self._parse_one(part)
        return mask

    def _parse_one(self, part: str) -> int:
        if part[0].isdigit():
            try:
                value = int(part, 0)
            except ValueError:
                raise ParseError(f"{part!r} is not a number (write hex as 0x…)") from None
            if value < 0:
                raise ParseError(f"a gfp mask cannot be negative: {part}")
            if value >> 32:
                raise ParseError(f"{part} does not fit in gfp_t, an unsigned int (32 bits)")
            return value
        if part in self.masks:
            return self.masks[part]
        upper = part.upper()
        if upper in self.masks:
            return self.masks[upper]
        if upper.startswith("___GFP_") and upper[1:] in self.masks:   # the raw ___GFP_ name
            return self.masks[upper[1:]]
        near = difflib.get_close_matches(upper, list(self.masks), n=4, cutoff=0.5)
        if not near:   # "zero" -> __GFP_ZERO: match the name without its prefix
            near = [n for n in self.masks if n.split("GFP_", 1)[-1] == upper.strip("_")]
        hint = f"; nearest known: {', '.join(near)}" if near else \
            "; known flags start with GFP_ or __GFP_ (try `kmm gfp --list`)"
        raise ParseError(f"unknown gfp flag {part!r}{hint}")

    def flag_bits(self, gfp: int) -> list[tuple[int, str]]:
        """(bit, name) for every set bit; unknown bits are named ``bit N``."""
        names = {b: n for n, b in self.bits.items()}
        return [(b, names.get(b, f"bit {b}")) for b in range(max(gfp.bit_length(), 1))
                if gfp >> b & 1]


DEFAULT = Gfp()

# Module-level constants for the default (snapshot) config, so code reads like the kernel's.
for _name, _mask in DEFAULT.masks.items():
    globals()[_name] = _mask
del _name, _mask


def format_gfp(gfp: int, config: GfpConfig = SNAPSHOT_CONFIG) -> str:
    """``show_gfp_flags()``: a mask as the ``kmem:*`` tracepoints print it (``%pGg`` too)."""
    return (DEFAULT if config == SNAPSHOT_CONFIG else Gfp(config)).format(gfp)


def parse_gfp(text: str, config: GfpConfig = SNAPSHOT_CONFIG) -> int:
    """The mask for a flag string (``GFP_KERNEL|__GFP_ZERO``), a tracepoint string, or hex."""
    return (DEFAULT if config == SNAPSHOT_CONFIG else Gfp(config)).parse(text)


# -- gfp_zone() and gfp_migratetype() (include/linux/gfp.h) ---------------------------------

# GFP_ZONE_TABLE: the zone for each combination of the four zone modifiers
# (DMA 0x1, HIGHMEM 0x2, DMA32 0x4, MOVABLE 0x8). "OPT" zones fall back to Normal when the
# kernel lacks them; combinations in GFP_ZONE_BAD are a bug (VM_BUG_ON with DEBUG_VM).
_ZONE_TABLE = {0x0: "Normal", 0x1: "DMA", 0x2: "HighMem", 0x4: "DMA32", 0x8: "Normal",
               0x9: "DMA", 0xA: "Movable", 0xC: "DMA32"}

X86_64_ZONES = ("DMA", "DMA32", "Normal", "Movable", "Device")


def gfp_zone_name(gfp: int, zones: tuple[str, ...] = X86_64_ZONES) -> str:
    """The highest zone an allocation with ``gfp`` may use (``gfp_zone()``), by name.

    ``zones`` are the configured zones in ``enum zone_type`` order; an optional zone the kernel
    lacks (HighMem on 64-bit, DMA without CONFIG_ZONE_DMA) becomes Normal, as ``OPT_ZONE_*``
    do. Note that ``__GFP_MOVABLE`` alone gives Normal: only MOVABLE with HIGHMEM (as in
    ``GFP_HIGHUSER_MOVABLE``) gives ZONE_MOVABLE."""
    bits = gfp & 0xF
    if bits not in _ZONE_TABLE:
        named = "|".join(n for n, b in (("__GFP_DMA", 1), ("__GFP_HIGHMEM", 2),
                                        ("__GFP_DMA32", 4), ("__GFP_MOVABLE", 8)) if bits & b)
        raise BadRequest(f"gfp_zone: bad zone modifier combination {named} ({bits:#x}): "
                         "GFP_ZONE_BAD, a kernel BUG with CONFIG_DEBUG_VM")
    zone = _ZONE_TABLE[bits]
    return zone if zone in zones else "Normal"


def gfp_zone(gfp: int, zones: tuple[str, ...] = X86_64_ZONES) -> int:
    """``gfp_zone()``: the ``enum zone_type`` index (in ``zones``) of the highest usable zone.
    Lower zones are then tried through the zonelist."""
    return zones.index(gfp_zone_name(gfp, zones))


MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE = 0, 1, 2
GFP_MOVABLE_SHIFT = 3


def gfp_migratetype(gfp: int, page_group_by_mobility_disabled: bool = False) -> int:
    """``gfp_migratetype()``: ``(gfp & GFP_MOVABLE_MASK) >> GFP_MOVABLE_SHIFT`` -> 0 UNMOVABLE,
    1 MOVABLE (``__GFP_MOVABLE``), 2 RECLAIMABLE (``__GFP_RECLAIMABLE``); always UNMOVABLE
    when grouping by mobility is disabled (tiny machines). Both bits together are a bug the
    kernel warns about (``VM_WARN_ON``); here it is refused."""
    both = DEFAULT.masks["GFP_MOVABLE_MASK"]
    if gfp & both == both:
        raise BadRequest("gfp_migratetype: __GFP_MOVABLE and __GFP_RECLAIMABLE together "
                         "(VM_WARN_ON in include/linux/gfp.h)")
    if page_group_by_mobility_disabled:
        return MIGRATE_UNMOVABLE
    return (gfp & both) >> GFP_MOVABLE_SHIFT


def gfpflags_allow_blocking(gfp: int) -> bool:
    """``gfpflags_allow_blocking()``: may this allocation sleep (``__GFP_DIRECT_RECLAIM``)?"""
    return bool(gfp & DEFAULT.masks["__GFP_DIRECT_RECLAIM"])
