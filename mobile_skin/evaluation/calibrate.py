"""``python -m mobile_skin.calibrate [RUN]``: temperature-scale a finished run's probabilities.

Training does this by itself at the end (unless ``--no-calibration``); this command calibrates a
run trained before that existed, refits after the run's data changed, or with ``--off`` goes back
to raw softmax. It fits one temperature on the validation split, folds it into ``best.keras``
(the uncalibrated model is kept as ``best_uncalibrated.keras``) and records it in
``model_spec.json``; see :mod:`mobile_skin.evaluation.temperature`. Export again afterwards: an
exported file carries the calibration of the ``best.keras`` it was made from.
"""

from __future__ import annotations

import argparse
import sys

import mobile_skin  # noqa: F401
from mobile_skin.common.cli_args import add_data_dir, description
from mobile_skin.common.errors import cli
from mobile_skin.data.run import resolve_run
from mobile_skin.evaluation.temperature import calibrate_run


@cli
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(
        prog="python -m mobile_skin.calibrate", description=description(__doc__)
    )
    p.add_argument("run", nargs="?", help="run directory (default runs/latest)")
    add_data_dir(p)
    p.add_argument(
        "--off", action="store_true", help="restore the uncalibrated model (raw softmax)"
    )
    args = p.parse_args(argv)
    calibrate_run(resolve_run(args.run), enable=not args.off, data_dir=args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
