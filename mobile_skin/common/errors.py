"""The project's user-facing error type and the wrapper that turns it into a one-line exit.

Everything a user can get wrong (a missing file, a bad flag, a corrupt image) raises
:class:`UserError` with a message that names the file, row or flag. Command-line entry points wrap
their ``main`` in :func:`cli`, which prints ``error: <message>`` on one line and exits non-zero,
instead of a traceback. The arguments several commands share are read in
:mod:`mobile_skin.common.cli_args`.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., int | None])

#: Exit status for a user error (bad input, bad flag). 1 is reserved for "ran, but a check failed".
EXIT_USAGE = 2


class UserError(Exception):
    """Bad input from the user; the message is one line and names what is wrong."""


def cli(main: F) -> F:
    """Decorate a command's ``main``: user errors become one line on stderr and exit 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
