"""What a large NumPy array's fresh memory costs with and without NumPy's huge-page advice.

NumPy asks the kernel to back arrays of 4 MiB and more with transparent huge pages
(``madvise(MADV_HUGEPAGE)``). On a virtual machine whose host takes freed pages back (free page
reporting) and whose kernel compacts memory for a huge page on demand (``defrag`` ``madvise``), a
page touched again after that can cost far more with the advice than without; the sweep's trial
loop turns it off (:func:`experiments.trial.memory.settled`). This bench allocates and fills
``--mb`` MiB arrays (``np.ones``, freed each time) with the advice on and off, interleaved, three
times in a row (the first fresh, the next reusing what was just freed) and once after
``--sleep`` seconds asleep (the host may have taken the pages back); it prints the seconds, the
ratios on / off, and the machine's transparent-huge-page settings.

    python bench/pages.py [--mb 200] [--sleep 6] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # experiments, from a checkout without an install

from bench.engine import cpu  # noqa: E402
from core.quiet import import_backend_quietly  # noqa: E402

import_backend_quietly()  # experiments.trial.memory imports Keras: without TensorFlow's lines
from experiments.trial.memory import huge_pages  # noqa: E402

THP = Path("/sys/kernel/mm/transparent_hugepage")
KINDS = ["1st", "2nd", "3rd", "after sleep"]


def fill(mb: int) -> float:
    """Seconds to allocate and fill ``mb`` MiB of float32 ones (then freed)."""
    start = time.perf_counter()
    array = np.ones(mb * 2**20 // 4, np.float32)
    seconds = time.perf_counter() - start
    del array
    return seconds


def series(mb: int, sleep: float) -> list[float]:
    seconds = [fill(mb) for _ in range(3)]
    time.sleep(sleep)
    return [*seconds, fill(mb)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--sleep", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    machine = cpu()
    print(f"CPU: {machine['model']} ({machine.get('id', '')}); {machine.get('flags', '')}")
    for setting in ("enabled", "defrag"):
        path = THP / setting
        value = path.read_text().strip() if path.exists() else "?"
        print(f"transparent huge pages, {setting}: {value}")
    times: dict[bool, list[list[float]]] = {True: [], False: []}
    for _ in range(args.rounds):
        for advise in (True, False):
            huge_pages(advise)
            times[advise].append(series(args.mb, args.sleep))
            time.sleep(args.sleep)  # the next series starts on memory given back, too
    huge_pages(True)
    print(f"\n{args.mb} MiB filled, seconds (median of {args.rounds} rounds):")
    print("| advice | " + " | ".join(KINDS) + " |")
    print("|---|" + "---|" * len(KINDS))
    medians = {
        advise: [statistics.median(run[i] for run in runs) for i in range(len(KINDS))]
        for advise, runs in times.items()
    }
    for advise, row in medians.items():
        label = "huge pages (NumPy's default)" if advise else "none (the trial loop's)"
        print(f"| {label} | " + " | ".join(f"{s:.3f}" for s in row) + " |")
    ratios = [on / off for on, off in zip(medians[True], medians[False], strict=True)]
    print("| on / off | " + " | ".join(f"{r:.1f}x" for r in ratios) + " |")


if __name__ == "__main__":
    main()
