"""How a trial fails without failing its worker (no Keras here: the sweep's console names it)."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the trial fails with this reason, the study goes on."""
