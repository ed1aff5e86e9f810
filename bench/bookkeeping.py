"""Bookkeeping per trial: everything a sweep does around training and inference, on a real sweep.

    python bench/bookkeeping.py [--trials 12] [--heads '*'] [--keep-weights best]
        [--profile sweep.prof] [--work DIR]

Runs :func:`experiments.commands.study.run_sweep` in this process, as
``python experiments/sweep.py``
would (SQLite Optuna storage, MLflow's SQLite store and local artifacts, the write-up baselines
first, then TPE), on the cached fc7 features of a tiny generated set (``tests.test_sweep``: 16
clips of 3 frames, extracted before the timings start), so training is cheap and the bookkeeping
shows.

Nothing is replaced: the bench only wraps the sweep's own functions with a stopwatch that keeps
*exclusive* times (a wrapped call inside another is charged to itself, not to its caller). A
trial's cycle is the time from the start of one trial's objective to the start of the next
(the last one ends when the sweep's loop does), so it holds Optuna's ``ask`` and ``tell`` too.
Its training and inference is ``train_head`` (build, compile, fit, dev scoring every epoch, final
scoring), less the per-epoch callbacks' MLflow logging and pruning, which are bookkeeping.
Bookkeeping = cycle - training and inference; the columns split it:

* weights: whether to keep them (a study query) and ``save_head_weights`` (the head's
  ``.weights.h5``, only where the trial keeps them);
* plots: building the ROC/DET and confusion figures and ``mlflow.log_figure`` (PNG + upload);
* artifacts: ``mlflow.log_artifact`` (copies into the artifact store) and writing scores.csv and
  the model summary;
* mlflow: ``start_run``/``end_run``/``set_tag``, ``log_params``, ``log_metrics``, and the
  per-epoch curves' one ``log_batch`` when the trial ends;
* suggest: the sampler's choices (``search.suggest``);
* report+prune: the per-epoch ``report`` and ``should_prune`` (storage writes and reads);
* lost runs: the worker's check for runs of lost trials (an MLflow search, before and after each
  trial);
* metrics: PAD report, scores frame, summary;
* clear: ``keras.backend.clear_session`` (its ``gc.collect``: the sweep freezes what exists before
  the first trial, ``experiments.memory.settled``);
* other: the rest (Optuna's ``ask``/``tell`` and storage round trips, the worker's lock).

``--profile FILE`` also writes a cProfile of the whole sweep loop (``python -m pstats FILE``).
Goal (issue 10): bookkeeping <= 1 s per trial. Results: ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from statistics import mean, median

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import mlflow  # noqa: E402
import optuna  # noqa: E402

import heads  # noqa: E402
from core.features import FeatureOptions, cached_features  # noqa: E402
from experiments.commands import study, sweep  # noqa: E402
from experiments.config import KeepWeights  # noqa: E402
from experiments.stores import workers  # noqa: E402
from experiments.trial import artifacts, objective, plots, search  # noqa: E402
from tests.test_sweep import FRAMES, write_tiny_set  # noqa: E402

TRAIN = "train+score"
SETUP, CLOSING = -1, -2  # Stopwatch.seconds keys of what runs before and after the trial loop
COLUMNS = [
    "weights",
    "plots",
    "artifacts",
    "mlflow",
    "suggest",
    "report+prune",
    "lost runs",
    "metrics",
    "clear",
]


class Stopwatch:
    """Exclusive seconds per (trial, label) of the wrapped calls, and each trial's cycle."""

    def __init__(self) -> None:
        self.seconds: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.stack: list[list[float]] = []  # [children seconds] of the calls in progress
        self.starts: list[float] = []  # perf_counter at the start of each trial's objective
        self.loop: list[float] = []  # start and end of the sweep's trial loop

    @property
    def trial(self) -> int:
        """The trial whose cycle is running; SETUP before the loop, CLOSING after it."""
        if not self.loop:
            return SETUP
        if len(self.loop) > 1:
            return CLOSING
        return max(0, len(self.starts) - 1)

    def wrap(self, owner, name: str, label: str) -> None:
        setattr(owner, name, self.timed(getattr(owner, name), label))

    def timed(self, original, label: str):
        @functools.wraps(original)
        def timed(*args, **kwargs):
            self.stack.append([0.0])
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                children = self.stack.pop()[0]
                self.seconds[self.trial][label] += elapsed - children
                if self.stack:
                    self.stack[-1][0] += elapsed

        return timed

    def cycles(self) -> list[float]:
        bounds = [self.loop[0], *self.starts[1:], self.loop[1]]
        return [b - a for a, b in zip(bounds, bounds[1:], strict=False)]


