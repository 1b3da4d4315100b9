"""SLUB debugging: red zones, poisoning, tracking, and the reports the kernel prints.

With ``slab_debug=FZPU`` (``slub_debug=`` before 6.8) a cache checks itself (mm/slub.c):

- **Z — red zones.** Bytes around each object hold a marker: 0xcc (SLUB_RED_ACTIVE) while the
  object is allocated, 0xbb (SLUB_RED_INACTIVE) while it is free. A write past the end of the
  object lands in the right red zone (for kmalloc caches that also record the requested size,
  with U: anywhere past it, the "kmalloc Redzone"); one before it in the left red zone.
- **P — poisoning.** A free object is filled with 0x6b (POISON_FREE) and its last byte is 0xa5
  (POISON_END); padding and a new slab are 0x5a (POISON_INUSE). A write to a freed object —
  a use after free — changes the poison, found when the object is next allocated.
- **U — user tracking.** Who allocated and who freed each object, printed in reports.
- **F — consistency checks.** On every free: is this really an object of the slab, is it
  already on the freelist (a double free), are its red zones intact?

Each problem is reported the way the kernel's ``slab_bug()``/``print_trailer()`` print it (a
line of ``=``, ``BUG <cache> (<taint>): <what>``, the slab and object, hex dumps, then the
``FIX`` lines of what SLUB did about it). Here the report is also raised as a named exception
(:class:`ObjectAlreadyFree`, :class:`RedzoneOverwritten`, :class:`PoisonOverwritten` …) after
the state was left exactly as the kernel leaves it: corrupted bytes restored, the object of a
bad free not freed, a slab with a corrupted free object marked all used. Reports also go to
``slub.dmesg``.

Simplifications: addresses are printed in full (as with ``no_hash_pointers``); tracks keep the
caller's name given to the simulator, not a stack trace; the taint is printed as
``Tainted: B`` once a report was made; KASAN and kmemleak are not modelled.
"""

from __future__ import annotations

import struct

from kmmlib.errors import KmmError
from kmmlib.slab import flags as F

# include/linux/poison.h
POISON_INUSE = 0x5A        # padding, and the whole of a new debug slab
POISON_FREE = 0x6B         # a free object's bytes
POISON_END = 0xA5          # a free object's last byte
SLUB_RED_INACTIVE = 0xBB   # red zone of a free object
SLUB_RED_ACTIVE = 0xCC     # red zone of an allocated object

_Q = struct.Struct("<Q")
_I = struct.Struct("<I")
VMEMMAP_START = 0xFFFFEA0000000000
STRUCT_PAGE_SIZE = 64
TRACK_ALLOC, TRACK_FREE = 0, 1


class SlubDebugError(KmmError):
    """A report SLUB prints (``BUG <cache> …``); ``report`` is its full text."""

    def __init__(self, report: str, *, cache: str = "", obj: int = 0):
        super().__init__(report)
        self.report = report
        self.cache = cache
        self.obj = obj


class ObjectAlreadyFree(SlubDebugError):
    """A double free: the object is already on its slab's freelist."""


class InvalidObjectPointer(SlubDebugError):
    """A free of an address that is not the start of an object of the slab."""


class RedzoneOverwritten(SlubDebugError):
    """A write past (or before) the object: a red zone lost its marker."""


class PoisonOverwritten(SlubDebugError):
    """A write into a freed object (use after free): its poison changed."""


class PaddingOverwritten(SlubDebugError):
    """A write into the padding after an object's metadata."""


class FreepointerCorrupt(SlubDebugError):
    """A free object's free pointer points outside its slab."""


class ObjectsRemaining(SlubDebugError):
    """``kmem_cache_destroy()`` of a cache whose objects were not all freed."""


# -- printing ------------------------------------------------------------------------------

def hex_dump_lines(label: str, addr: int, data: bytes) -> list[str]:
    """``print_hex_dump(KERN_ERR, label, DUMP_PREFIX_ADDRESS, 16, 1, …, true)``: 16 bytes a
    row, the address, the bytes in hex, then as ASCII (``.`` for the unprintable), the ASCII
    column at 49 characters as ``hex_dump_to_buffer()`` aligns it."""
    out = []
    for i in range(0, len(data), 16):
        row = data[i:i + 16]
        hexpart = " ".join(f"{b:02x}" for b in row)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        out.append(f"{label}{addr + i:016x}: {hexpart:<49}{text}")
    return out


