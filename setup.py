"""The one compiled piece: kmmlib/trace/_ftrace.c, the C fast path of the trace parser.

``optional=True``: where it cannot be built (no C compiler, no Python headers), the install
goes on and kmmlib reads traces in pure Python — the same records, about four times slower
(see kmmlib/trace/parse.py; `make bench` prints both speeds). Everything else is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("kmmlib.trace._ftrace", ["kmmlib/trace/_ftrace.c"],
                             optional=True)])
