"""``python -m mobile_skin.synthetic``: runs :mod:`mobile_skin.data.synthetic`."""

import sys

from mobile_skin.data.synthetic import main

if __name__ == "__main__":
    sys.exit(main())
