"""``python experiments/sweep.py``: the sweep (:mod:`experiments.commands.sweep`)."""

from core.interrupts import exit_with
from experiments.commands.sweep import main

if __name__ == "__main__":
    exit_with(main())
