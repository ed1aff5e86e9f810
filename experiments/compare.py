"""``python experiments/compare.py``: see :mod:`experiments.commands.compare`."""

import sys

from experiments.commands.compare import main

if __name__ == "__main__":
    sys.exit(main())
