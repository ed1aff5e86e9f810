"""``python experiments/extract.py``: see :mod:`experiments.commands.extract`."""

from core.interrupts import exit_with
from experiments.commands.extract import main

if __name__ == "__main__":
    exit_with(main())
