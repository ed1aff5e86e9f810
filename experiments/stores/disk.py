"""A disk (or quota) that fills as a sweep writes: one line, the worker stopped as at Ctrl-C, the
trial queued again. The stores' room, so the trial, the runs and the commands all name it."""

from __future__ import annotations

import errno

FULL = (errno.ENOSPC, errno.EDQUOT)  # the disk, or the user's quota on it (clusters)


def disk_full(err: BaseException, when: str, then: str) -> DiskFull | None:
    """The :class:`DiskFull` of ``err`` where it is a full disk or quota (else None), saying
    ``when`` it filled ("as trial 3 saved its files") and what the rerun does (``then``)."""
    if not isinstance(err, OSError) or err.errno not in FULL:
        return None
    where = f" ({err.filename})" if err.filename else ""
    return DiskFull(
        f"no space left on the device{where} {when}: free space and rerun the same command {then}"
    )


class DiskFull(KeyboardInterrupt):
    """A trial's files did not fit on the disk (the tracking store's artifacts, a report): the
    worker stops as at Ctrl-C, its trial queued again, and says so in one line (it was a failed
    trial, never run again, and a traceback: probe). A KeyboardInterrupt, as Optuna fails such a
    trial and lets it through, and the worker queues it again."""
