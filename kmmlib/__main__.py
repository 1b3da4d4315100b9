"""``python -m kmmlib`` is the ``kmm`` command."""

import sys

from kmmlib.cli import main

sys.exit(main())