def _taint(slub) -> str:
    return "Tainted: B" if slub.tainted else "Not tainted"


def slab_bug(slub, s, message: str) -> list[str]:
    """``slab_bug()``: the banner of every report."""
    return ["=" * 77, f"BUG {s.name} ({_taint(slub)}): {message}", "-" * 77, ""]


def slab_info(slub, slab) -> str:
    """``print_slab_info()``: the slab's struct page address, counts, freelist and flags."""
    from kmmlib.mm.page_flags import format_page_flags

    mm = slub._mem_map(slab.pfn)
    flags = format_page_flags(mm.flags[mm.index(slab.pfn)], mm.layout)
    page = VMEMMAP_START + slab.pfn * STRUCT_PAGE_SIZE
    return (f"Slab 0x{page:016x} objects={slab.objects} used={slab.inuse} "
            f"fp=0x{slab.freelist:016x} flags={flags}")


def print_trailer(slub, s, slab, o: int) -> list[str]:
    """``print_trailer()``: the object's tracks, its slab, then hex dumps of its red zones,
    bytes, and padding. ``o`` is the object's offset in the slab."""
    addr = slab.base + o
    L = s.layout
    lines = print_tracking(slub, s, addr)
    fp = _Q.unpack_from(slab.mem, o + s.offset)[0]
    lines += [slab_info(slub, slab),
              f"Object 0x{addr:016x} @offset={o} fp=0x{fp:016x}", ""]
    mem = slab.mem
    if s.flags & F.SLAB_RED_ZONE:
        lines += hex_dump_lines("Redzone  ", addr - s.red_left_pad,
                                bytes(mem[o - s.red_left_pad:o]))
    elif o >= 16:
        lines += hex_dump_lines("Bytes b4 ", addr - 16, bytes(mem[o - 16:o]))
    lines += hex_dump_lines("Object   ", addr, bytes(mem[o:o + min(s.object_size, 4096)]))
    if s.flags & F.SLAB_RED_ZONE:
        lines += hex_dump_lines("Redzone  ", addr + s.object_size,
                                bytes(mem[o + s.object_size:o + s.inuse]))
    off = info_end(s)
    size_from_object = s.size - s.red_left_pad
    if off != size_from_object:
        lines += hex_dump_lines("Padding  ", addr + off,
                                bytes(mem[o + off:o + size_from_object]))
    del L
    return lines


def info_end(s) -> int:
    """``get_info_end()`` plus the tracks and original size: where the metadata ends."""
    off = s.inuse + (8 if s.layout.freeptr_outside else 0)
    if s.flags & F.SLAB_STORE_USER:
        off += 64
        if s.flags & F.SLAB_KMALLOC:
            off += 4
    return off


def print_tracking(slub, s, addr: int) -> list[str]:
    """``print_tracking()``: "Allocated in …" / "Freed in …" from SLAB_STORE_USER."""
    if not s.flags & F.SLAB_STORE_USER:
        return []
    out = []
    for kind, name in ((TRACK_ALLOC, "Allocated"), (TRACK_FREE, "Freed")):
        t = slub._tracks.get((addr, kind)) if hasattr(slub, "_tracks") else None
        if t:
            caller, cpu, pid, when = t
            out.append(f"{name} in {caller} age={slub.jiffies - when} cpu={cpu} pid={pid}")
    return out


def set_track(slub, s, addr: int, kind: int, caller: str, cpu: int = 0) -> None:
    if s.flags & F.SLAB_STORE_USER:
        if not hasattr(slub, "_tracks"):
            slub._tracks = {}
        slub._tracks[(addr, kind)] = (caller, cpu, slub.pid, slub.jiffies)


def _report(slub, lines: list[str]) -> str:
    text = "\n".join(lines)
    slub.dmesg.append(text)
    slub.tainted = True
    return text


# -- object initialisation and checks ------------------------------------------------------

def get_orig_size(s, slab, o: int) -> int:
    """The kmalloc request size stored after the tracks (``get_orig_size()``)."""
    if s.layout.orig_size_offset < 0:
        return s.object_size
    return _I.unpack_from(slab.mem, o + s.layout.orig_size_offset)[0]


def set_orig_size(s, slab, o: int, orig_size: int) -> None:
    if s.layout.orig_size_offset >= 0:
        _I.pack_into(slab.mem, o + s.layout.orig_size_offset, orig_size)


