"""``python -m mobile_skin.android_golden``: runs :mod:`mobile_skin.contract.android_golden`."""

import sys

from mobile_skin.contract.android_golden import main

if __name__ == "__main__":
    sys.exit(main())
