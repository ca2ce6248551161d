"""``python -m mobile_skin.train``: runs :mod:`mobile_skin.training.train`."""

import sys

from mobile_skin.training.train import main

if __name__ == "__main__":
    sys.exit(main())