def init_object(s, slab, o: int, val: int) -> None:
    """``init_object()``: left red zone, poison (0x6b… with 0xa5 last: on allocation as on
    free, so an object of a P cache comes out poisoned unless __GFP_ZERO; for kmalloc with
    the requested size tracked, only up to it), right red zone with ``val`` — 0xcc allocated,
    0xbb free."""
    mem = slab.mem
    poison_size = s.object_size
    if s.flags & F.SLAB_RED_ZONE:
        mem[o - s.red_left_pad:o] = bytes([val]) * s.red_left_pad
        if s.layout.orig_size_offset >= 0 and val == SLUB_RED_ACTIVE:
            poison_size = get_orig_size(s, slab, o)
    if s.flags & F.SLAB_OBJECT_POISON:
        mem[o:o + poison_size - 1] = bytes([POISON_FREE]) * (poison_size - 1)
        mem[o + poison_size - 1] = POISON_END
    if s.flags & F.SLAB_RED_ZONE:
        mem[o + poison_size:o + s.inuse] = bytes([val]) * (s.inuse - poison_size)


def check_bytes(slub, s, slab, o: int, what: str, start: int, value: int, length: int,
                lines: list[str]) -> bool:
    """``check_bytes_and_report()``: are ``length`` bytes from slab offset ``start`` all
    ``value``? If not, report the first and last wrong byte and restore them."""
    mem = slab.mem
    region = mem[start:start + length]
    bad = [i for i, b in enumerate(region) if b != value]
    if not bad:
        return True
    fault, end = start + bad[0], start + bad[-1] + 1
    base = slab.base
    lines += slab_bug(slub, s, f"{what} overwritten")
    lines.append(f"0x{base + fault:016x}-0x{base + end - 1:016x} @offset={fault}. "
                 f"First byte 0x{mem[fault]:x} instead of 0x{value:x}")
    lines += print_trailer(slub, s, slab, o)
    lines.append(f"FIX {s.name}: Restoring {what} 0x{base + fault:016x}-"
                 f"0x{base + end - 1:016x}=0x{value:x}")
    mem[fault:end] = bytes([value]) * (end - fault)
    return False


def check_object(slub, s, slab, o: int, val: int, *, report_only: bool = False,
                 lines: list[str] | None = None) -> list[str]:
    """``check_object()``: every red zone, the poison and the padding of the object at slab
    offset ``o``; ``val`` is the red zone marker expected (0xcc allocated, 0xbb free). Returns
    the report lines (empty when all is well); the bytes found wrong are restored. With
    ``report_only`` the report goes to dmesg and nothing is raised."""
    lines = [] if lines is None else lines
    first_error: list[str] = []
    ok = True
    endobject = o + s.object_size
    if s.flags & F.SLAB_RED_ZONE:
        ok &= check_bytes(slub, s, slab, o, "Left Redzone", o - s.red_left_pad, val,
                          s.red_left_pad, lines)
        if not ok and not first_error:
            first_error.append("Left Redzone")
        right_ok = check_bytes(slub, s, slab, o, "Right Redzone", endobject, val,
                               s.inuse - s.object_size, lines)
        if not right_ok and not first_error:
            first_error.append("Right Redzone")
        ok &= right_ok
        if s.layout.orig_size_offset >= 0 and val == SLUB_RED_ACTIVE:
            orig = get_orig_size(s, slab, o)
            if s.object_size > orig:
                k_ok = check_bytes(slub, s, slab, o, "kmalloc Redzone", o + orig, val,
                                   s.object_size - orig, lines)
                if not k_ok and not first_error:
                    first_error.append("kmalloc Redzone")
                ok &= k_ok
    elif s.flags & F.SLAB_POISON and s.object_size < s.inuse:
        pad_ok = check_bytes(slub, s, slab, o, "Alignment padding", endobject, POISON_INUSE,
                             s.inuse - s.object_size, lines)
        if not pad_ok and not first_error:
            first_error.append("Alignment padding")
        ok &= pad_ok
    if s.flags & F.SLAB_POISON:
        if val != SLUB_RED_ACTIVE and s.flags & F.SLAB_OBJECT_POISON:
            p_ok = check_bytes(slub, s, slab, o, "Poison", o, POISON_FREE, s.object_size - 1,
                               lines)
            if not p_ok and not first_error:
                first_error.append("Poison")
            e_ok = check_bytes(slub, s, slab, o, "End Poison", endobject - 1, POISON_END, 1,
                               lines)
            if not e_ok and not first_error:
                first_error.append("End Poison")
            ok &= p_ok and e_ok
        # check_pad_bytes(): what follows the metadata up to the end of the slot.
        off = info_end(s)
        size_from_object = s.size - s.red_left_pad
        if off < size_from_object:
            pad_ok = check_bytes(slub, s, slab, o, "Object padding", o + off, POISON_INUSE,
                                 size_from_object - off, lines)
            if not pad_ok and not first_error:
                first_error.append("Object padding")
            ok &= pad_ok
    # The free pointer can only be checked when it does not share bytes with live data.
    if s.layout.freeptr_outside or val != SLUB_RED_ACTIVE:
        fp = _Q.unpack_from(slab.mem, o + s.offset)[0]
        if not check_valid_pointer(s, slab, fp):
            lines += slab_bug(slub, s, "Freepointer corrupt")
            lines += print_trailer(slub, s, slab, o)
            _Q.pack_into(slab.mem, o + s.offset, 0)      # set_freepointer(s, p, NULL)
            if not first_error:
                first_error.append("Freepointer corrupt")
            ok = False
    if not ok and report_only:
        _report(slub, lines)
    if not ok:
        lines.insert(0, f"#first:{first_error[0]}")
    return lines


