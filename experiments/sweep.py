"""``python experiments/sweep.py``: the sweep (:mod:`experiments.commands.sweep`)."""

from core.interrupts import exit_with
from experiments.commands.sweep import main


def run() -> None:
    """``vggface-sweep``, installed: :func:`main`, ended by :func:`~core.interrupts.exit_with`."""
    exit_with(main())


if __name__ == "__main__":
    run()
