"""The one exception type for input a user can fix.

The ``codegym`` command prints a :class:`UserError` as one line (exit status 2) and lets anything else
crash with its traceback: a bug, an out-of-memory error or a failing library is not the user's mistake,
and a one-line "usage" message would hide where it came from.

Raise it where the library checks a value that came from its caller (an argument, a configuration key,
a file or a task id the user named), with a message that names the bad value and the fix. It is a
:class:`ValueError`, so code that catches ``ValueError`` around a library call keeps working.

Example:
    >>> try:
    ...     raise UserError("n_tasks must be an int >= 1, got 0")
    ... except ValueError as exc:
    ...     print(exc)
    n_tasks must be an int >= 1, got 0
"""

from __future__ import annotations

import importlib.util


class UserError(ValueError):
    """A value from the caller (an argument, a configuration, a file, a task id) that the caller can fix;
    the message names the value and the fix."""


class MissingInputError(UserError, FileNotFoundError):
    """A file or folder the caller named (or a package it must install) is not there; the message says
    where it was looked for and how to make it. Also a :class:`FileNotFoundError`."""


def require_extra(module: str, extra: str, purpose: str) -> None:
    """Refuse, naming the extra to install, when ``module`` (an optional stack) is not installed.

    Raises:
        MissingInputError: ``module`` cannot be imported here.

    Example:
        >>> require_extra("json", "none", "this example")  # installed: nothing happens
    """
    if importlib.util.find_spec(module) is None:
        raise MissingInputError(
            f"{purpose} needs {module}, which is not installed: pip install 'codegym[{extra}]' "
            "(make install installs every extra)"
        )


__all__ = ["MissingInputError", "UserError", "require_extra"]
