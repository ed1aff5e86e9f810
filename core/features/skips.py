"""How clips skipped in extraction are said: a warning each, but clips too short for ``--frames``
only the first few, then one line that the others are counted. A ``--frames`` above every clip's
length had named each of 160 clips before its one-line error (probe); the data summary and that
error count them all, and the entry's manifest lists each clip's outcome."""

from __future__ import annotations

import logging
from pathlib import Path

from core.data.frames import frames_of_short_clip

SHORT_NAMED = 5  # clips too short for --frames named one by one
# every clip a warning named in this process: extract.py's summary names only the others (it
# named each clip twice: probe Y)
NAMED: set[str] = set()


class SkipWarnings:
    """Call with each skipped clip's path and reason, in order, for one extraction."""

    def __init__(self, log: logging.Logger) -> None:
        self.log, self.short = log, 0

    def __call__(self, path: str | Path, reason: str) -> None:
        if frames_of_short_clip(reason) is not None:
            self.short += 1
            if self.short == SHORT_NAMED + 1:  # said once there is a further one (review)
                self.log.warning(
                    "further clips with fewer frames than asked for are skipped without a line "
                    "each (the summary counts them)"
                )
            if self.short > SHORT_NAMED:
                return
        self.log.warning("skipped clip %s: %s", path, reason)
        NAMED.add(str(path))
