"""``python experiments/compare.py``: see :mod:`experiments.commands.compare`."""

from core.interrupts import exit_with
from experiments.commands.compare import main


def run() -> None:
    """``vggface-compare``, installed: :func:`main`, ended by :func:`~core.interrupts.exit_with`."""
    exit_with(main())


if __name__ == "__main__":
    run()
