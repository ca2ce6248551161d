"""``python -m mobile_skin.evaluate``: runs :mod:`mobile_skin.evaluation.evaluate`."""

import sys

from mobile_skin.evaluation.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
