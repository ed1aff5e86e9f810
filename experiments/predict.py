"""``python experiments/predict.py``: see :mod:`experiments.commands.predict`."""

from core.interrupts import exit_with
from experiments.commands.predict import main


def run() -> None:
    """``vggface-predict``, installed: :func:`main`, ended by :func:`~core.interrupts.exit_with`."""
    exit_with(main())


if __name__ == "__main__":
    run()
