"""``python experiments/extract.py``: see :mod:`experiments.commands.extract`."""

from core.interrupts import exit_with
from experiments.commands.extract import main


def run() -> None:
    """``vggface-extract``, installed: :func:`main`, ended by :func:`~core.interrupts.exit_with`."""
    exit_with(main())


if __name__ == "__main__":
    run()