def check_valid_pointer(s, slab, ptr: int) -> bool:
    """``check_valid_pointer()``: NULL, or the start of one of the slab's objects."""
    if not ptr:
        return True
    rel = ptr - slab.base - s.red_left_pad
    return 0 <= rel < slab.objects * s.size and rel % s.size == 0


def on_freelist(slub, s, slab, obj: int) -> bool:
    """``on_freelist()``: walk the slab's freelist looking for ``obj`` (at most ``objects``
    steps: a longer chain is corrupt)."""
    p, n = slab.freelist, 0
    while p and n <= slab.objects:
        if p == obj:
            return True
        if not check_valid_pointer(s, slab, p):
            return False
        p = _Q.unpack_from(slab.mem, p - slab.base + s.offset)[0]
        n += 1
    return False


_ERRORS = {"Left Redzone": RedzoneOverwritten, "Right Redzone": RedzoneOverwritten,
           "kmalloc Redzone": RedzoneOverwritten, "Poison": PoisonOverwritten,
           "End Poison": PoisonOverwritten, "Object padding": PaddingOverwritten,
           "Alignment padding": PaddingOverwritten, "Freepointer corrupt": FreepointerCorrupt}


def _raise_from(slub, s, obj: int, lines: list[str]) -> None:
    first = lines.pop(0)[len("#first:"):]
    raise _ERRORS[first](_report(slub, lines), cache=s.name, obj=obj)


def alloc_debug_processing(slub, s, slab, obj: int, orig_size: int, caller: str) -> None:
    """``alloc_debug_processing()``: the object about to be handed out must still look free
    (red zones 0xbb, poison intact). If it does not, the kernel marks every object of the slab
    used so nothing more comes from it, and carries on elsewhere; here the report is raised
    after the same repair (the next allocation succeeds from another slab)."""
    o = obj - slab.base
    if s.flags & F.SLAB_CONSISTENCY_CHECKS:
        if not check_valid_pointer(s, slab, obj):
            lines = slab_bug(slub, s, "Freelist Pointer check fails")
            lines += print_trailer(slub, s, slab, o)
            _mark_all_used(s, slab, lines)
            raise FreepointerCorrupt(_report(slub, lines), cache=s.name, obj=obj)
        lines = check_object(slub, s, slab, o, SLUB_RED_INACTIVE)
        if lines:
            _mark_all_used(s, slab, lines)
            _raise_from(slub, s, obj, lines)
    set_orig_size(s, slab, o, orig_size)
    set_track(slub, s, obj, TRACK_ALLOC, caller)
    init_object(s, slab, o, SLUB_RED_ACTIVE)


def _mark_all_used(s, slab, lines: list[str]) -> None:
    lines.append(f"FIX {s.name}: Marking all objects used")
    slab.inuse = slab.objects
    slab.freelist = 0
    slab.frozen = False


