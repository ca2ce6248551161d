"""``python -m mobile_skin.predict``: runs :mod:`mobile_skin.model.predict`."""

import sys

from mobile_skin.model.predict import main

if __name__ == "__main__":
    sys.exit(main())
