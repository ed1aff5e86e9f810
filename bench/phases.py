"""Where each trial of the default study spends its seconds, phase by phase, in a real sweep.

Runs the README's main job (``experiments/sweep.py``, a new study in an empty folder) in this
process on an already filled feature cache, with a timer around each library function a trial
calls, and prints each trial's seconds per phase and their sums:

- build: ``heads.build_head_model``;
- first epoch: the first compiled epoch (``heads.Engine``), which traces and compiles it;
- epochs: the other epochs;
- first scoring, scoring: ``heads.predict_scores`` (dev after every epoch, then dev and test);
  the first call of a trial traces Keras' predict function;
- best weights: ``keras.Model.get_weights`` (the first better epoch's copy; later ones are
  copied into it);
- fold: ``heads.fold_standardization``; artifacts: ``log_trial_artifacts`` (files and plots);
- train_head: the whole training call, of which every phase above but the artifacts is a part.

Unlike ``cProfile`` it adds nothing per call of anything else. The cache is ``--cache`` (an
XDG_CACHE_HOME the default job filled: ``python experiments/sweep.py`` once).

    python bench/phases.py [--cache ~/.cache]
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import platform
import runpy
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = ["build", "first epoch", "epochs", "first scoring", "scoring", "best weights", "fold"]
PHASES += ["artifacts", "train_head"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache")
    args = parser.parse_args()
    os.environ["XDG_CACHE_HOME"] = str(args.cache.expanduser())
    os.environ.pop("VGGFACE_HEADS_CACHE", None)
    sys.path.insert(0, str(ROOT))

    import keras

    import heads
    import heads.engine
    import heads.fitting
    from experiments.trial import artifacts, objective, training

    seconds: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    head = ["?"]
    started: set[tuple[str, str]] = set()

    def timed(owner, name: str, phase: str, first: str | None = None) -> None:
        function = getattr(owner, name)

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                label = phase
                if first and (head[0], first) not in started:
                    started.add((head[0], first))
                    label = first
                seconds[head[0]][label] += time.perf_counter() - start

        setattr(owner, name, wrapper)

    train_head = training.train_head

    def train_head_timed(config, *args, **kwargs):
        head[0] = f"{len(seconds)} {config.head}"
        start = time.perf_counter()
        try:
            return train_head(config, *args, **kwargs)
        finally:
            seconds[head[0]]["train_head"] += time.perf_counter() - start

    objective.train_head = train_head_timed
    timed(heads.engine.Engine, "_epoch_on", "epochs", "first epoch")
    timed(heads, "predict_scores", "scoring", "first scoring")
    timed(heads, "build_head_model", "build")
    timed(heads, "fold_standardization", "fold")
    timed(keras.Model, "get_weights", "best weights")
    timed(artifacts, "log_trial_artifacts", "artifacts")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        sys.argv = ["sweep.py"]
        start = time.perf_counter()
        try:
            runpy.run_path(str(ROOT / "experiments" / "sweep.py"), run_name="__main__")
        except SystemExit as stop:
            if stop.code:
                sys.exit(f"the sweep failed ({stop.code})")
        wall = time.perf_counter() - start
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
        f"average {load:.1f} at start, {os.getloadavg()[0]:.1f} at the end; wall {wall:.1f} s"
    )
    print("| trial | " + " | ".join(PHASES) + " |")
    print("|---" * (len(PHASES) + 1) + "|")
    total: collections.Counter = collections.Counter()
    for name, phases in seconds.items():
        total.update(phases)
        print(f"| {name} | " + " | ".join(f"{phases[p]:.2f}" for p in PHASES) + " |")
    print("| all | " + " | ".join(f"{total[p]:.2f}" for p in PHASES) + " |")


if __name__ == "__main__":
    main()
