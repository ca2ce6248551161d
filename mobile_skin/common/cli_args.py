"""What several commands' argument parsers share, read in one place.

:func:`thread_count` is the one reading of ``--threads`` (``N`` or ``all``) for every command,
:func:`add_results_dir` the one ``--out`` of every benchmark (a results directory),
:func:`add_data_dir` the one ``--data`` of the commands that read a finished run's images, and
:func:`description` turns a module docstring's first line into a ``--help`` description without
its reStructuredText markup. No TensorFlow here: ``--help`` reads this module.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["RESULTS_DIR", "add_data_dir", "add_results_dir", "description", "thread_count"]

#: ``:role:`~target``` of reStructuredText, e.g. ``:func:`~mobile_skin.quant.qat.quantize_aware```.
_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def description(doc: str | None) -> str:
    """The first line of a module docstring as ``--help`` shows it: ``:mod:`x``` and ````x````
    become plain ``x``."""
    lines = (doc or "").strip().splitlines()
    return _ROLE.sub(r"\1", lines[0] if lines else "").replace("``", "")


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


def add_data_dir(parser) -> None:
    """``--data DIR`` as every command that reads a finished run's images takes it: the data root
    to read them from instead of the directory recorded in the run's config (data moved, or a
    run trained on another machine)."""
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="read the run's images from here instead of the data directory in its config",
    )
