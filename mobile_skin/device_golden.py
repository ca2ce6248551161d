"""``python -m mobile_skin.device_golden``: runs :mod:`mobile_skin.export.device_golden`."""

import sys

from mobile_skin.export.device_golden import main

if __name__ == "__main__":
    sys.exit(main())
