"""The one error type a user sees: bad input, printed by the CLI as one line with exit status 2."""


class InputError(ValueError):
    """A problem with the user's input (a file, an option, an array, the data); the message names it in one line.

    A `ValueError`, so library callers may catch it as one."""
