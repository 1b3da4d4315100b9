"""A toy malloc with glibc's chunk layout: why a heap overflow corrupts the allocator.

``malloc()`` is not a system call. The C library asks the kernel for big pieces of address
space — ``brk()`` to grow the heap, ``mmap()`` for large blocks — and carves them up itself.
Its bookkeeping lives *in band*, in the same memory as your data: every chunk starts with a
header, and a free chunk holds the list pointers of the free list. Write past the end of a
buffer and you overwrite the next chunk's header; the allocator then believes your bytes.

This toy follows glibc's ``malloc/malloc.c`` (ptmalloc2) where it is cheap to:

- a chunk is ``[prev_size][size | flags][user data …]``; ``malloc()`` returns chunk + 16.
  ``size`` is a multiple of 16, at least 32 (MINSIZE); its low bits are flags: PREV_INUSE
  (the chunk *before* this one is in use) and IS_MMAPPED. A request of n bytes takes the
  chunk size ``request2size(n)`` = (n + 8 + 15) & ~15, at least 32: the last 8 bytes of a chunk
  in use overlap the next chunk's ``prev_size``, which only means something when that chunk is
  free (it is the *boundary tag* that lets ``free()`` merge backwards).
- free chunks sit on one circular doubly-linked list (a *bin*) through ``fd``/``bk``, written
  in the chunk's user area; ``unlink`` checks ``fd->bk == p && bk->fd == p``.
- the heap ends in the *top chunk*; when it is too small, ``sysmalloc()`` calls ``sbrk`` for
  the request + ``M_TOP_PAD`` (128 KiB) + MINSIZE, page-aligned — so the first ``malloc``
  makes a 132 KiB ``[heap]``, as on a real process. ``free()`` merges with free neighbours
  and the top, and gives memory back to the kernel (``systrim()``) only from the top, once the
  top exceeds ``M_TRIM_THRESHOLD`` (128 KiB).
- ``malloc()`` tries the bin, then the top chunk, and only then ``sysmalloc()``: there a
  request whose chunk size is ``M_MMAP_THRESHOLD`` (128 KiB at first) or more gets its own
  ``mmap()`` instead of growing the heap. So a big request that fits in the top chunk is
  carved from the heap: after ``malloc(24)``, ``malloc(131072)`` (a 0x20010-byte chunk) fits
  in the 132 KiB heap and the break does not move.
- ``free()`` unmaps an mmapped chunk, and first raises the mmap threshold to that chunk's size
  (at most 32 MiB) and the trim threshold to twice that — glibc's *dynamic threshold*: a
  program that keeps allocating and freeing blocks of one big size soon gets them from the
  heap, with no ``mmap``/``munmap`` per block. Setting a threshold or the top pad (glibc's
  ``mallopt()``; here, passing it to :class:`ToyMalloc`) turns the adaptation off.
- ``realloc()`` of an mmapped chunk resizes the mapping with ``mremap()`` — it grows without
  copying, and shrinks, giving the pages at its end back.
- the integrity checks and their messages are glibc's: ``free(): invalid pointer``,
  ``free(): invalid size``, ``double free or corruption (top|out|!prev)``,
  ``free(): invalid next size (normal)``, ``corrupted size vs. prev_size``,
  ``corrupted double-linked list``, ``malloc(): corrupted top size``,
  ``realloc(): invalid pointer``, ``realloc(): invalid old size``,
  ``realloc(): invalid next size``, ``munmap_chunk(): invalid pointer``,
  ``mremap_chunk(): invalid pointer``. A failed check aborts: :class:`MallocAbort`, and the
  process is gone.

Simplified (one line each): one bin searched first-fit (glibc has tcache, fastbins, the
unsorted, small and large bins — tcache and fastbins check far less; so a small block glibc
would place after its 0x290-byte tcache header starts here at the heap's first byte); no
arenas or threads; calloc zeroes every heap chunk (glibc skips memory fresh from the kernel,
which is already zero) but not mmapped ones.
"""

from __future__ import annotations

from kmmlib.errors import BadRequest, KmmError
from kmmlib.userspace.process import (
    MREMAP_MAYMOVE,
    PAGE_SIZE,
    MmStruct,
    System,
    page_align,
)

