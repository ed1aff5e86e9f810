"""``python experiments/predict.py``: see :mod:`experiments.commands.predict`."""

import sys

from experiments.commands.predict import main

if __name__ == "__main__":
    sys.exit(main())
