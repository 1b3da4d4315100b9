"""Capturing a kmem trace on the learner's machine, and trimming one to ship.

**Capture** (``python -m kmmlib.trace.capture``; root and tracefs needed)::

    sudo .venv/bin/python -m kmmlib.trace.capture -o my-trace.txt.xz --seconds 5
    sudo .venv/bin/python -m kmmlib.trace.capture -o my-trace.txt.xz -- make -j2

It works in a trace *instance* of its own (``/sys/kernel/tracing/instances/kmm-PID``:
``mkdir`` creates a private ring buffer, so a tracer someone else runs is left alone), enables
the ten ``kmem`` events this course replays, lets the machine run for ``--seconds`` (or runs the
command, stopped at ``--seconds`` with everything it started), stops, copies the ``trace`` file
out (xz-compressed when the name ends in ``.xz``) and removes the instance. It is bounded
twice: in time (``--seconds``, at most 60) and in size (``--buffer-kb`` per CPU, at most 65536:
when the ring buffer is full the kernel overwrites the oldest events, ftrace's default, so the
file keeps the end of the run, and the header's entries-written then exceeds
entries-in-buffer). It refuses politely, with exit status 2, when not root or when no tracefs
is mounted. Then::

    kmm replay my-trace.txt.xz --machine proc

replays it on a simulated machine sized from this machine's /proc.

**The bundled trace** (:func:`bundled_trace`) is real: the first 60,000 events at or after
t = 1045.200 s of the 442,442-event, 4.1 s trace ``kmem-trace.txt.xz`` recorded on the bundled
snapshot's machine (Linux 6.18, x86_64, 2 CPUs) — a 0.78 s window that holds all ten event
types, including the trace's one ``mm_page_alloc_extfrag`` and kdamond's per-cpu drains. It was
made by :func:`trim_trace` (``trim_trace(src, dst, start=1045.2, events=60000)``), which keeps
the header, rewrites its entries line to the new count and adds a ``# kmm-course:`` line saying
what was cut; the event lines are byte for byte the kernel's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from kmmlib.errors import KmmError
from kmmlib.trace.parse import KMEM_EVENTS

BUNDLED_NAME = "kmem-trace-60k.txt.xz"
TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
MAX_SECONDS = 60
MAX_BUFFER_KB = 65536


class CaptureRefused(KmmError):
    """Capturing is not possible here (not root, no tracefs): a polite no."""


def bundled_trace() -> Path:
    """The path of the trimmed real trace shipped with kmmlib."""
    return Path(__file__).resolve().parent.parent / "data" / BUNDLED_NAME


def trim_trace(src, dst, *, start: float | None = None, events: int,
               note: str | None = None) -> int:
    """Copy the header and ``events`` event lines of ``src`` from the first event at or after
    ``start`` (seconds of trace clock; the beginning when None) to ``dst`` (xz when the name
    ends in .xz). The entries line is rewritten to the new count and a ``# kmm-course:`` line
    records the cut. Returns the number of events written."""
    from kmmlib.trace.parse import open_trace

    header: list[str] = []
    body: list[str] = []
    first_ts = last_ts = None
    with open_trace(src) as f:
        for line in f:
            if line.startswith("#"):
                if not body:
                    header.append(line)
                continue
            if len(body) >= events:
                break
            head = line.split(": ", 1)[0]
            try:
                ts = float(head.rsplit(None, 1)[-1])
            except ValueError:
                continue
            if start is not None and ts < start:
                continue
            body.append(line)
            first_ts = ts if first_ts is None else first_ts
            last_ts = ts
    n = len(body)
    out = []
    for line in header:
        if "entries-in-buffer/entries-written:" in line:
            cpus = line.rsplit("#P:", 1)[-1].strip()
            line = f"# entries-in-buffer/entries-written: {n}/{n}   #P:{cpus}\n"
        out.append(line)
    what = note or (f"trimmed from {Path(str(src)).name}: {n} events from t={first_ts} to "
                    f"t={last_ts} (the first {n} at or after "
                    f"{start if start is not None else 'the start'})")
    out.insert(1 if out else 0, f"# kmm-course: {what}\n")
    data = "".join(out + body).encode()
    dst = Path(dst)
    if dst.suffix == ".xz":
        import lzma
        data = lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)
    dst.write_bytes(data)
    return n


# -- capture ---------------------------------------------------------------------------------

def find_tracefs(candidates=TRACEFS_DIRS) -> Path | None:
    """The mounted tracefs (it has ``events/kmem``), or None."""
    for d in candidates:
        p = Path(d)
        if (p / "events" / "kmem").is_dir() and (p / "instances").is_dir():
            return p
    return None


def check_can_capture(tracefs: Path | None, euid: int | None = None) -> Path:
    """The tracefs to use, or :class:`CaptureRefused` saying why not: not root, no tracefs
    mounted, or a ``--tracefs`` directory that is not one."""
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        raise CaptureRefused("capturing kernel events needs root (tracefs is root-only); "
                             "run it with sudo, or replay the bundled trace instead: "
                             "kmm replay")
    if tracefs is None:
        raise CaptureRefused("no tracefs found at " + " or ".join(TRACEFS_DIRS) +
                             "; mount it with 'mount -t tracefs nodev /sys/kernel/tracing' "
                             "(the kernel needs CONFIG_FTRACE), or replay the bundled trace")
    if not ((tracefs / "events" / "kmem").is_dir() and (tracefs / "instances").is_dir()):
        raise CaptureRefused(f"{tracefs} is not a tracefs with kmem events (it has no "
                             "events/kmem/ or no instances/); leave out --tracefs to use "
                             "the mounted one")
    return tracefs


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _run_bounded(command, seconds: float) -> bool:
    """Run ``command`` for at most ``seconds``; True if it ended by itself. It runs in a
    process group of its own, so that stopping it stops what it started too (the compilers
    of a ``make -j2``, not only make): the group gets SIGTERM, then SIGKILL a second later.
    The same happens to what it left running when it ends by itself, and when this process is
    interrupted (Ctrl-C) while waiting: nothing outlives the capture."""
    proc = subprocess.Popen(command, start_new_session=True)
    try:
        proc.wait(timeout=seconds)
        return True
    except subprocess.TimeoutExpired:
        return False
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the command's process group, SIGKILL to what is left a second later, then
    reap the command itself. A group that has already gone is fine."""
    for sig, grace in ((signal.SIGTERM, 1.0), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        if grace is not None:
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and _group_alive(proc.pid):
                proc.poll()
                time.sleep(0.02)
    proc.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def capture(output, *, seconds: float = 5.0, buffer_kb: int = 8192, command=None,
            tracefs: Path | None = None, euid: int | None = None, log=print) -> dict:
    """Record the kmem events for ``seconds`` (or while ``command`` runs, at most that long)
    into ``output``. Returns what was captured (events, lost, bytes)."""
    if not 0 < seconds <= MAX_SECONDS:
        raise CaptureRefused(f"--seconds must be in (0, {MAX_SECONDS}], not {seconds}")
    if not 64 <= buffer_kb <= MAX_BUFFER_KB:
        raise CaptureRefused(f"--buffer-kb must be 64..{MAX_BUFFER_KB}, not {buffer_kb}")
    root = check_can_capture(tracefs if tracefs is not None else find_tracefs(), euid)
    inst = root / "instances" / f"kmm-{os.getpid()}"
    inst.mkdir()                                 # a private ring buffer
    enabled = []
    try:
        _write(inst / "buffer_size_kb", str(buffer_kb))
        _write(inst / "tracing_on", "0")
        for ev in KMEM_EVENTS:
            enable = inst / "events" / "kmem" / ev / "enable"
            if enable.exists():
                _write(enable, "1")
                enabled.append(ev)
        _write(inst / "trace", "")               # clear
        log(f"capturing {', '.join(enabled)} for up to {seconds:g} s "
            f"({buffer_kb} KiB of ring buffer per CPU)")
        _write(inst / "tracing_on", "1")
        t0 = time.monotonic()
        if command:
            if not _run_bounded(command, seconds):
                log(f"the command ran past {seconds:g} s and was stopped")
        else:
            time.sleep(seconds)
        _write(inst / "tracing_on", "0")
        took = time.monotonic() - t0
        out = Path(output)
        src = inst / "trace"
        if out.suffix == ".xz":
            import lzma
            with src.open("rb") as f, lzma.open(out, "wb", preset=6) as g:
                shutil.copyfileobj(f, g)
        else:
            with src.open("rb") as f, out.open("wb") as g:
                shutil.copyfileobj(f, g)
    finally:
        for ev in enabled:
            try:
                _write(inst / "events" / "kmem" / ev / "enable", "0")
            except OSError:
                pass
        try:
            inst.rmdir()
        except OSError:
            # tracefs removes an instance's files itself; a plain directory (a fake tracefs
            # in tests) does not.
            shutil.rmtree(inst, ignore_errors=True)
    from kmmlib.trace.parse import TraceStats, iter_records, open_trace

    stats = TraceStats()
    with open_trace(out) as f:
        for _ in iter_records(f, stats):
            pass
    info = {"output": str(out), "seconds": round(took, 3), "events": stats.nr_events,
            "overwritten": stats.overwritten, "lost_events": stats.lost_events,
            "bytes": out.stat().st_size}
    log(f"wrote {out}: {info['events']} events in {info['seconds']} s, {info['bytes']} bytes"
        + (f"; the ring buffer was full ({info['overwritten']} events lost): raise "
           "--buffer-kb or shorten --seconds" if info["overwritten"] else ""))
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m kmmlib.trace.capture",
        description="Record the kernel's kmem events (root, tracefs) for kmm replay.")
    p.add_argument("-o", "--output", default="kmem-trace.txt.xz",
                   help="where to write the trace (.xz compresses); default %(default)s")
    p.add_argument("--seconds", type=float, default=5.0,
                   help=f"how long to record, at most {MAX_SECONDS} (default %(default)s)")
    p.add_argument("--buffer-kb", type=int, default=8192,
                   help=f"ring buffer per CPU in KiB, at most {MAX_BUFFER_KB} (default "
                        "%(default)s)")
    p.add_argument("--tracefs", default=None, help="tracefs mount point (default: found)")
    p.add_argument("command", nargs=argparse.REMAINDER,
                   help="a command to run while recording (after --)")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    try:
        capture(args.output, seconds=args.seconds, buffer_kb=args.buffer_kb,
                command=command or None,
                tracefs=Path(args.tracefs) if args.tracefs else None)
    except KmmError as err:
        print(f"capture: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"capture: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