SIZE_SZ = 8
MALLOC_ALIGNMENT = 16
MALLOC_ALIGN_MASK = MALLOC_ALIGNMENT - 1
MINSIZE = 32
PREV_INUSE, IS_MMAPPED = 0x1, 0x2
SIZE_BITS = 0x7
CHUNK_HDR_SZ = 2 * SIZE_SZ
M_MMAP_THRESHOLD = 128 * 1024                # DEFAULT_MMAP_THRESHOLD_MIN: the first threshold
M_TOP_PAD = 128 * 1024
M_TRIM_THRESHOLD = 128 * 1024
# The dynamic threshold stops here: 4 MiB * sizeof(long), 32 MiB on a 64-bit machine.
DEFAULT_MMAP_THRESHOLD_MAX = 4 * 1024 * 1024 * 8
DEFAULT_MMAP_MAX = 65536                     # mp_.n_mmaps_max: at most this many at once
PTRDIFF_MAX = (1 << 63) - 1
# The bin's list head is a fake chunk inside main_arena, in libc's data (not on the heap).
BIN = 0x7FFFF7DD1B68


class MallocAbort(KmmError):
    """glibc's ``malloc_printerr()``: the message on stderr, then ``abort()``."""


def request2size(n: int) -> int:
    """``request2size()``: the chunk size for a request of n bytes."""
    if n + SIZE_SZ + MALLOC_ALIGN_MASK < MINSIZE:
        return MINSIZE
    return (n + SIZE_SZ + MALLOC_ALIGN_MASK) & ~MALLOC_ALIGN_MASK


class Memory:
    """Sparse bytes: only the pages written are stored; the rest reads as zero."""

    def __init__(self):
        self.pages: dict[int, bytearray] = {}

    def read(self, addr: int, n: int) -> bytes:
        out = bytearray()
        while n > 0:
            page, off = addr & ~(PAGE_SIZE - 1), addr & (PAGE_SIZE - 1)
            k = min(n, PAGE_SIZE - off)
            data = self.pages.get(page)
            out += data[off:off + k] if data is not None else bytes(k)
            addr, n = addr + k, n - k
        return bytes(out)

    def write(self, addr: int, data: bytes) -> None:
        i = 0
        while i < len(data):
            page, off = (addr + i) & ~(PAGE_SIZE - 1), (addr + i) & (PAGE_SIZE - 1)
            k = min(len(data) - i, PAGE_SIZE - off)
            buf = self.pages.setdefault(page, bytearray(PAGE_SIZE))
            buf[off:off + k] = data[i:i + k]
            i += k

    def drop(self, start: int, end: int) -> None:
        """Forget [start, end) (munmap, or memory given back to the kernel)."""
        for page in [p for p in self.pages if start <= p < end]:
            del self.pages[page]

    def move(self, old: int, new: int, length: int) -> None:
        for page in sorted(p for p in self.pages if old <= p < old + length):
            self.pages[new + (page - old)] = self.pages.pop(page)


