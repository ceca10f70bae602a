"""The command line's user-facing failure."""


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 2, no traceback."""
