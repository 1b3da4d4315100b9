"""Where /proc files come from: the live /proc, a folder of copies, or the bundled snapshot.

Every reader in kmmlib goes through a :class:`ProcSource`, so that the same code runs on the
learner's Linux machine, on a folder of copies (``kmm ... --from DIR``, or the environment
variable ``KMMLIB_PROC_ROOT`` for notebooks), and on macOS or as a non-root user, where a file is
missing or unreadable (``/proc/pagetypeinfo`` and ``/proc/slabinfo`` are mode 0400). A file that
cannot be read falls back to the copy bundled in the package (one real Linux 6.18 x86_64 machine,
2 CPUs, 24 GiB) and the source records a note that says so; callers print :meth:`notes`.

File names are the short names of ``/proc`` (``meminfo``, ``zoneinfo``, ``buddyinfo``,
``pagetypeinfo``, ``slabinfo``, ``vmstat``) and of the ``vm`` sysctls (``min_free_kbytes``,
``watermark_scale_factor``, ``lowmem_reserve_ratio``), which live under ``/proc/sys/vm/`` on a
live machine and beside the others in a folder of copies. ``nproc`` is the number of CPUs.
"""

from __future__ import annotations

import os
from pathlib import Path

from kmmlib.errors import KmmError, ParseError

SNAPSHOT_DIR = Path(__file__).resolve().parent.parent / "data" / "snapshot"
ENV_VAR = "KMMLIB_PROC_ROOT"
SYSCTLS = ("min_free_kbytes", "watermark_scale_factor", "lowmem_reserve_ratio",
           "overcommit_memory", "overcommit_ratio", "overcommit_kbytes", "stat_interval")


def read_text(path: str | os.PathLike) -> str:
    """A file's text (UTF-8), or a ParseError saying it is not text, with the first byte
    that is not (OSError as it comes: a missing file is the caller's to report)."""
    data = Path(path).read_bytes()
    try:
        return data.decode()
    except UnicodeDecodeError as err:
        raise ParseError(f"{path}: not a text file (byte {err.start} is "
                         f"{data[err.start]:#04x})") from None


class ProcFileMissing(KmmError, FileNotFoundError):
    """A file that neither the chosen source nor the bundled snapshot has."""


class ProcSource:
    """Reads /proc files from one root, falling back to the bundled snapshot.

    ``root=None`` means ``$KMMLIB_PROC_ROOT`` when set, else the live ``/proc``.
    ``fallback=False`` makes a missing file an error instead (tests use it).
    """

    def __init__(self, root: str | os.PathLike | None = None, *, fallback: bool = True):
        if root is None:
            root = os.environ.get(ENV_VAR) or "/proc"
        self.root = Path(root)
        self.live = self.root == Path("/proc")
        self.fallback = fallback
        self._origins: dict[str, str] = {}
        self._notes: list[str] = []

    def __repr__(self) -> str:
        return f"ProcSource({str(self.root)!r})"

    @property
    def is_snapshot(self) -> bool:
        return self.root.resolve() == SNAPSHOT_DIR

    def path(self, name: str) -> Path:
        """The path that holds ``name`` under this source's root."""
        if self.live and name in SYSCTLS:
            return self.root / "sys" / "vm" / name
        return self.root / name

    def _read_own(self, name: str) -> str:
        if self.live and name == "nproc":
            return f"{os.cpu_count() or 1}\n"
        return read_text(self.path(name))

    def read(self, name: str) -> str:
        """The text of ``name``, from this source or else from the bundled snapshot."""
        try:
            text = self._read_own(name)
            self._origins[name] = str(self.path(name))
            return text
        except OSError as err:
            why = "permission denied" if isinstance(err, PermissionError) else "not found"
            if not self.fallback or self.is_snapshot:
                raise ProcFileMissing(f"{self.path(name)}: {why}") from err
            snap = SNAPSHOT_DIR / name
            if not snap.exists():
                raise ProcFileMissing(
                    f"{self.path(name)}: {why}, and the bundled snapshot has no {name}"
                ) from err
            note = (f"{self.path(name)}: {why}; using the bundled snapshot "
                    f"(Linux 6.18, x86_64) instead")
            if note not in self._notes:
                self._notes.append(note)
            self._origins[name] = f"bundled snapshot ({snap.name})"
            return snap.read_text()

    def origin(self, name: str) -> str:
        """Where ``name`` was last read from (a path, or 'bundled snapshot')."""
        return self._origins.get(name, "not read yet")

    def fell_back(self, name: str) -> bool:
        return self._origins.get(name, "").startswith("bundled snapshot")

    def notes(self) -> list[str]:
        """One line per file that had to come from the bundled snapshot."""
        return list(self._notes)


def snapshot() -> ProcSource:
    """The bundled snapshot itself (deterministic: notebooks use it for checked outputs)."""
    return ProcSource(SNAPSHOT_DIR, fallback=False)