def free_debug_processing(slub, s, slab, obj: int, caller: str) -> None:
    """``free_debug_processing()`` → ``free_consistency_checks()``: the slab has objects in
    use, the pointer is an object of it, the object is not already free, its red zones are
    intact. On failure the object is *not freed* ("FIX <cache>: Object at … not freed") and
    the report is raised; on success it is tracked and re-initialised as free (0xbb, poison)."""
    o = obj - slab.base
    if s.flags & F.SLAB_CONSISTENCY_CHECKS:
        not_freed = f"FIX {s.name}: Object at 0x{obj:016x} not freed"
        if slab.inuse < 1:
            lines = slab_bug(slub, s, "Slab has 0 allocated objects but 1 are to be freed")
            lines += [slab_info(slub, slab), not_freed]
            raise ObjectAlreadyFree(_report(slub, lines), cache=s.name, obj=obj)
        if not check_valid_pointer(s, slab, obj):
            lines = slab_bug(slub, s, f"Invalid object pointer 0x{obj:016x}")
            lines += [slab_info(slub, slab), not_freed]
            raise InvalidObjectPointer(_report(slub, lines), cache=s.name, obj=obj)
        if on_freelist(slub, s, slab, obj):
            lines = slab_bug(slub, s, "Object already free")
            lines += print_trailer(slub, s, slab, o)
            lines.append(not_freed)
            raise ObjectAlreadyFree(_report(slub, lines), cache=s.name, obj=obj)
        lines = check_object(slub, s, slab, o, SLUB_RED_ACTIVE)
        if lines:
            lines.append(not_freed)
            _raise_from(slub, s, obj, lines)
    elif obj not in slub._live:
        # Debug options without F: the kernel does not look, and corrupts its freelist.
        raise ObjectAlreadyFree(double_free_report(slub, s, slab, obj, 0), cache=s.name,
                                obj=obj)
    set_track(slub, s, obj, TRACK_FREE, caller)
    init_object(s, slab, o, SLUB_RED_INACTIVE)


# -- what a cache without slab_debug would do ----------------------------------------------

def double_free_report(slub, s, slab, obj: int, cpu: int) -> str:
    """A double free in a cache without consistency checks. The kernel only notices when the
    object is the head of the freelist it is pushed on (CONFIG_SLAB_FREELIST_HARDENED's
    ``BUG_ON(object == fp)`` in ``set_freepointer()``); otherwise the freelist now holds the
    object twice and two later allocations return the same memory."""
    c = s.cpu_slab[cpu] if cpu < len(s.cpu_slab) else None
    head = c.freelist if c is not None and c.slab is slab else slab.freelist
    if head == obj:
        what = ("kernel BUG at mm/slub.c: set_freepointer(): BUG_ON(object == fp) — naive "
                "double free detection (CONFIG_SLAB_FREELIST_HARDENED): the object is the "
                "head of the freelist it is being pushed on")
    else:
        what = ("no message: without slab_debug=F the kernel does not check, pushes the "
                "object on a freelist that already holds it, and two later allocations get "
                "the same memory. Boot with slab_debug=F (or FZPU) to get 'Object already "
                "free'")
    text = (f"double free of 0x{obj:016x} in cache {s.name} (the simulator's shadow of live "
            f"objects caught it; the object was not freed).\nWhat the kernel would do: {what}")
    slub.dmesg.append(text)
    return text


def invalid_pointer_report(slub, s, slab, obj: int) -> str:
    rel = obj - slab.base - s.red_left_pad
    text = (f"kfree/kmem_cache_free of 0x{obj:016x}: not the start of an object of {s.name} "
            f"(offset {rel % s.size} into a {s.size}-byte slot); the simulator refused it. "
            "Without slab_debug=F the kernel would link the wrong address into the freelist; "
            "with it: 'Invalid object pointer'")
    slub.dmesg.append(text)
    return text


def objects_remaining(slub, s, live: int) -> str:
    """``__kmem_cache_shutdown()`` → ``list_slab_objects()`` and ``kmem_cache_destroy()``'s
    warning. The kernel then unlinks the cache and leaks it; the simulator leaves it in place."""
    lines = slab_bug(slub, s, f"Objects remaining in {s.name} on __kmem_cache_shutdown()")
    lines.append(f"{live} object{'s' if live != 1 else ''} still allocated")
    lines.append(f"kmem_cache_destroy {s.name}: Slab cache still has objects when called "
                 "from kmem_cache_destroy")
    return _report(slub, lines)


__all__ = [
    "FreepointerCorrupt", "InvalidObjectPointer", "ObjectAlreadyFree", "ObjectsRemaining",
    "POISON_END", "POISON_FREE", "POISON_INUSE", "PaddingOverwritten", "PoisonOverwritten",
    "RedzoneOverwritten", "SLUB_RED_ACTIVE", "SLUB_RED_INACTIVE", "SlubDebugError",
    "hex_dump_lines",
]
