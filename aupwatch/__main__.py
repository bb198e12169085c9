"""``python -m aupwatch``: the same as the ``aupwatch`` console script."""

import sys

from aupwatch.cli import main

sys.exit(main())
