"""One module per ``kmm`` subcommand; :mod:`kmmlib.cli` finds them here."""
