"""User-facing errors.

Anything the user can fix (a bad path, a typo in a config key, a malformed file) raises
``RecdistillError``; the CLI prints its message without a traceback and exits with status 2.
"""


class RecdistillError(Exception):
    """An error caused by the user's input, with a message that says how to fix it."""


class ConfigError(RecdistillError):
    """A config key, group or value that is not valid."""


class DataError(RecdistillError):
    """A dataset file that cannot be read as the chosen format."""
