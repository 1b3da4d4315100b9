"""The exceptions kmmlib raises. Their messages read like the kernel's reports.

Every error a learner can cause derives from :class:`KmmError`, so the ``kmm`` command can turn
any of them into one line, and the simulator's state is left as it was before the bad call.
"""


class KmmError(Exception):
    """Base of every error kmmlib reports to a user."""


class ParseError(KmmError, ValueError):
    """Malformed input: a /proc file, a trace line, an ops file, a flag string."""


class BadRequest(KmmError, ValueError):
    """A request the kernel would refuse, such as an invalid order (``invalid order``)."""


class BadPageState(KmmError):
    """``BUG: Bad page state``: a free of a free page, a wrong order, a foreign pfn."""
