"""The project's user-facing error type and the wrapper that turns it into a one-line exit.

Everything a user can get wrong (a missing file, a bad flag, a corrupt image) raises
:class:`UserError` with a message that names the file, row or flag. Command-line entry points wrap
their ``main`` in :func:`cli`, which prints ``error: <message>`` on one line and exits non-zero,
instead of a traceback. :func:`thread_count` is the one reading of ``--threads`` (``N`` or
``all``) for every command, :func:`add_results_dir` the one ``--out`` of every benchmark (a
results directory).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
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


def thread_count(text: str) -> int:
    """``--threads`` as every command reads it: a positive integer, or ``all`` (every core).

    Raises:
        ValueError: anything else (``argparse`` turns it into a one-line usage error).
    """
    text = str(text).strip()
    if text == "all":
        return os.cpu_count() or 1
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise ValueError(f"not a thread count: {text!r} (use a positive integer or 'all')")


#: Where the benchmarks write their tables unless ``--out DIR`` says otherwise (from the repo root).
RESULTS_DIR = Path("benchmarks/results")


def add_results_dir(parser, writes: str) -> None:
    """``--out DIR`` as every benchmark reads it: the results directory, where it writes
    ``writes`` (e.g. ``"int8_methods_<run>.json and .md"``)."""
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS_DIR,
        metavar="DIR",
        help=f"results directory; writes {writes} there (default {RESULTS_DIR})",
    )
