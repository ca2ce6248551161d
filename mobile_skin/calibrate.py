"""``python -m mobile_skin.calibrate``: runs :mod:`mobile_skin.evaluation.calibrate`."""

import sys

from mobile_skin.evaluation.calibrate import main

if __name__ == "__main__":
    sys.exit(main())
