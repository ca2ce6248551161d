"""``python -m mobile_skin.compare``: runs :mod:`mobile_skin.evaluation.compare`."""

import sys

from mobile_skin.evaluation.compare import main

if __name__ == "__main__":
    sys.exit(main())