class ToyMalloc:
    """malloc/free/calloc/realloc over a process's :class:`~kmmlib.userspace.process.MmStruct`.

    With no ``mm``, a process ``a.out`` on its own 256 MiB machine is made for it. Every byte
    the allocator or the program writes is a store to the process's memory, so the pages
    become resident (RSS) as they are touched, and a store outside any mapping is a
    segmentation fault.

    ``mmap_threshold``, ``top_pad`` and ``trim_threshold`` are glibc's tunables; passing any of
    them is ``mallopt(M_MMAP_THRESHOLD | M_TOP_PAD | M_TRIM_THRESHOLD, …)`` before the first
    malloc, and, as there, it sets ``no_dyn_threshold``: ``free()`` no longer moves the mmap
    and trim thresholds. Left out, they start at 128 KiB each and adapt.
    """

    def __init__(self, mm: MmStruct | None = None, *, mmap_threshold: int | None = None,
                 top_pad: int | None = None, trim_threshold: int | None = None):
        if mm is None:
            mm = System(65536, watermarks=False, init=False).spawn("a.out").mm
        self.mm = mm
        self.mem = Memory()
        # mp_.no_dyn_threshold: every do_set_*() of mallopt() sets it, so a program that
        # chose a threshold keeps it.
        self.no_dyn_threshold = any(v is not None for v in (mmap_threshold, top_pad,
                                                            trim_threshold))
        self.mmap_threshold = M_MMAP_THRESHOLD if mmap_threshold is None else mmap_threshold
        self.top_pad = M_TOP_PAD if top_pad is None else top_pad
        self.trim_threshold = M_TRIM_THRESHOLD if trim_threshold is None else trim_threshold
        self.n_mmaps_max = DEFAULT_MMAP_MAX
        self.heap_start: int | None = None
        self.top: int | None = None
        self.system_mem = 0                  # bytes the heap has from sbrk
        self.n_mmaps = 0
        self._peeking = False                # looking (render) is not a program's access
        # main_arena (the bin's head) is libc's data. The model maps no libc, so its address
        # lies where a big mmap can land; keeping it apart means munmap or mremap of such a
        # mapping cannot wipe the bin, as it could not in a real process.
        self.libc = Memory()
        self._word(BIN + 16, BIN)            # an empty bin: fd = bk = the bin itself
        self._word(BIN + 24, BIN)

    # -- raw memory ----------------------------------------------------------------------------
    @property
    def events(self):
        return self.mm.system.events

    def _emit(self, kind: str, text: str, **data) -> None:
        if self.mm.system.events.active:
            self.mm.system.events.emit(kind, text, **data)

    def _in_libc(self, addr: int) -> bool:
        return BIN <= addr < BIN + 32

    def _touch(self, addr: int, n: int, write: bool) -> None:
        if n <= 0 or self._in_libc(addr) or self._peeking:
            return
        for page in range(addr & ~(PAGE_SIZE - 1), addr + n, PAGE_SIZE):
            self.mm.touch(page, write)

    def _word(self, addr: int, value: int | None = None) -> int:
        """Read (or write) the 8-byte little-endian word at addr."""
        mem = self.libc if self._in_libc(addr) else self.mem
        if value is None:
            self._touch(addr, 8, False)
            return int.from_bytes(mem.read(addr, 8), "little")
        self._touch(addr, 8, True)
        mem.write(addr, (value & (2**64 - 1)).to_bytes(8, "little"))
        return value

    def write(self, addr: int, data: bytes | str) -> None:
        """A program's store of ``data`` at addr — no bounds check, as in C."""
        if isinstance(data, str):
            data = data.encode()
        self._touch(addr, len(data), True)
        self.mem.write(addr, bytes(data))

    def read(self, addr: int, n: int) -> bytes:
        self._touch(addr, n, False)
        return self.mem.read(addr, n)

    def memset(self, addr: int, byte: int, n: int) -> None:
        self.write(addr, bytes([byte & 0xFF]) * n)

    # -- chunk fields (the macros of malloc.c) -----------------------------------------------------
    def _size_field(self, c: int) -> int:
        return self._word(c + SIZE_SZ)

    def chunksize(self, c: int) -> int:
        return self._size_field(c) & ~SIZE_BITS

    def _prev_inuse(self, c: int) -> bool:
        return bool(self._size_field(c) & PREV_INUSE)

    def _set_head(self, c: int, value: int) -> None:
        self._word(c + SIZE_SZ, value)

    def _set_foot(self, c: int, size: int) -> None:
        self._word(c + size, size)                      # the next chunk's prev_size

    def _fd(self, c: int) -> int:
        return self._word(c + 16)

    def _bk(self, c: int) -> int:
        return self._word(c + 24)

    def _abort(self, msg: str) -> None:
        """``malloc_printerr()``: print, then abort() — SIGABRT ends the process."""
        self.mm.system.log(f"{self.mm.task.comm}[{self.mm.task.pid}]: {msg} (SIGABRT)")
        self._emit("malloc_abort", msg)
        self.mm.task.kill(f"Aborted: {msg}")
        raise MallocAbort(f"{msg}\nAborted (core dumped)")

    # -- the bin ----------------------------------------------------------------------------
    def _link(self, c: int) -> None:
        """Put chunk c at the head of the bin."""
        first = self._fd(BIN)
        self._word(c + 16, first)
        self._word(c + 24, BIN)
        self._word(first + 24, c)
        self._word(BIN + 16, c)

    def _unlink(self, p: int) -> None:
        """``unlink_chunk()``, with glibc's two checks."""
        size = self.chunksize(p)
        if size != self._word(p + size):
            self._abort("corrupted size vs. prev_size")
        fd, bk = self._fd(p), self._bk(p)
        if self._bk(fd) != p or self._fd(bk) != p:
            self._abort("corrupted double-linked list")
        self._word(fd + 24, bk)
        self._word(bk + 16, fd)

    def free_list(self) -> list[int]:
        """The chunks on the bin, from its head, as a debugger would read them (no page is
        touched; stops after 64, or at an address that is not mapped)."""
        out, c = [], self._peek(self._fd, BIN)
        while c != BIN and len(out) < 64 and self.mm.find_vma(c) is not None:
            out.append(c)
            c = self._peek(self._fd, c)
        return out

    def _peek(self, fn, *args):
        old, self._peeking = self._peeking, True
        try:
            return fn(*args)
        finally:
            self._peeking = old

    # -- the system's memory -----------------------------------------------------------------
    def _sysmalloc(self, nb: int) -> int | None:
        """``sysmalloc()``: the bin and the top could not serve nb. A chunk of at least the mmap
        threshold gets a mapping of its own (while fewer than ``n_mmaps_max`` exist); else, or
        if that mmap fails, the top grows with sbrk. The chunk address, or None."""
        # Only here does the threshold count: a big request the top could hold never gets
        # this far, so it comes from the heap (glibc: _int_malloc's use_top: before sysmalloc).
        if nb >= self.mmap_threshold and self.n_mmaps < self.n_mmaps_max:
            c = self._mmap_chunk(nb)
            if c is not None:
                return c
        old = self.chunksize(self.top) if self.top is not None else 0
        size = page_align(nb + self.top_pad + MINSIZE - old)
        brk = self.mm.sbrk(size)
        if brk is None:
            return None
        if self.top is None:
            self.heap_start = self.top = brk
        elif brk != self.top + old:          # pragma: no cover - the break only moves here
            raise KmmError("the break moved behind malloc's back")
        self.system_mem += size
        self._set_head(self.top, (old + size) | PREV_INUSE)
        self._emit("sbrk", f"sbrk({size:#x}): the heap grows to {self.system_mem:#x} bytes",
                   size=size)
        return self._from_top(nb)

    def _from_top(self, nb: int) -> int | None:
        top = self.top
        size = self._size_field(top)
        if (size & ~SIZE_BITS) > self.system_mem:
            self._abort("malloc(): corrupted top size")
        if (size & ~SIZE_BITS) < nb + MINSIZE:
            return None
        self.top = top + nb
        self._set_head(self.top, ((size & ~SIZE_BITS) - nb) | PREV_INUSE)
        self._set_head(top, nb | (size & PREV_INUSE))
        return top

    def _mmap_chunk(self, nb: int) -> int | None:
        """``sysmalloc_mmap()``: a mapping for one chunk. Its size is nb + SIZE_SZ rounded up to
        pages: an mmapped chunk has no next chunk whose prev_size it could borrow."""
        size = page_align(nb + SIZE_SZ)
        addr = self.mm.mmap(0, size)
        if addr is None:
            return None
        self.n_mmaps += 1
        self._word(addr, 0)
        self._set_head(addr, size | IS_MMAPPED)
        return addr

    # -- the API ----------------------------------------------------------------------------
    def malloc(self, n: int) -> int | None:
        """``malloc(n)``: a pointer to at least n usable bytes, or None (NULL, ENOMEM)."""
        if not isinstance(n, int) or n < 0:
            raise BadRequest(f"malloc: size must be a non-negative integer, not {n!r}")
        if n > PTRDIFF_MAX:
            return None
        nb = request2size(n)
        c = self._int_malloc(nb)
        if c is None:
            self._emit("malloc", f"malloc({n}) → NULL (ENOMEM)", size=n)
            return None
        mmapped = ", mmapped" if self._size_field(c) & IS_MMAPPED else ""
        self._emit("malloc", f"malloc({n}) → {c + 16:#x} (chunk {c:#x}, size "
                   f"{self.chunksize(c):#x}{mmapped})", size=n, ptr=c + 16)
        return c + 16

    def _int_malloc(self, nb: int) -> int | None:
        """``_int_malloc()``: the bin (first fit), then the top chunk (``use_top:``), then
        ``sysmalloc()`` — which alone decides between sbrk and mmap."""
        c = self._fd(BIN)
        while c != BIN:                                # first fit, following fd
            size = self.chunksize(c)
            if size <= 2 * SIZE_SZ or size > self.system_mem:
                self._abort("malloc(): invalid size (unsorted)")
            if size < nb:
                c = self._fd(c)
                continue
            self._unlink(c)
            if size - nb >= MINSIZE:                   # split; the rest goes back on the bin
                rem = c + nb
                self._set_head(c, nb | (self._size_field(c) & PREV_INUSE))
                self._set_head(rem, (size - nb) | PREV_INUSE)
                self._set_foot(rem, size - nb)
                self._link(rem)
            else:                                      # set_inuse_bit_at_offset(c, size)
                self._set_head(c + size, self._size_field(c + size) | PREV_INUSE)
            return c
        if self.top is not None:
            c = self._from_top(nb)
            if c is not None:
                return c
        return self._sysmalloc(nb)

    def free(self, p: int | None) -> None:
        """``free(p)``: give the chunk back; merge it with free neighbours and the top."""
        if not p:
            return
        c = p - 16
        size_field = self._size_field(c)
        size = size_field & ~SIZE_BITS
        if c > (-size) % 2**64 or c & MALLOC_ALIGN_MASK:     # p > -size || misaligned
            self._abort("free(): invalid pointer")
        if size < MINSIZE or size & MALLOC_ALIGN_MASK:
            self._abort("free(): invalid size")
        if size_field & IS_MMAPPED:
            # __libc_free's dynamic threshold: a block this big was freed, so blocks of this
            # size come and go; from now on they come from the heap, and the top may keep
            # twice as much before it is trimmed, or each one would be sbrk'ed and trimmed
            # again. The raw size field (IS_MMAPPED set) is compared, as glibc does.
            note = ""
            if not self.no_dyn_threshold and self.mmap_threshold < size_field <= \
                    DEFAULT_MMAP_THRESHOLD_MAX:
                self.mmap_threshold = size
                self.trim_threshold = 2 * size
                note = f"; mmap threshold now {size:#x}, trim threshold {2 * size:#x}"
            self._munmap_chunk(c)
            self._emit("free", f"free({p:#x}): munmap of a {size:#x}-byte chunk{note}", ptr=p)
            return
        if self.heap_start is None or not self.heap_start <= c < self.top + self.chunksize(
                self.top):
            self._abort("free(): invalid pointer")
        if c == self.top:
            self._abort("double free or corruption (top)")
        nxt = c + size
        if nxt >= self.top + self.chunksize(self.top):
            self._abort("double free or corruption (out)")
        if not self._prev_inuse(nxt):
            self._abort("double free or corruption (!prev)")
        nextsize = self.chunksize(nxt)
        if nextsize <= 2 * SIZE_SZ or nextsize >= self.system_mem:
            self._abort("free(): invalid next size (normal)")
        if not size_field & PREV_INUSE:                # consolidate backward
            prevsize = self._word(c)
            prev = c - prevsize
            if self.chunksize(prev) != prevsize:
                self._abort("corrupted size vs. prev_size while consolidating")
            self._unlink(prev)
            c, size = prev, size + prevsize
        if nxt != self.top:
            if not self._prev_inuse(nxt + nextsize):   # the next chunk is free: take it
                self._unlink(nxt)
                size += nextsize
            else:                                      # clear_inuse_bit_at_offset(nxt, 0)
                self._set_head(nxt, self._size_field(nxt) & ~PREV_INUSE)
            self._set_head(c, size | PREV_INUSE)
            self._set_foot(c, size)
            self._link(c)
        else:
            self._set_head(c, (size + nextsize) | PREV_INUSE)
            self.top = c
        self._emit("free", f"free({p:#x}): chunk {c:#x} is free, size {self.chunksize(c):#x}"
                   f"{' (merged into the top chunk)' if c == self.top else ''}", ptr=p)
        if c == self.top and self.chunksize(c) >= self.trim_threshold:
            self._systrim()

    def _munmap_chunk(self, c: int) -> None:
        """``munmap_chunk()``: give an mmapped chunk's mapping back (no threshold change)."""
        size = self.chunksize(c)
        if (c | size) & (PAGE_SIZE - 1):
            self._abort("munmap_chunk(): invalid pointer")
        self.mm.munmap(c, size)
        self.mem.drop(c, c + size)
        self.n_mmaps -= 1

    def _mremap_chunk(self, c: int, nb: int) -> int | None:
        """``mremap_chunk()``: resize an mmapped chunk's mapping to hold nb, in place or moved
        (``mremap`` carries the page-table entries: nothing is copied). The chunk, or None if
        the kernel refused."""
        size = self.chunksize(c)
        if (c | size) & (PAGE_SIZE - 1):
            self._abort("mremap_chunk(): invalid pointer")
        new_size = page_align(nb + SIZE_SZ)            # the same SIZE_SZ as _mmap_chunk
        if new_size == size:                           # the same number of pages
            return c
        new = self.mm.mremap(c, size, new_size, MREMAP_MAYMOVE)
        if new is None:
            return None
        if new_size < size:                            # the tail's pages are gone
            self.mem.drop(c + new_size, c + size)
        if new != c:
            self.mem.move(c, new, min(size, new_size))
        self._set_head(new, new_size | IS_MMAPPED)
        return new

    def _systrim(self) -> None:
        """``systrim()``: give the top's excess back to the kernel with a negative sbrk."""
        top_size = self.chunksize(self.top)
        extra = (top_size - self.top_pad - MINSIZE - 1) & ~(PAGE_SIZE - 1)
        if extra <= 0:
            return
        end = self.top + top_size
        if self.mm.sbrk(-extra) is None:               # pragma: no cover - shrinking works
            return
        self.mem.drop(end - extra, end)
        self.system_mem -= extra
        self._set_head(self.top, (top_size - extra) | PREV_INUSE)
        self._emit("sbrk", f"sbrk(-{extra:#x}): the top of the heap goes back to the kernel",
                   size=-extra)

    def calloc(self, nmemb: int, size: int) -> int | None:
        """``calloc()``: nmemb × size zeroed bytes; None when the product overflows."""
        total = nmemb * size
        if nmemb < 0 or size < 0:
            raise BadRequest("calloc: counts must not be negative")
        if total >= 1 << 64:
            return None                                # "ENOMEM: nmemb * size overflows"
        p = self.malloc(total)
        if p is not None and not self._size_field(p - 16) & IS_MMAPPED:
            self.memset(p, 0, self.usable_size(p))
        return p

    def realloc(self, p: int | None, n: int) -> int | None:
        """``realloc()`` (``__libc_realloc()``, ``_int_realloc()``): resize in place when it can
        (shrink; grow into a free neighbour or the top; ``mremap`` an mmapped chunk, to any
        size), else malloc + copy + free. ``realloc(p, 0)`` frees and returns NULL, as glibc
        does; on failure p is left alone."""
        if p is None or p == 0:
            return self.malloc(n)
        if n == 0:
            self.free(p)
            return None
        c = p - 16
        nb = request2size(n)
        size_field = self._size_field(c)
        oldsize = size_field & ~SIZE_BITS
        # __libc_realloc's "little security check": no chunk wraps around the address space.
        if c > (-oldsize) % 2**64 or c & MALLOC_ALIGN_MASK:
            self._abort("realloc(): invalid pointer")
        if size_field & IS_MMAPPED:
            # mremap first, shrinking too: the pages past the new end go back to the kernel.
            new = self._mremap_chunk(c, nb)
            if new is not None:
                return new + 16
            if oldsize - SIZE_SZ >= nb:                # the kernel refused; it still fits
                return p
            q = self.malloc(n)
            if q is not None:
                self.write(q, self.read(p, oldsize - CHUNK_HDR_SZ))
                self._munmap_chunk(c)                  # not free(): no threshold change
            return q
        # _int_realloc checks both sizes before it believes them: an overflow into the next
        # chunk's header is caught here instead of being followed into wild memory.
        if size_field <= CHUNK_HDR_SZ or oldsize >= self.system_mem:
            self._abort("realloc(): invalid old size")
        nxt = c + oldsize
        nextsize = self.chunksize(nxt)
        if self._size_field(nxt) <= CHUNK_HDR_SZ or nextsize >= self.system_mem:
            self._abort("realloc(): invalid next size")
        if oldsize >= nb:
            self._shrink(c, oldsize, nb)
            return p
        if nxt == self.top and oldsize + nextsize >= nb + MINSIZE:
            self._set_head(c, nb | (size_field & PREV_INUSE))
            self.top = c + nb
            self._set_head(self.top, (oldsize + nextsize - nb) | PREV_INUSE)
            return p
        if nxt != self.top and not self._prev_inuse(nxt + nextsize) and \
                oldsize + nextsize >= nb:
            total = oldsize + nextsize
            self._unlink(nxt)
            self._set_head(c, total | (size_field & PREV_INUSE))
            self._set_head(c + total, self._size_field(c + total) | PREV_INUSE)
            self._shrink(c, total, nb)
            return p
        q = self.malloc(n)
        if q is None:
            return None
        self.write(q, self.read(p, oldsize - SIZE_SZ))
        self.free(p)
        return q

    def _shrink(self, c: int, size: int, nb: int) -> None:
        if size - nb < MINSIZE:
            return
        flags = self._size_field(c) & PREV_INUSE
        self._set_head(c, nb | flags)
        self._set_head(c + nb, (size - nb) | PREV_INUSE)
        self.free(c + nb + 16)

    def usable_size(self, p: int) -> int:
        """``malloc_usable_size()``: the bytes the program may really use."""
        c = p - 16
        if self._size_field(c) & IS_MMAPPED:
            return self.chunksize(c) - 2 * SIZE_SZ
        return self.chunksize(c) - SIZE_SZ

    # -- looking at it ------------------------------------------------------------------------
    def chunks(self) -> list[tuple[int, int, str]]:
        """Walk the heap from its start: (chunk address, size, "in use" | "free" | "top")."""
        return self._peek(self._chunks)

    def _chunks(self) -> list[tuple[int, int, str]]:
        out: list[tuple[int, int, str]] = []
        if self.heap_start is None:
            return out
        end = self.heap_start + self.system_mem
        c = self.heap_start
        while c < end:
            size = self.chunksize(c)
            if c == self.top:
                out.append((c, size, "top"))
                break
            if size < MINSIZE or c + size > end:
                out.append((c, size, "corrupt"))
                break
            state = "in use" if self._prev_inuse(c + size) else "free"
            out.append((c, size, state))
            c += size
        return out

    def render(self) -> str:
        """The heap, chunk by chunk, and the bin."""
        return self._peek(self._render)

    def _render(self) -> str:
        if self.heap_start is None:
            return "heap: not created yet (no malloc from the heap so far)"
        lines = [f"heap {self.heap_start:#x}-{self.heap_start + self.system_mem:#x} "
                 f"({self.system_mem // 1024} KiB from sbrk), {self.n_mmaps} mmapped chunk(s)"]
        for c, size, state in self.chunks():
            flags = self._size_field(c) & SIZE_BITS
            bits = "P" if flags & PREV_INUSE else "-"
            extra = ""
            if state == "in use":
                extra = f"  user {c + 16:#x}, {size - SIZE_SZ} usable"
            elif state == "free":
                extra = f"  fd {self._fd(c):#x} bk {self._bk(c):#x}"
            elif state == "corrupt":
                extra = f"  size field {self._size_field(c):#x} makes no sense: the walk stops"
            lines.append(f"  {c:#x}  size {size:#8x} [{bits}] {state:<7}{extra}")
        fl = self.free_list()
        lines.append("bin: " + (" → ".join(f"{c:#x}" for c in fl) if fl else "(empty)"))
        return "\n".join(lines)
