"""``python experiments/sweep.py``: the sweep (:mod:`experiments.commands.sweep`)."""

import sys

from experiments.commands.sweep import main

if __name__ == "__main__":
    sys.exit(main())
