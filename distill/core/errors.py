"""The one exception users can cause: its message names the bad value and the fix."""


class DistillError(Exception):
    """A problem with the user's input, data or configuration (not a bug).

    The message is a single line that says what is wrong and how to fix it; the
    command-line entry points print it as ``error: <message>`` and exit with 2.
    """


__all__ = ["DistillError"]
