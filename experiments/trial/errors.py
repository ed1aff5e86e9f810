"""How a trial fails without failing its worker (no Keras here: the sweep's console names it)."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the trial fails with this reason, the study goes on."""


class DiskFull(KeyboardInterrupt):
    """A trial's files did not fit on the disk (the tracking store's artifacts, a report): the
    worker stops as at Ctrl-C, its trial queued again, and says so in one line (it was a failed
    trial, never run again, and a traceback: probe). A KeyboardInterrupt, as Optuna fails such a
    trial and lets it through, and the worker queues it again."""
