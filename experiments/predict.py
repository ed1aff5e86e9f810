"""``python experiments/predict.py``: see :mod:`experiments.commands.predict`."""

from core.interrupts import exit_with
from experiments.commands.predict import main

if __name__ == "__main__":
    exit_with(main())
