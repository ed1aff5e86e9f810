"""``python experiments/extract.py``: see :mod:`experiments.commands.extract`."""

import sys

from experiments.commands.extract import main

if __name__ == "__main__":
    sys.exit(main())
