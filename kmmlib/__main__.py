"""``python -m kmmlib`` is the ``kmm`` command."""

from kmmlib.cli import console_main

console_main()