def instrument(watch: Stopwatch) -> None:
    """Wrap the sweep's own functions (where its modules look them up) with ``watch``."""
    call = objective.Objective.__call__

    def objective_call(self, trial):
        watch.starts.append(time.perf_counter())
        return call(self, trial)

    objective.Objective.__call__ = objective_call

    optimize = workers.Worker.optimize

    def worker_optimize(self, *args, **kwargs):
        watch.loop.append(time.perf_counter())
        try:
            return optimize(self, *args, **kwargs)
        finally:
            watch.loop.append(time.perf_counter())

    workers.Worker.optimize = worker_optimize

    on_epoch = objective.Objective._on_epoch

    def on_epoch_timed(self, *args, **kwargs):
        # what the callback does besides its MLflow calls: report and should_prune
        return watch.timed(on_epoch(self, *args, **kwargs), "report+prune")

    objective.Objective._on_epoch = on_epoch_timed

    watch.wrap(objective, "train_head", TRAIN)
    watch.wrap(heads, "save_head_weights", "weights")
    for name in ("roc_det_figure", "confusion_figure"):
        watch.wrap(plots, name, "plots")
    watch.wrap(mlflow, "log_figure", "plots")
    watch.wrap(mlflow, "log_artifact", "artifacts")
    watch.wrap(artifacts, "log_trial_artifacts", "artifacts")  # csv, summary, temporary folder
    for name in ("start_run", "end_run", "set_tag", "log_params", "log_metrics"):
        watch.wrap(mlflow, name, "mlflow")
    watch.wrap(mlflow.MlflowClient, "log_batch", "mlflow")
    watch.wrap(search, "suggest", "suggest")
    watch.wrap(optuna.Trial, "report", "report+prune")
    watch.wrap(optuna.Trial, "should_prune", "report+prune")
    watch.wrap(objective.Objective, "_keeps_weights", "weights")
    watch.wrap(workers.Worker, "close_lost_runs", "lost runs")
    for name in ("pad_report", "scores_frame", "summarise", "no_face_metrics"):
        watch.wrap(objective, name, "metrics")
    watch.wrap(keras.backend, "clear_session", "clear")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12, help="trials of the study")
    parser.add_argument("--heads", default="*", help="fnmatch pattern over head names")
    parser.add_argument("--keep-weights", default="best", choices=[k.value for k in KeepWeights])
    parser.add_argument("--profile", type=Path, help="write a cProfile of the sweep loop here")
    parser.add_argument("--work", type=Path, help="working folder, kept (default: temporary)")
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-bookkeeping-"))
    work.mkdir(parents=True, exist_ok=True)
    previous = Path.cwd()
    try:
        if not (work / "data").exists():
            write_tiny_set(work / "data")
        options = FeatureOptions(
            data=work / "data", cache_dir=work / "cache", frames=FRAMES, progress=False
        )
        cached_features(options)  # extraction is not bookkeeping: done before the timings
        os.chdir(work)  # MLflow's artifacts under ./mlruns, as for a user
        watch = Stopwatch()
        instrument(watch)
        config = sweep.SweepConfig(
            features=options,
            trials=args.trials,
            study=f"bookkeeping-{int(time.time())}",
            storage=f"sqlite:///{work}/optuna.db",
            tracking_uri=f"sqlite:///{work}/mlflow.db",
            heads=args.heads,
            keep_weights=args.keep_weights,
        )
        profiler = cProfile.Profile() if args.profile else None
        begun = time.perf_counter()
        with profiler or contextlib.nullcontext():
            result = study.run_sweep(config)
        ended = time.perf_counter()
        if profiler is not None:
            profiler.dump_stats(str(previous / args.profile))
        trials = sorted(result.study.get_trials(deepcopy=False), key=lambda t: t.number)
    finally:
        os.chdir(previous)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    cycles = watch.cycles()
    rows = []
    for trial, cycle in zip(trials, cycles, strict=True):
        seconds = watch.seconds[trial.number]
        book = cycle - seconds[TRAIN]
        parts = [seconds.get(c, 0.0) for c in COLUMNS]
        head = trial.user_attrs.get("head") or search.baseline_name(trial.params)
        head = head or trial.params.get("head", "?")  # a pruned trial: its family
        rows.append((trial.number, head, trial.state.name, cycle, seconds[TRAIN], book, parts))

    print(
        f"\nbench/bookkeeping.py, {started}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load average {load[0]:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at the end; {args.trials} trials, --heads '{args.heads}', "
        f"--keep-weights {args.keep_weights}; {FRAMES} frames x 16 clips\n"
    )
    print(
        f"| trial | head | state | cycle s | {TRAIN} s | bookkeeping s | "
        + " | ".join(COLUMNS)
        + " | other |"
    )
    print("|" + "---|" * (len(COLUMNS) + 7))
    for number, head, state, cycle, train, book, parts in rows:
        cells = " | ".join(f"{p:.3f}" for p in parts)
        print(
            f"| {number} | {head} | {state.lower()} | {cycle:.2f} | {train:.2f} | {book:.3f} | "
            f"{cells} | {book - sum(parts):.3f} |"
        )
    for label, chosen in (("mean, trials 1+", rows[1:]), ("mean, all", rows)):
        if not chosen:
            continue
        parts = [mean(r[6][i] for r in chosen) for i in range(len(COLUMNS))]
        book = mean(r[5] for r in chosen)
        print(
            f"| {label} | | | {mean(r[3] for r in chosen):.2f} | {mean(r[4] for r in chosen):.2f} "
            f"| {book:.3f} | " + " | ".join(f"{p:.3f}" for p in parts) + f" | "
            f"{book - sum(parts):.3f} |"
        )
    later = [r[5] for r in rows[1:]] or [r[5] for r in rows]
    setup, closing = watch.loop[0] - begun, ended - watch.loop[1]
    print(
        f"\nbookkeeping per trial: mean {mean(later):.3f} s, median {median(later):.3f} s, "
        f"max {max(later):.3f} s (trials 1+; trial 0 {rows[0][5]:.3f} s, first-use imports) "
        f"(goal <= 1 s)\nonce per sweep: {setup:.1f} s before the first trial (cached features, "
        f"study, experiment), {closing:.1f} s after the last (the closing comparison)"
    )


if __name__ == "__main__":
    main()
