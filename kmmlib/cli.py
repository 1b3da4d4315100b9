"""The ``kmm`` command: the simulator from a terminal, and the contract the tests hold.

Each subcommand is one module in :mod:`kmmlib.commands` that defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; a command that needs ``-h`` for itself
(``kmm free -h``) sets ``HELP_SHORT_OPTION = False`` and keeps ``--help``.

This file finds them and gives every one the common options ``--from DIR`` (a folder of /proc
copies; ``args.source`` is the :class:`~kmmlib.procfs.source.ProcSource` built from it) and
``--json``. It runs the command and turns kmmlib's errors into one clear line on stderr and
exit status 2, never a traceback. Notes about files that fell back to the bundled snapshot go
to stderr, so ``--json`` output on stdout stays parseable.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

from kmmlib import commands
from kmmlib.errors import KmmError
from kmmlib.procfs.source import ProcSource


def _command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{commands.__name__}.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kmm",
        description="kmm-course: a kernel-faithful simulator of Linux memory management.",
        epilog="Every subcommand takes --json and --from DIR; 'kmm SUBCOMMAND --help' for more.",
    )
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    for mod in _command_modules():
        short_help = getattr(mod, "HELP_SHORT_OPTION", True)
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP, add_help=short_help)
        if not short_help:
            p.add_argument("--help", action="help", help="show this help message and exit")
        p.add_argument("--from", dest="from_dir", metavar="DIR",
                       help="read /proc files from DIR instead of the live /proc")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.from_dir is not None and not Path(args.from_dir).is_dir():
        # A folder the user named and mistyped must not quietly become the bundled snapshot
        # (a file missing *from* a folder does, with a note).
        why = "not a directory" if Path(args.from_dir).exists() else "no such directory"
        print(f"kmm {args.command}: --from {args.from_dir}: {why}", file=sys.stderr)
        return 2
    args.source = ProcSource(args.from_dir)
    try:
        status = args._run(args)
    except KmmError as err:
        print(f"kmm {args.command}: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `kmm ... | head`
        return 0
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback (128 + SIGINT)
        print(f"kmm {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED
    for note in args.source.notes():
        print(f"note: {note}", file=sys.stderr)
    return status or 0


def console_main() -> None:
    """The ``kmm`` program (and ``python -m kmmlib``): :func:`main`, and after a Ctrl-C die by
    SIGINT, as shell tools do, so that a script or loop that ran ``kmm`` stops too (an exit
    status of 130 would let it go on)."""
    status = main()
    if status == INTERRUPTED:
        import os
        import signal

        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    sys.exit(status)


if __name__ == "__main__":
    console_main()
