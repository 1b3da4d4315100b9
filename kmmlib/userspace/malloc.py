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
- a request whose chunk size is ``M_MMAP_THRESHOLD`` (128 KiB) or more gets its own
  ``mmap()``; ``free()`` unmaps it, ``realloc()`` moves it with ``mremap()`` (no copy).
- the integrity checks and their messages are glibc's: ``free(): invalid pointer``,
  ``free(): invalid size``, ``double free or corruption (top|out|!prev)``,
  ``free(): invalid next size (normal)``, ``corrupted size vs. prev_size``,
  ``corrupted double-linked list``, ``malloc(): corrupted top size``. A failed check aborts:
  :class:`MallocAbort`, and the process is gone.

Simplified (one line each): one bin searched first-fit (glibc has tcache, fastbins, the
unsorted, small and large bins — tcache and fastbins check far less); no arenas or threads;
such a big chunk is mmapped at once (glibc first tries the bins and the top chunk, which
rarely hold that much) and the mmap threshold does not adapt; calloc zeroes every heap chunk
(glibc skips memory fresh from the kernel, which is already zero) but not mmapped ones.
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
M_MMAP_THRESHOLD = 128 * 1024
M_TOP_PAD = 128 * 1024
M_TRIM_THRESHOLD = 128 * 1024
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
    """

    def __init__(self, mm: MmStruct | None = None, *, mmap_threshold: int = M_MMAP_THRESHOLD,
                 top_pad: int = M_TOP_PAD, trim_threshold: int = M_TRIM_THRESHOLD):
        if mm is None:
            mm = System(65536, watermarks=False, init=False).spawn("a.out").mm
        self.mm = mm
        self.mem = Memory()
        self.mmap_threshold = mmap_threshold
        self.top_pad = top_pad
        self.trim_threshold = trim_threshold
        self.heap_start: int | None = None
        self.top: int | None = None
        self.system_mem = 0                  # bytes the heap has from sbrk
        self.n_mmaps = 0
        self._peeking = False                # looking (render) is not a program's access
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
        if value is None:
            self._touch(addr, 8, False)
            return int.from_bytes(self.mem.read(addr, 8), "little")
        self._touch(addr, 8, True)
        self.mem.write(addr, (value & (2**64 - 1)).to_bytes(8, "little"))
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
        """Grow the top chunk with sbrk (``sysmalloc()``); the chunk address, or None."""
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
        if nb >= self.mmap_threshold:
            c = self._mmap_chunk(nb)
            if c is not None:
                return c
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
            if (c | size) & (PAGE_SIZE - 1):
                self._abort("munmap_chunk(): invalid pointer")
            self.mm.munmap(c, size)
            self.mem.drop(c, c + size)
            self.n_mmaps -= 1
            self._emit("free", f"free({p:#x}): munmap of a {size:#x}-byte chunk", ptr=p)
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
        """``realloc()``: resize in place when it can (shrink; grow into a free neighbour or
        the top; ``mremap`` an mmapped chunk), else malloc + copy + free. ``realloc(p, 0)``
        frees and returns NULL, as glibc does; on failure p is left alone."""
        if p is None or p == 0:
            return self.malloc(n)
        if n == 0:
            self.free(p)
            return None
        c = p - 16
        nb = request2size(n)
        size_field = self._size_field(c)
        oldsize = size_field & ~SIZE_BITS
        if size_field & IS_MMAPPED:
            if oldsize - SIZE_SZ >= nb:
                return p
            new = self.mm.mremap(c, oldsize, page_align(nb + SIZE_SZ), MREMAP_MAYMOVE)
            if new is not None:
                self.mem.move(c, new, oldsize)
                self._set_head(new, page_align(nb + SIZE_SZ) | IS_MMAPPED)
                return new + 16
            q = self.malloc(n)
            if q is not None:
                self.write(q, self.read(p, oldsize - 2 * SIZE_SZ))
                self.free(p)
            return q
        if oldsize >= nb:
            self._shrink(c, oldsize, nb)
            return p
        nxt = c + oldsize
        if nxt == self.top and oldsize + self.chunksize(self.top) >= nb + MINSIZE:
            top_size = self.chunksize(self.top)
            self._set_head(c, nb | (size_field & PREV_INUSE))
            self.top = c + nb
            self._set_head(self.top, (oldsize + top_size - nb) | PREV_INUSE)
            return p
        if nxt != self.top and not self._prev_inuse(nxt + self.chunksize(nxt)) and \
                oldsize + self.chunksize(nxt) >= nb:
            total = oldsize + self.chunksize(nxt)
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
