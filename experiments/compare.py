"""``python experiments/compare.py``: see :mod:`experiments.commands.compare`."""

from core.interrupts import exit_with
from experiments.commands.compare import main

if __name__ == "__main__":
    exit_with(main())
