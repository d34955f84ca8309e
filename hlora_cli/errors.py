"""The one exception type users see: a one-line message saying what is wrong and what to change."""


class HloraError(Exception):
    """A user-facing error. The CLI prints its message on one line, without a traceback."""
