"""``python -m mobile_skin.sweep``: runs :mod:`mobile_skin.training.sweep`."""

import sys

from mobile_skin.training.sweep import main

if __name__ == "__main__":
    sys.exit(main())
