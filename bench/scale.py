"""How many GPU workers one study's stores feed: 8 to 64 simulated workers on one PostgreSQL and
one ``mlflow server`` (issue 21).

    python bench/scale.py [--workers 8,16,32,64] [--trials-per-worker 4] [--seconds 240]
        [--fix before,after] [--server-workers 4] [--max-connections 100] [--real-trials 3]
        [--gpu-factor 5] [--store-cores 4] [--heads '*'] [--json FILE]

What runs. Two throw-away PostgreSQL 15 clusters on 127.0.0.1 (one for Optuna, one behind
MLflow, so that each one's CPU is its own; ``--max-connections`` each, default 100, the stock
setting) and ``mlflow server --workers N`` on the second, proxying artifacts to a temporary
folder. For each worker count W, and each ``--fix`` variant in turn at that count, W worker
processes are forked (from this process, which imports Optuna and MLflow but never TensorFlow:
64 TensorFlow processes would not fit in 24 GB) on a new study of W x ``--trials-per-worker``
trials. Each worker does what ``experiments/sweep.py`` does around its trials:
``workers.open_study`` (schema lock, enqueued baselines), ``tracking.use_experiment``, its parent
run with the sweep's parameters, ``workers.Worker.optimize`` (the trial budget under the study
lock, heartbeats, lost trials, the lost-run checks, ``console.Progress``). Each trial is
:class:`SimObjective`, which makes the calls of ``Objective._trial``/``_train_and_log`` in their
order (``experiments/trial/objective.py``): the suggestions of ``search.suggest`` (same names and
distributions, checked against the real one), ``tracking.run`` (a child run with the sweep's
tags), ``log_params``, per epoch ``trial.report`` + ``should_prune`` (the sweep's
``MedianPruner(5, 3)``), ``log_metrics`` (the keys ``pad_report`` gives), the keep-weights
query, the artifacts (``scores.csv`` of ``--clips`` rows, ``model_summary.txt``, the two plots
at the real trial's sizes, and ``head.weights.h5`` sized for the suggested head from real saved
files when the trial is its family's best so far), seven ``set_user_attr`` (the worker's own
eighth, naming its process, is the real ``Worker``'s), the per-epoch
curves in one ``log_batch``, ``end_run``. Only training is replaced, by a sleep per epoch; the
closing comparison each worker logs when the study ends (once per worker) is not run.

The sleep: one of the 12 trials of the default sweep on this 2-core machine (:data:`
DEFAULT_SWEEP_TRIALS`: 1.5 to 59 s, 3 pruned), its seconds divided by ``--gpu-factor`` (default
5: an assumption, no GPU was lent; small heads on cached features are bound by per-step
overhead, not FLOPs): mean 3.2 s a trial.

The calibration (``--real-trials N``, default 3): a subprocess with TensorFlow runs N real trials
(``run_sweep``, ``--heads lstm30``, the tiny set of ``tests/test_sweep.py``) on the same servers,
then N simulated trials on the same plans (epochs, pruned or not, weights kept); every call of
both is counted per trial by the same probes (each HTTP request to the tracking server by
endpoint, each Optuna RDB storage call, the study lock) and printed side by side. Both run the
pre-fix code (``--fix before``), whose counts do not depend on timing: with the fix, how many
reads and searches a trial makes depends on how long it lasts (the 5 s cache, the heartbeat).

Printed per worker count and variant: finished trials per minute in the steady window (from when
every worker is in a trial to the last trial's start) and over the whole span, the ideal rate
(the same sleeps at zero store cost), a trial's overhead (its wall time less its sleep), the
study lock's wait, PostgreSQL client connections (the most seen, sampled every 0.5 s) and
backends waiting on a lock, errors (HTTP >= 500, database errors, PostgreSQL FATALs) and
urllib3's retries, and the CPU seconds per trial of the clients, each PostgreSQL and the server
(``/proc``). Then p50/p99 of every store call, and the cores each store would need if the W
workers trained all the time (W / mean sleep trials a second x its CPU seconds per trial): the
figure that carries to another machine; the verdict names the first count where a store needs
more than ``--store-cores`` or PostgreSQL refuses connections. On 2 shared cores the clients,
PostgreSQL and the server compete (clients run at ``nice 10``, so the stores get the CPU first):
the measured rates are a lower bound. Traffic stays on 127.0.0.1; every process started is
stopped at the end, on error too.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import inspect
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import requests  # noqa: E402
import urllib3  # noqa: E402
from mlflow.entities import Metric, Param  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from optuna.storages._rdb import storage as rdb  # noqa: E402

from experiments.config import TrialConfig  # noqa: E402
from experiments.metrics import ScoreSet, pad_report  # noqa: E402
from experiments.results import console  # noqa: E402
from experiments.stores import liveness, locks, runs_table, tracking, workers  # noqa: E402
from experiments.stores import retries as trial_retries  # noqa: E402
from experiments.stores import storage as study_storage  # noqa: E402
from tests.servers import STARTUP_SECONDS, MlflowServer, Postgres  # noqa: E402

# The 12 trials of the default sweep on 2 CPU cores, (seconds, pruned) (bench/RESULTS.md, "The
# default sweep", run of 2026-11-27 10:48 UTC): a simulated trial is one of them, GPU-scaled.
DEFAULT_SWEEP_TRIALS = (
    (8.7, False),
    (38.1, False),
    (59.0, False),
    (10.6, False),
    (3.1, False),
    (1.5, True),
    (2.1, False),
    (1.5, False),
    (14.3, True),
    (1.6, True),
    (6.8, False),
    (47.1, False),
)
KEPT_SETTING = "fold1"  # Objective's kept_setting tag: the first setting's name
GRACE_SECONDS = 90  # after --seconds: the trials in flight finish, then workers are stopped
SAMPLE_SECONDS = 0.5
# The tags run_context gave on the tiny set (a real sweep, 2026-12-02); used when --real-trials 0.
FALLBACK_CONTEXT = {
    "data": "/data",
    "data_fingerprint": "0" * 16,
    "protocol": "given",
    "fold": "none",
    "layout": "generic",
    "subject_pattern": "none",
    "weights": "default",
    "weights_fingerprint": "0" * 16,
    "feature_cache": "0" * 16,
    "random_weights": "true",
    "synthetic": "false",
    "face_crop": "none",
    "extraction_precision": "float32",
    "training_precision": "float32",
    "evaluation": "protocol",
    "settings": "1",
}
FALLBACK_ARTIFACTS = {"model_summary.txt": 2_000, "roc_det.png": 60_000, "confusion.png": 20_000}


# --------------------------------------------------------------------------------------- probes


class Probe:
    """Every store call one process makes: name, seconds, whether it failed; per loop iteration.

    Names: ``http <endpoint>`` (each request to the tracking server, ``artifacts PUT`` for an
    upload), ``optuna <method>`` (each outermost ``RDBStorage`` call, its ORM work included),
    ``lock wait``/``lock held`` (the study lock of ``Worker.optimize``). ``iteration`` counts the
    study lock's acquisitions: the calls between two belong to one pass of the worker's loop.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()
        self.uploaded: Counter[str] = Counter()  # bytes sent in request bodies, by call
        self.iteration = 0
        self.per_iteration: dict[int, Counter[str]] = defaultdict(Counter)
        self.local = threading.local()

    def record(self, name: str, seconds: float, ok: bool = True) -> None:
        self.seconds[name].append(seconds)
        self.per_iteration[self.iteration][name] += 1
        if not ok:
            self.errors[name] += 1

    def reset(self) -> None:
        self.__init__()

    def summary(self) -> dict[str, Any]:
        return {
            "seconds": dict(self.seconds),
            "errors": dict(self.errors),
            "retries": dict(self.retries),
            "uploaded": dict(self.uploaded),
        }


PROBE = Probe()
_ENDPOINT = re.compile(r"/api/[0-9.]+/mlflow(-artifacts)?/(.*)")


def endpoint(method: str, url: str) -> str:
    """``runs/log-batch``; an artifact upload is ``artifacts PUT`` whatever its path."""
    path = (url or "").split("?")[0]
    found = _ENDPOINT.search(path)
    if found is None:
        return f"{method} {path[-40:]}"
    if found.group(1):
        return f"artifacts {method}"
    return found.group(2)


def install_probes(probe: Probe = PROBE) -> None:
    """Wrap where the calls go: ``requests.Session.request`` (MLflow's REST client), urllib3's
    ``Retry.increment``, every ``RDBStorage`` method (outermost call per thread), Optuna's
    sessions (errors inside them: its own retries), and ``StorageLock`` for the study lock."""
    request = requests.Session.request

    def timed_request(self, method, url, *args, **kwargs):
        body = kwargs.get("data")
        if hasattr(body, "fileno"):
            probe.uploaded[f"http {endpoint(method, url)}"] += os.fstat(body.fileno()).st_size
        start, ok = time.perf_counter(), False
        try:
            response = request(self, method, url, *args, **kwargs)
            ok = response.status_code < 500  # 404 and 409 are answers (not found, a race lost)
            return response
        finally:
            probe.record(f"http {endpoint(method, url)}", time.perf_counter() - start, ok)

    requests.Session.request = timed_request
    increment = urllib3.util.retry.Retry.increment

    def counted_increment(self, method=None, url=None, *args, **kwargs):
        probe.retries[f"http {endpoint(method or '', url or '')}"] += 1
        return increment(self, method, url, *args, **kwargs)

    urllib3.util.retry.Retry.increment = counted_increment
    skip = {"get_heartbeat_interval", "get_heartbeat_stale_trial_callback", "remove_session"}
    for name, value in list(vars(rdb.RDBStorage).items()):
        if inspect.isfunction(value) and not name.startswith("__") and name not in skip:
            setattr(rdb.RDBStorage, name, _outermost(value, f"optuna {name.lstrip('_')}", probe))
    scoped = rdb._create_scoped_session

    @contextlib.contextmanager
    def counted_session(*args, **kwargs):
        try:
            with scoped(*args, **kwargs) as session:
                yield session
        except study_storage.StorageErrors:  # not IntegrityError: a duplicate is an answer
            probe.errors["optuna session"] += 1
            raise

    rdb._create_scoped_session = counted_session
    init, acquire, release = (
        locks.StorageLock.__init__,
        locks.StorageLock.acquire,
        locks.StorageLock.release,
    )

    def named_init(self, url: str, name: str) -> None:
        init(self, url, name)
        self.bench_study = name.startswith("study:")
        self.bench_since = None

    def timed_acquire(self) -> None:
        if not self.bench_study:
            return acquire(self)
        probe.iteration += 1
        start, ok = time.perf_counter(), True
        try:
            acquire(self)
        except study_storage.StorageErrors:
            ok = False
            raise
        finally:
            probe.record("lock wait", time.perf_counter() - start, ok)
        self.bench_since = time.perf_counter()

    def timed_release(self) -> None:
        if self.bench_study and self.bench_since is not None and self._held is not None:
            probe.record("lock held", time.perf_counter() - self.bench_since)
            self.bench_since = None
        release(self)

    locks.StorageLock.__init__ = named_init
    locks.StorageLock.acquire = timed_acquire
    locks.StorageLock.release = timed_release


def _outermost(function, name: str, probe: Probe):
    @functools.wraps(function)
    def timed(*args, **kwargs):
        if getattr(probe.local, "inside", False):
            return function(*args, **kwargs)
        probe.local.inside = True
        start, ok = time.perf_counter(), True
        try:
            return function(*args, **kwargs)
        except study_storage.StorageErrors:  # the database's failures, not "no such study"
            ok = False
            raise
        finally:
            probe.local.inside = False
            probe.record(name, time.perf_counter() - start, ok)

    return timed


# ------------------------------------------------------------------------------ the simulation


@dataclass
class Plan:
    """What one simulated trial does instead of training: ``epochs`` epochs of ``seconds`` in
    all, then pruned (``pruned``) or complete. ``keep``: whether it logs weights; None: the
    sweep's ``best`` rule decides (the calibration replays the real trials' choices)."""

    epochs: int
    seconds: float
    pruned: bool = False
    keep: bool | None = None


@dataclass
class SimObjective:
    """``Objective._trial`` and ``_train_and_log`` with training replaced by a sleep.

    ``profile``: the search space and trial shape (:func:`calibrate`); ``plans``: replayed in
    order (calibration), else drawn from :data:`DEFAULT_SWEEP_TRIALS` (:meth:`plan`).
    """

    study_name: str
    profile: dict[str, Any]
    heads: str = "*"
    gpu_factor: float = 5.0
    clips: int = 1500
    plans: list[Plan] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)
    slept: dict[int, float] = field(default_factory=dict)  # trial number: seconds slept

    def __post_init__(self) -> None:
        pattern = self.profile["patterns"][self.heads]
        self.allowed, self.baselines = pattern["families"], pattern["baselines"]
        self.families = {f["family"]: f for f in self.profile["families"]}
        shape = self.profile.get("trial") or {}
        self.context = shape.get("tags") or FALLBACK_CONTEXT
        self.sizes = {**FALLBACK_ARTIFACTS, **(shape.get("artifacts") or {})}
        self.row_bytes = shape.get("scores_row_bytes", 80)
        self.work = Path(tempfile.mkdtemp(prefix="sim-trial-"))
        half = self.clips // 2  # dev and test; 1 in 4 bona fide, print and replay attacks
        labels = np.arange(half) % 4 == 0
        kinds = np.where(labels, "bonafide", np.where(np.arange(half) % 2, "print", "replay"))
        scores = ScoreSet(np.linspace(0, 1, half), labels.astype(int), kinds)
        self.metric_keys = list(pad_report(scores, scores))

    def __call__(self, trial: optuna.Trial) -> float:
        config = self.suggest(trial)
        baseline = next((n for n, p in self.baselines.items() if p == trial.params), None)
        tags = {
            tracking.STUDY_TAG: self.study_name,
            tracking.TRIAL_TAG: str(trial.number),
            "kept_setting": KEPT_SETTING,
            **self.context,
        }
        if baseline:
            tags["vggface_heads.baseline"] = baseline
        with tracking.run(f"{trial.number}-{config.head}", "trial", tags, nested=True) as run:
            curves: list[Metric] = []
            try:
                return self._train_and_log(trial, config, curves)
            finally:
                mlflow.MlflowClient().log_batch(run.info.run_id, metrics=curves)

    def suggest(self, trial: optuna.Trial) -> TrialConfig:
        """The calls of ``experiments.trial.search.suggest``, in its order, from the profile."""
        family = trial.suggest_categorical("head", self.allowed)
        space = self.families[family]
        size = trial.suggest_int(
            f"{family}_{space['size']}", space["low"], space["high"], log=space["log"]
        )
        hparams: dict[str, Any] = {space["size"]: size}
        if space["dropout"]:
            hparams["dropout"] = trial.suggest_float("dropout", 0.0, 0.5, step=0.1)
        for param, choices in space["choices"].items():
            hparams[param] = trial.suggest_categorical(f"{family}_{param}", choices)
        p = self.profile
        return TrialConfig(
            head=f"{family}{size}",
            family=family,
            output=trial.suggest_categorical("output", p["outputs"]),
            hparams=hparams,
            feature_dropout=trial.suggest_float("feature_dropout", 0.0, 0.5, step=0.1),
            optimizer=trial.suggest_categorical("optimizer", p["optimizers"]),
            learning_rate=trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
            batch_size=trial.suggest_categorical("batch_size", p["batch_sizes"]),
            epochs=trial.suggest_int("epochs", *p["max_epochs"]),
            standardize=trial.suggest_categorical("standardize", [True, False]),
            training_precision="float32",
            jit_compile="auto",
            fine_tune="none",
        )

    def plan(self, config: TrialConfig) -> Plan:
        """One of the default sweep's trials, its seconds / ``gpu_factor``: a pruned one stops
        after 4-8 epochs (the pruner's warm-up is 3), a complete one after 60-100% of its
        ``epochs`` (early stopping). The pruner is asked every epoch but not obeyed: on the
        invented curves, which TPE cannot improve, MedianPruner's ratchet would prune ~85%."""
        if self.plans:
            return self.plans.pop(0)
        seconds, pruned = self.rng.choice(DEFAULT_SWEEP_TRIALS)
        if pruned:
            epochs = self.rng.randint(4, 8)
        else:
            epochs = max(1, round(config.epochs * self.rng.uniform(0.6, 1.0)))
        return Plan(epochs, seconds / self.gpu_factor, pruned)

    def _train_and_log(self, trial: optuna.Trial, config: TrialConfig, curves: list) -> float:
        mlflow.log_params(config.params())
        plan = self.plan(config)
        level = self.rng.uniform(0.05, 0.5)
        for epoch in range(1, plan.epochs + 1):
            time.sleep(plan.seconds / plan.epochs)
            self.slept[trial.number] = (
                self.slept.get(trial.number, 0.0) + plan.seconds / plan.epochs
            )
            acer = level * (1 + 1 / epoch) + self.rng.uniform(0, 0.02)
            values = {"train_loss": acer, "dev_loss": acer, "dev_eer": acer, "dev_acer": acer}
            now = int(time.time() * 1000)
            curves += [Metric(f"epoch_{k}", v, now, epoch) for k, v in values.items()]
            trial.report(values["dev_acer"], epoch)
            trial.should_prune()  # asked every epoch as the real trial does; the plan decides
            if plan.pruned and epoch == plan.epochs:
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")
        metrics = {k: self.rng.uniform(0, 0.5) for k in self.metric_keys}
        params = self.head_params(config)
        metrics.update(dev_acer=acer, params_total=134_260_544 + params)
        metrics.update(params_trainable=params, params_head=params, train_seconds=plan.seconds)
        metrics.update(best_epoch=plan.epochs, settings=1)
        mlflow.log_metrics(metrics)
        keep = self.keeps_weights(trial, config, metrics)  # the query runs in both cases
        keep = keep if plan.keep is None else plan.keep
        for name in self.write_artifacts(config, keep):
            mlflow.log_artifact(str(self.work / name))
        for key in ("params_total", "dev_eer", "test_acer", "test_hter", "test_auc"):
            trial.set_user_attr(key, metrics.get(key, 0.0))
        trial.set_user_attr("head", config.head)
        trial.set_user_attr("family", config.family)
        return metrics["dev_acer"]

    def keeps_weights(self, trial: optuna.Trial, config: TrialConfig, metrics: dict) -> bool:
        """``Objective._keeps_weights`` for ``--keep-weights best``: the same study query."""
        done = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        same = [
            runs_table.ranking_key({**t.user_attrs, runs_table.RANKING[0]: t.values[0]})
            for t in done
            if t.user_attrs.get("family") == config.family and t.values
        ]
        return not same or runs_table.ranking_key(metrics) < min(same)

    def head_params(self, config: TrialConfig) -> int:
        a, b, c = self.families[config.family]["weights_bytes"]
        size = config.hparams[self.families[config.family]["size"]]
        return max(1, int((a + b * size + c * size * size) / 4))

    def write_artifacts(self, config: TrialConfig, keep: bool) -> list[str]:
        """Files of the real sizes: scores.csv (``clips`` rows), the summary, the two plots (as
        ``log_figure`` uploads them: one PUT each), the head's weights when kept (sparse)."""
        row = ("x" * (self.row_bytes - 1)) + "\n"
        (self.work / "scores.csv").write_text("split,clip,subject,label,attack_type,score\n")
        with open(self.work / "scores.csv", "a") as out:
            out.write(row * self.clips)
        names = ["scores.csv", "model_summary.txt", "roc_det.png", "confusion.png"]
        for name in names[1:]:
            with open(self.work / name, "wb") as out:
                out.truncate(int(self.sizes[name]))
        if keep:
            with open(self.work / tracking.HEAD_WEIGHTS, "wb") as out:
                out.truncate(4 * self.head_params(config))
            names.insert(2, tracking.HEAD_WEIGHTS)
        return names


def worker_body(
    index: int,
    study_name: str,
    storage: str,
    tracking_uri: str,
    total: int,
    profile: dict[str, Any],
    args: argparse.Namespace,
    heads: str = "*",
    plans: list[Plan] | None = None,
) -> tuple[int, dict[int, float]]:
    """One worker as ``run_sweep`` runs it, around :class:`SimObjective`. Returns the trials it
    started and the seconds each slept (trial number: seconds)."""
    tracking.use_store(tracking_uri)
    pattern = profile["patterns"][heads]
    study, joined = workers.open_study(
        study_name,
        storage,
        directions=["minimize"],
        seed=0,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3),
        baselines=list(pattern["baselines"].values()),
        heartbeat=args.heartbeat,
        searched={"head": pattern["families"]},
    )
    experiment_id = tracking.use_experiment(study_name)
    done = trial_retries.finished_count(study.get_trials(deepcopy=False))
    line = console.study_line(study_name, done, total, joined, len(pattern["baselines"]))
    print(line, flush=True)
    parents = tracking.study_parents(experiment_id, study_name)
    objective = SimObjective(study_name, profile, heads, args.gpu_factor, args.clips)
    objective.plans = list(plans or [])
    objective.rng.seed(1000 * index + joined)
    tags = {tracking.STUDY_TAG: study_name, tracking.WORKER_TAG: workers.worker_name()}
    tags.update(objective.context)
    if parents:
        tags[tracking.CONTINUES_TAG] = parents[0]
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    with tracking.run(f"study {study_name} @ {started} (sim {index})", "study", tags) as parent:
        mlflow.log_params(
            {
                **{k: v for k, v in vars(args).items() if isinstance(v, int | float | str)},
                "study": study_name,
                "trials": total,
                "storage": storage,
                "heads": heads,
                "heartbeat": args.heartbeat,
                "sampler": "TPESampler",
                "sampler_seed": joined,
                "pruner": "MedianPruner",
            }
        )
        share = workers.Worker(study, storage, experiment_id, args.heartbeat, parent.info.run_id)
        progress = console.Progress(total, study_name)
        ran = share.optimize(objective, total, timeout=args.seconds, on_trial=progress)
    shutil.rmtree(objective.work, ignore_errors=True)
    return ran, objective.slept


def private_mb() -> float:
    """This process's private memory (pages not shared with the parent it was forked from)."""
    text = Path("/proc/self/smaps_rollup").read_text()
    kb = sum(int(m) for m in re.findall(r"Private_(?:Clean|Dirty):\s+(\d+)", text))
    return kb / 1024


def worker_main(index: int, study: str, storage: str, uri: str, total: int, profile, args, out):
    """A forked child: nice 10, output to a log, probes on, one worker, results to JSON."""
    code = 1
    try:
        os.nice(10)
        log = os.open(out / f"worker-{index}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(log, 1)
        os.dup2(log, 2)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        install_probes()
        random.seed(index)
        started = time.time()
        ran, slept = worker_body(index, study, storage, uri, total, profile, args, args.heads)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        result = {**PROBE.summary(), "ran": ran, "slept": slept, "started": started}
        result["cpu"] = usage.ru_utime + usage.ru_stime
        result["private_mb"] = private_mb()
        (out / f"worker-{index}.json").write_text(json.dumps(result))
        code = 0
    except BaseException as err:  # noqa: BLE001  (said in the worker's log; the parent counts)
        import traceback

        traceback.print_exc()
        (out / f"worker-{index}.json").write_text(
            json.dumps({**PROBE.summary(), "failed": f"{type(err).__name__}: {err}"[:500]})
        )
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


# ------------------------------------------------------------------------------ the calibration


def calibrate(args: argparse.Namespace) -> None:
    """In a process of its own (TensorFlow): :func:`space_profile`, and with ``--real-trials N``
    N real trials then N simulated ones on their plans, both counted."""
    profile = space_profile()
    if args.real_trials:
        profile.update(_count_real_and_simulated(args, profile))
    Path(args.calibrate).write_text(json.dumps(profile))


def space_profile() -> dict[str, Any]:
    """The search space and weight sizes from the real registry (imports TensorFlow), the
    replica's suggestions checked against ``search.suggest``."""
    import heads
    from experiments.trial import search

    profile: dict[str, Any] = {
        "outputs": list(heads.OUTPUTS),
        "optimizers": list(search.OPTIMIZERS),
        "batch_sizes": list(search.BATCH_SIZES),
        "max_epochs": list(search.MAX_EPOCHS),
        "families": [_family_profile(heads, search, name) for name in heads.list_families()],
        "patterns": {
            pattern: {
                "families": search.families(pattern),
                "baselines": {s.name: search._baseline(s) for s in search._writeup_specs(pattern)},
            }
            for pattern in ("*", "lstm30")
        },
    }
    profile["suggest_check"] = _check_suggest(profile, search)
    return profile


def _family_profile(heads, search, family: str) -> dict[str, Any]:
    """The family's search space, and its weights file's bytes as a quadratic in its size
    (three heads built and saved as the sweep saves them, at the family's default choices)."""
    spec = heads.get_spec(family)
    space = spec.search
    sizes = sorted({min(space.high, space.low * k) for k in (1, 2, 3)})
    while len(sizes) < 3:
        sizes.append(sizes[-1] + 1)
    measured = []
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            hparams = {k: spec.defaults[k] for k in space.params} | {space.size: size}
            model = heads.build_head_model(family, "softmax", **hparams)
            heads.save_head_weights(model, Path(folder) / "h.weights.h5")
            measured.append((Path(folder) / "h.weights.h5").stat().st_size)
    c, b, a = np.polyfit(sizes, measured, 2)
    return {
        "family": family,
        "size": space.size,
        "low": space.low,
        "high": space.high,
        "log": space.log,
        "choices": {k: list(v) for k, v in space.choices.items()},
        "dropout": search._searches_dropout(spec),
        "weights_bytes": [float(a), float(b), float(c)],
    }


def _check_suggest(profile: dict[str, Any], search) -> str:
    """Each family once: the real ``suggest`` and the replica give the same distributions and,
    on the same parameters, the same ``TrialConfig``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    replica = SimObjective("check", profile)
    allowed = profile["patterns"]["*"]["families"]
    for family in allowed:
        real_study, sim_study = optuna.create_study(), optuna.create_study()
        for study in (real_study, sim_study):
            study.enqueue_trial({"head": family})
        real = real_study.ask()
        config = search.suggest(real, allowed)
        replica.allowed = allowed
        sim = sim_study.ask()
        replica.suggest(sim)
        same = replica.suggest(optuna.trial.FixedTrial(real.params))
        if real.distributions != sim.distributions or same != config:
            raise SystemExit(f"the replica's suggest differs from search.suggest for {family}")
    shutil.rmtree(replica.work, ignore_errors=True)
    return f"same distributions and TrialConfig as search.suggest for {', '.join(allowed)}"


def _count_real_and_simulated(args: argparse.Namespace, profile: dict[str, Any]) -> dict:
    from core.features import FeatureOptions, cached_features
    from experiments.commands import study as study_command
    from experiments.commands import sweep
    from tests.test_sweep import FRAMES, write_tiny_set

    work = Path(tempfile.mkdtemp(prefix="scale-calibrate-"))
    previous = Path.cwd()
    try:
        write_tiny_set(work / "data")
        options = FeatureOptions(
            data=work / "data", cache_dir=work / "cache", frames=FRAMES, progress=False
        )
        cached_features(options)
        install_probes()
        os.chdir(work)
        config = sweep.SweepConfig(
            features=options,
            trials=args.real_trials,
            study="calibrate-real",
            storage=args.calibrate_storage[0],
            tracking_uri=args.tracking_uri,
            heads="lstm30",
            heartbeat=args.heartbeat,
        )
        PROBE.reset()
        with variant("before"):  # counts that do not depend on timing (module docstring)
            result = study_command.run_sweep(config)
        real = _trial_counts(PROBE)
        client = MlflowClient(args.tracking_uri)
        runs = {
            int(r.data.tags[tracking.TRIAL_TAG]): r
            for r in client.search_runs(
                [result.experiment_id], f"tags.`{tracking.ROLE_TAG}` = 'trial'"
            )
        }
        plans, shape = [], {}
        for trial in sorted(result.study.get_trials(deepcopy=False), key=lambda t: t.number):
            files = {
                a.path: a.file_size for a in client.list_artifacts(runs[trial.number].info.run_id)
            }
            plans.append(
                Plan(
                    len(trial.intermediate_values),
                    0.05 * len(trial.intermediate_values),
                    pruned=trial.state == optuna.trial.TrialState.PRUNED,
                    keep=tracking.HEAD_WEIGHTS in files,
                )
            )
            if trial.state == optuna.trial.TrialState.COMPLETE and not shape:
                shape = _trial_shape(runs[trial.number], files, work)
        profile["trial"] = shape
        args.clips = 16  # the tiny set's dev + test clips, as the real trials
        PROBE.reset()
        with variant("before"):
            worker_body(
                0,
                "calibrate-sim",
                args.calibrate_storage[1],
                args.tracking_uri,
                args.real_trials,
                profile,
                args,
                heads="lstm30",
                plans=list(plans),
            )
        sim = _trial_counts(PROBE)
    finally:
        os.chdir(previous)
        shutil.rmtree(work, ignore_errors=True)
    return {"counts": {"real": real, "sim": sim, "plans": [vars(p) for p in plans]}}


def _trial_counts(probe: Probe) -> list[dict[str, int]]:
    """Calls per pass of the worker's loop that ran a trial (it suggested parameters)."""
    return [
        dict(counts)
        for _, counts in sorted(probe.per_iteration.items())
        if counts.get("optuna set_trial_param")
    ]


def _trial_shape(run, files: dict[str, int], work: Path) -> dict[str, Any]:
    """What a real trial run holds, for the replica: its context tags, its files' sizes, the
    bytes of one scores.csv row."""
    own = {tracking.STUDY_TAG, tracking.TRIAL_TAG, tracking.ROLE_TAG, "kept_setting"}
    tags = {
        k: v
        for k, v in run.data.tags.items()
        if not k.startswith("mlflow.") and k not in own and k != "vggface_heads.baseline"
    }
    path = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="scores.csv", dst_path=str(work)
    )
    rows = Path(path).read_text().splitlines()
    return {
        "tags": tags,
        "artifacts": {k: v for k, v in files.items() if k != tracking.HEAD_WEIGHTS},
        "scores_row_bytes": max(20, round(sum(len(r) + 1 for r in rows[1:]) / len(rows[1:]))),
        "metrics": sorted(run.data.metrics),
    }


# ----------------------------------------------------------------------------------- the stores


class BenchPostgres(Postgres):
    """``tests.servers.Postgres`` with ``max_connections`` of our choosing (stock: 100)."""

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        super().__init__()

    def start(self) -> None:
        command = [self.bin / "postgres", "-D", self.data, "-p", str(self.port), "-h", "127.0.0.1"]
        command += ["-k", self.sockets, "-F", "-c", f"max_connections={self.max_connections}"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=log, user=self.user, start_new_session=True
            )
        self.sql("SELECT 1", wait=STARTUP_SECONDS)

    def fatals(self) -> Counter[str]:
        """FATAL lines of the server's log so far, by message (e.g. too many clients)."""
        found = re.findall(r"FATAL:\s+(.{0,60})", self.log.read_text(errors="replace"))
        return Counter(found)


def process_cpu(root: int) -> float:
    """CPU seconds of ``root`` and its live descendants, with the children each has reaped."""
    children: dict[int, list[int]] = defaultdict(list)
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children[int(fields[1])].append(int(entry.name))
            times[int(entry.name)] = sum(int(f) for f in fields[11:15]) / tick
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


class Sampler(threading.Thread):
    """Every :data:`SAMPLE_SECONDS`: client connections, active ones and those waiting on a
    lock, per PostgreSQL cluster (its own connection left out)."""

    QUERY = (
        "SELECT count(*), count(*) FILTER (WHERE state = 'active'), "
        "count(*) FILTER (WHERE wait_event_type = 'Lock') FROM pg_stat_activity "
        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )

    def __init__(self, clusters: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.clusters, self.halt = clusters, threading.Event()
        self.samples: dict[str, list[tuple[int, int, int]]] = defaultdict(list)

    def run(self) -> None:
        import psycopg2

        connections = {}
        try:
            for name, url in self.clusters.items():
                connections[name] = psycopg2.connect(url)
                connections[name].autocommit = True
            while not self.halt.wait(SAMPLE_SECONDS):
                for name, connection in connections.items():
                    with contextlib.suppress(psycopg2.Error):
                        with connection.cursor() as cursor:
                            cursor.execute(self.QUERY)
                            self.samples[name].append(cursor.fetchone())
        finally:
            for connection in connections.values():
                connection.close()

    def stop(self) -> dict[str, dict[str, float]]:
        self.halt.set()
        self.join()
        return {
            name: {
                "max": max(s[0] for s in rows),
                "mean": float(np.mean([s[0] for s in rows])),
                "active": max(s[1] for s in rows),
                "lock": max(s[2] for s in rows),
            }
            for name, rows in self.samples.items()
            if rows
        }


@dataclass
class Stores:
    """The study's PostgreSQL, MLflow's PostgreSQL and the tracking server (None: given by URL,
    no CPU figures)."""

    optuna_pg: BenchPostgres | None
    mlflow_pg: BenchPostgres | None
    server: MlflowServer | None
    tracking_uri: str

    @classmethod
    def start(cls, max_connections: int, server_workers: int) -> Stores:
        optuna_pg = mlflow_pg = server = None
        try:
            optuna_pg = BenchPostgres(max_connections)
            mlflow_pg = BenchPostgres(max_connections)
            server = MlflowServer(mlflow_pg.create_database("mlflow"), server_workers)
        except BaseException:
            for part in (server, mlflow_pg, optuna_pg):
                if part is not None:
                    part.close()
            raise
        return cls(optuna_pg, mlflow_pg, server, server.url)

    def cpu(self) -> dict[str, float]:
        parts = {"optuna_pg": self.optuna_pg, "mlflow_pg": self.mlflow_pg, "server": self.server}
        return {k: process_cpu(v.process.pid) for k, v in parts.items() if v is not None}

    def fatals(self) -> Counter[str]:
        found: Counter[str] = Counter()
        for cluster in (self.optuna_pg, self.mlflow_pg):
            if cluster is not None:
                found += cluster.fatals()
        return found

    def close(self) -> None:
        for part in (self.server, self.mlflow_pg, self.optuna_pg):
            if part is not None:
                part.close()


# ------------------------------------------------------------------------------------ the phases


def run_phase(
    stores: Stores,
    storage: str,
    study_name: str,
    count: int,
    args: argparse.Namespace,
    profile: dict[str, Any],
    out: Path,
) -> dict[str, Any]:
    """``count`` forked workers on a new study of ``count`` x ``--trials-per-worker`` trials,
    bounded by ``--seconds`` (+ :data:`GRACE_SECONDS` for the trials in flight; then SIGTERM,
    then SIGKILL). Returns the figures of :func:`analyse`."""
    out.mkdir(parents=True, exist_ok=True)
    total = count * args.trials_per_worker
    clusters = {"optuna": _plain(storage)}
    if stores.mlflow_pg is not None:
        clusters["mlflow"] = stores.mlflow_pg.url("mlflow")
    runs = 16 if stores.server is not None else 0  # no server's CPU to count: no warm-up runs
    warm_up(stores.tracking_uri, storage, out, runs)  # before the CPU is counted
    cpu_before, fatal_before = stores.cpu(), stores.fatals()
    began = time.time()
    children: dict[int, int] = {}
    client_cpu, killed = 0.0, 0
    gc.collect()
    gc.freeze()  # the children's collector leaves the parent's objects (and their pages) alone
    try:
        for index in range(count):
            pid = os.fork()
            if pid == 0:
                worker_main(
                    index, study_name, storage, stores.tracking_uri, total, profile, args, out
                )
            children[pid] = index
        sampler = Sampler(clusters)
        sampler.start()
        client_cpu += reap(children, args.seconds + GRACE_SECONDS)
        killed = len(children)
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            client_cpu += reap(children, 10.0)
    connections = sampler.stop()
    ended = time.time()
    cpu = {k: v - cpu_before[k] for k, v in stores.cpu().items()}
    cpu["clients"] = client_cpu
    results = []
    for index in range(count):
        path = out / f"worker-{index}.json"
        results.append(json.loads(path.read_text()) if path.is_file() else {"failed": "no result"})
    failed = [f"worker {i}: {r['failed']}" for i, r in enumerate(results) if "failed" in r]
    if len(failed) == count:
        raise RuntimeError(f"every worker failed; the first: {failed[0]}")
    figures = analyse(storage, stores.tracking_uri, study_name, results, total)
    figures.update(
        workers=count,
        target=total,
        seconds=ended - began,
        killed=killed,
        connections=connections,
        cpu=cpu,
        fatals=dict(stores.fatals() - fatal_before),
        failed=failed,
    )
    return figures


def reap(children: dict[int, int], seconds: float) -> float:
    """Wait up to ``seconds`` for the forked ``children`` (pid: index) to end, removing each
    that does; returns the CPU seconds of those reaped."""
    cpu, deadline = 0.0, time.monotonic() + seconds
    while children and time.monotonic() < deadline:
        pid, _, usage = os.wait4(-1, os.WNOHANG)
        if pid == 0:
            time.sleep(0.1)
            continue
        children.pop(pid, None)
        cpu += usage.ru_utime + usage.ru_stime
    return cpu


def warm_up(tracking_uri: str, storage: str, work: Path, runs: int = 16) -> None:
    """Import here, once, what the workers would each import on first use, so that the forked
    children share those pages and their CPU is their trials', not ~300 modules' import each:
    MLflow's REST client and run context (GitPython, tracing), Optuna's RDB storage (SQLAlchemy's
    ORM, Alembic) and the study lock on ``storage`` (its schema is created here, as the first
    worker would), TPE's estimators. Then ``runs`` short runs, 8 at a time, so that each of the
    server's workers has loaded what it loads on its first requests: that CPU is not a trial's
    (it went to the first phase). The runs go to an experiment of their own, not the study's.
    """
    client = MlflowClient(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.set_experiment("scale-bench-warm-up").experiment_id
    with mlflow.start_run(run_name="warm-up"):
        mlflow.log_params({"warm": 1})
        mlflow.log_metrics({"warm": 1.0})
    artifact = work / "warm-up.txt"
    artifact.write_text("warm\n" * 1000)

    def short_run(index: int) -> None:
        run_id = client.create_run(experiment, tags={"warm": str(index)}).info.run_id
        client.log_batch(run_id, [Metric("warm", 1.0, 0, 1)], [Param("w", "1")])
        client.log_artifact(run_id, str(artifact))
        client.search_runs([experiment], f"tags.warm = '{index}'", max_results=1)
        client.set_terminated(run_id)

    if runs:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(short_run, range(runs)))
    backend = optuna.storages.RDBStorage(storage)
    backend.engine.dispose()  # no connection crosses the fork
    lock = locks.StorageLock(storage, "warm-up")
    lock.acquire()
    lock.release()
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(n_startup_trials=2, seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_int("n", 1, 9), n_trials=4)


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg2://", "postgresql://")


def analyse(
    storage: str, tracking_uri: str, study_name: str, results: list[dict], total: int
) -> dict[str, Any]:
    """Rates, overhead per trial, store-call percentiles, and the study's bookkeeping checks
    (the test's): finished count, one FINISHED run per complete trial, nothing left RUNNING."""
    backend = optuna.storages.RDBStorage(storage)
    try:
        trials = optuna.load_study(study_name=study_name, storage=backend).get_trials()
    finally:
        backend.engine.dispose()
    State = optuna.trial.TrialState
    done = [t for t in trials if t.state in (State.COMPLETE, State.PRUNED)]
    slept = {int(n): s for r in results for n, s in (r.get("slept") or {}).items()}
    figures: dict[str, Any] = {
        "states": dict(Counter(t.state.name for t in trials)),
        "finished": trial_retries.finished_count(trials),
    }
    if done:
        starts = sorted(t.datetime_start.timestamp() for t in trials if t.datetime_start)
        completes = [t.datetime_complete.timestamp() for t in done]
        span = max(completes) - min(starts)
        first_all = starts[min(len(starts), len(results)) - 1]  # every worker is in a trial
        window = max(starts) - first_all
        steady = [c for c in completes if first_all <= c <= max(starts)]
        walls = [t.duration.total_seconds() for t in done]
        overhead = [w - slept.get(t.number, 0.0) for w, t in zip(walls, done, strict=True)]
        mean_sleep = float(np.mean([slept.get(t.number, 0.0) for t in done]))
        figures.update(
            per_minute_span=60 * len(done) / span,
            per_minute_steady=60 * len(steady) / window if window >= 10 else float("nan"),
            window=window,
            ramp=first_all - min(starts),
            per_minute_ideal=60 * len(results) / mean_sleep if mean_sleep else float("nan"),
            mean_sleep=mean_sleep,
            overhead=quantiles(overhead),
        )
    calls: dict[str, list[float]] = defaultdict(list)
    errors: Counter[str] = Counter()
    retries: Counter[str] = Counter()
    uploaded: Counter[str] = Counter()
    for result in results:
        uploaded.update(result.get("uploaded", {}))
        for name, seconds in result.get("seconds", {}).items():
            calls[name] += seconds
        errors.update(result.get("errors", {}))
        retries.update(result.get("retries", {}))
    figures["calls"] = {
        name: {**quantiles(seconds), "n": len(seconds), "errors": errors.get(name, 0)}
        for name, seconds in sorted(calls.items())
    }
    figures.update(errors=dict(errors), retries=dict(retries), uploaded=dict(uploaded))
    figures["check"] = check_runs(tracking_uri, study_name, trials)
    memory = [r["private_mb"] for r in results if "private_mb" in r]
    figures["private_mb"] = {"max": max(memory, default=0), "mean": float(np.mean(memory or [0]))}
    return figures


def quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "mean": float("nan")}
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50": float(p50), "p99": float(p99), "mean": float(np.mean(values))}


def check_runs(tracking_uri: str, study_name: str, trials: list) -> dict[str, Any]:
    """The runs of the study against its trials: complete trials without exactly one FINISHED
    run, runs left RUNNING, trials left RUNNING or WAITING, runs by role and status."""
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(study_name)
    runs, token = [], None
    while experiment is not None:
        page = client.search_runs([experiment.experiment_id], max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            break
    finished: Counter[int] = Counter()
    statuses: Counter[str] = Counter()
    for run in runs:
        statuses[f"{run.data.tags.get(tracking.ROLE_TAG)} {run.info.status}"] += 1
        if run.data.tags.get(tracking.ROLE_TAG) == "trial" and run.info.status == "FINISHED":
            finished[int(run.data.tags[tracking.TRIAL_TAG])] += 1
    State = optuna.trial.TrialState
    complete = [t.number for t in trials if t.state == State.COMPLETE]
    return {
        "runs": dict(statuses),
        "complete_without_one_finished_run": [n for n in complete if finished[n] != 1],
        "running_runs": sum(n for k, n in statuses.items() if k.endswith("RUNNING")),
        "running_trials": sum(t.state in (State.RUNNING, State.WAITING) for t in trials),
    }


# ------------------------------------------------------------------------------------ reporting


def print_phase(label: str, f: dict[str, Any]) -> None:
    """One line per worker count (Markdown table row)."""
    calls, conns, cpu, nan = f["calls"], f["connections"], f["cpu"], float("nan")
    lock = calls.get("lock wait", {})
    trials = max(1, sum(f["states"].get(s, 0) for s in ("COMPLETE", "PRUNED", "FAIL")))
    per_trial = " / ".join(
        f"{cpu[k] / trials:.2f}" if k in cpu else "n/a"
        for k in ("clients", "optuna_pg", "mlflow_pg", "server")
    )
    errors = sum(f["errors"].values()) + sum(f["fatals"].values()) + len(f["failed"])
    pg = " + ".join(f"{conns[k]['max']}" for k in ("optuna", "mlflow") if k in conns)
    waiting = max((c["lock"] for c in conns.values()), default=0)
    print(
        f"| {label} | {f['workers']} | {f['finished']}/{f['target']} "
        f"| {f.get('per_minute_steady', float('nan')):.0f} | {f.get('per_minute_span', 0):.0f} "
        f"| {f.get('per_minute_ideal', float('nan')):.0f} "
        f"| {f.get('per_minute_steady', float('nan')) / f.get('per_minute_ideal', 1):.2f} "
        f"| {f.get('overhead', {}).get('p50', float('nan')):.2f} / "
        f"{f.get('overhead', {}).get('p99', float('nan')):.2f} "
        f"| {1000 * lock.get('p50', nan):.0f} / {1000 * lock.get('p99', nan):.0f} "
        f"| {pg} | {waiting} | {errors} | {sum(f['retries'].values())} | {per_trial} "
        f"| {f.get('ramp', float('nan')):.0f} |",
        flush=True,
    )


PHASE_HEADER = (
    "| variant | workers | finished | trials/min steady | span | ideal | steady/ideal "
    "| overhead s/trial p50 / p99 | study lock wait ms p50 / p99 | PG connections max "
    "(optuna + mlflow) | lock waiters max | errors | retries "
    "| CPU s/trial: clients / optuna PG / mlflow PG / server | ramp s |\n" + "|---" * 15 + "|"
)


def print_calls(label: str, phases: dict[int, dict[str, Any]], top: int = 18) -> None:
    """Per store call: calls per finished trial and p50 / p99 ms, one column per worker count
    (the calls that took the most time in all, first)."""
    weight: Counter[str] = Counter()
    for f in phases.values():
        for name, c in f["calls"].items():
            weight[name] += c["mean"] * c["n"]
    counts = sorted(phases)
    print(f"\nstore calls, {label}: calls per finished trial, p50 / p99 ms (errors)")
    print("| call | " + " | ".join(f"{w} workers" for w in counts) + " |")
    print("|---" * (len(counts) + 1) + "|")
    for name, _ in weight.most_common(top):
        cells = []
        for w in counts:
            c = phases[w]["calls"].get(name)
            finished = max(1, phases[w]["finished"])
            cells.append(
                ""
                if c is None
                else f"{c['n'] / finished:.1f}: {1000 * c['p50']:.0f} / "
                f"{1000 * c['p99']:.0f}" + (f" ({c['errors']})" if c["errors"] else "")
            )
        print(f"| {name} | " + " | ".join(cells) + " |")


def print_counts(counts: dict[str, Any]) -> None:
    """The real trials' calls and the simulated ones', per trial, side by side."""
    real, sim, plans = counts["real"], counts["sim"], counts["plans"]
    print("\ncalls per trial, real (run_sweep, TensorFlow) | simulated (same plan):")
    for n, (r, s, p) in enumerate(zip(real, sim, plans, strict=False)):
        state = "pruned" if p["pruned"] else "complete"
        keep = ", weights kept" if p["keep"] else ""
        print(f"trial {n}: {p['epochs']} epochs, {state}{keep}")
        for name in sorted(set(r) | set(s)):
            mark = "" if r.get(name, 0) == s.get(name, 0) else "   <- differs"
            print(f"    {name:40s} {r.get(name, 0):4d} | {s.get(name, 0):4d}{mark}")
    total = [sum(c.values()) for c in real], [sum(c.values()) for c in sim]
    print(f"total per trial: real {total[0]} | simulated {total[1]}")


def demand(f: dict[str, Any]) -> dict[str, float]:
    """Cores each store needs for ``W`` workers that train all the time: the trials/s they
    would finish with no store cost (W / the mean sleep) x the store's CPU seconds per trial
    measured at that W; ``clients`` is per worker (its share of one core)."""
    trials = max(1, sum(f["states"].get(s, 0) for s in ("COMPLETE", "PRUNED", "FAIL")))
    rate = f["workers"] / f["mean_sleep"] if f.get("mean_sleep") else float("nan")
    cores = {k: rate * v / trials for k, v in f["cpu"].items() if k != "clients"}
    cores["clients"] = (f["cpu"].get("clients", 0.0) / trials) / f.get("mean_sleep", float("nan"))
    return cores


def print_demand(label: str, phases: dict[int, dict[str, Any]], store_cores: int) -> None:
    """Per worker count: the cores each store would need (:func:`demand`) and the artifact
    bytes a trial uploads."""
    print(
        f"\ncores needed if every worker trained all the time, {label} (store cores: {store_cores})"
    )
    print(
        "| workers | trials/s demanded | MLflow server | Optuna PG | MLflow PG "
        "| per client | artifact MB/trial |"
    )
    print("|---|---|---|---|---|---|---|")
    for w in sorted(phases):
        f = phases[w]
        need = demand(f)
        trials = max(1, f["finished"])
        uploaded = sum(r for r in f.get("uploaded", {}).values()) / 1e6 / trials
        nan = float("nan")
        rate = w / f["mean_sleep"] if f.get("mean_sleep") else nan
        cells = " | ".join(f"{need.get(k, nan):.1f}" for k in ("server", "optuna_pg", "mlflow_pg"))
        print(f"| {w} | {rate:.1f} | {cells} | {need['clients']:.2f} | {uploaded:.1f} |")


def verdict(phases: dict[int, dict[str, Any]], store_cores: int, max_connections: int) -> str:
    """The first worker count where a store would need more than ``store_cores`` cores
    (:func:`demand`) or where PostgreSQL refused connections, and which store."""
    names = {"server": "the MLflow server's CPU", "optuna_pg": "Optuna's PostgreSQL CPU"}
    names["mlflow_pg"] = "MLflow's PostgreSQL CPU"
    for w in sorted(phases):
        f = phases[w]
        if f["fatals"]:
            return (
                f"first to break at {w} workers: PostgreSQL connections ({dict(f['fatals'])}, "
                f"max_connections {max_connections})"
            )
        over = {k: v for k, v in demand(f).items() if k in names and v > store_cores}
        if over:
            worst = max(over, key=over.get)
            return (
                f"first to break at {w} workers: {names[worst]} ({over[worst]:.1f} cores "
                f"needed, {store_cores} assumed)"
            )
    return (
        f"no store over {store_cores} cores and no refused connection up to {max(phases)} workers"
    )


# ----------------------------------------------------------------------------------------- main


def _close_dead_parents_53b065f(experiment_id: str, study_name: str, own: str | None = None):
    """``liveness.close_dead_parents`` as of commit 53b065f (before the fix): it asked every
    live parent whether it had a trial running, one search each, before the cheap checks."""
    from experiments.config import GRACE_FACTOR, HEARTBEAT_SECONDS

    t = tracking
    client = MlflowClient()
    study = study_name.replace("'", "\\'")
    where = f"tags.`{t.STUDY_TAG}` = '{study}' and tags.`{t.ROLE_TAG}` = 'study'"
    where += " and attributes.status = 'RUNNING'"
    closed = []
    for parent in client.search_runs([experiment_id], where, max_results=1000):
        run_id = parent.info.run_id
        running = f"tags.`{t.PARENT_TAG}` = '{run_id}' and attributes.status = 'RUNNING'"
        if run_id == own or client.search_runs([experiment_id], running, max_results=1):
            continue
        worker = parent.data.tags.get(t.WORKER_TAG, "")
        last = float(parent.data.tags.get(liveness.LAST_SEEN_TAG, parent.info.start_time / 1000))
        silent = time.time() - last
        heartbeat = float(parent.data.params.get("heartbeat", HEARTBEAT_SECONDS))
        if liveness.process_gone(worker):
            reason = f"worker {worker} died between trials (its process is gone)"
        elif silent > GRACE_FACTOR * heartbeat:
            reason = f"worker {worker} silent for {silent:.0f}s between trials: lost"
        else:
            continue
        client.set_tag(run_id, t.ERROR_TAG, reason)
        client.set_terminated(run_id, "FAILED")
        closed.append(run_id)
    return closed


def _close_lost_runs_53b065f(self: workers.Worker, force: bool = False) -> None:
    """``Worker.close_lost_runs`` as of commit 53b065f: every time it is called (the start and
    the end of each trial), not at most once a heartbeat."""
    self._seen()
    with contextlib.suppress(Exception):
        liveness.close_dead_parents(
            self.experiment_id, self.study.study_name, own=self.parent_run_id
        )
    with contextlib.suppress(Exception):
        trials = self.study.get_trials(deepcopy=False)
        history = trial_retries.retry_history
        retries = {history(t)[-1]: t.number for t in trials if history(t)}
        reasons = {}
        for t in trials:
            if t.state.is_finished():
                again = f"; retried as trial {retries[t.number]}" if t.number in retries else ""
                reasons[t.number] = f"worker lost in trial {t.number} (no heartbeat){again}"
        liveness.close_lost_runs(self.experiment_id, self.study.study_name, reasons)


# The code before the fix, for ``--fix before``: (owner, name, function) patched in before the
# workers are forked (they inherit it). The final forced check of ``Worker.optimize`` stays: it
# runs once per worker, after its last trial.
BEFORE: list[tuple[Any, str, Any]] = [
    (liveness, "close_dead_parents", _close_dead_parents_53b065f),
    (workers.Worker, "close_lost_runs", _close_lost_runs_53b065f),
    (study_storage, "FINISHED_FRESH_SECONDS", 0.0),  # every read goes to the database, as Optuna's
]


@contextlib.contextmanager
def variant(fix: str):
    """Patch the pre-fix functions in (``before``) for the phases of one variant."""
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in BEFORE]
    if fix == "before":
        for owner, name, old in BEFORE:
            setattr(owner, name, old)
    try:
        yield
    finally:
        for owner, name, current in saved:
            setattr(owner, name, current)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # the first paragraph whole: its first line alone stopped mid-sentence (probe CC)
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--workers", default="8,16,32,64", help="worker counts, in turn")
    parser.add_argument("--trials-per-worker", type=int, default=4, help="the study's total / W")
    parser.add_argument("--seconds", type=int, default=240, help="each count's trial loop limit")
    parser.add_argument("--fix", default="after", help="before,after: the variants' code")
    parser.add_argument("--server-workers", default="4", help="mlflow server --workers, a list")
    parser.add_argument("--max-connections", type=int, default=100, help="each PostgreSQL's")
    parser.add_argument("--store-cores", type=int, default=4, help="each store's, for the verdict")
    parser.add_argument("--real-trials", type=int, default=3, help="calibration; 0: none")
    parser.add_argument("--gpu-factor", type=float, default=5.0, help="CPU seconds / GPU seconds")
    parser.add_argument("--clips", type=int, default=1500, help="scores.csv rows (dev + test)")
    parser.add_argument(
        "--heads", default="*", choices=("*", "lstm30"), help="the sweep's --heads (the profile's)"
    )
    parser.add_argument("--heartbeat", type=int, default=10, help="the sweep's --heartbeat")
    parser.add_argument("--storage", help="an existing study database (one count, no CPU)")
    parser.add_argument("--tracking-uri", help="with --storage: the tracking server")
    parser.add_argument("--study", default="scale", help="with --storage: the study's name")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--profile", type=Path, help="space_profile() as JSON: no calibration")
    parser.add_argument("--calibrate", help=argparse.SUPPRESS)
    parser.add_argument("--calibrate-storage", nargs=2, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_calibration(args: argparse.Namespace, work: Path, stores: Stores | None) -> dict:
    """The calibration subprocess (TensorFlow stays out of this process and its forks), or the
    profile given with ``--profile``."""
    if args.profile:
        return json.loads(args.profile.read_text())
    path = work / "profile.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--calibrate", str(path)]
    command += ["--real-trials", str(args.real_trials if stores else 0)]
    command += ["--heartbeat", str(args.heartbeat)]
    if stores is not None and args.real_trials:
        real = stores.optuna_pg.create_database("calibrate_real")
        sim = stores.optuna_pg.create_database("calibrate_sim")
        command += ["--tracking-uri", stores.tracking_uri, "--calibrate-storage", real, sim]
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"calibration failed: {(done.stdout + done.stderr)[-3000:]}")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # MLflow's "View run ... at: http://..." after every simulated run, as the sweep hides it
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if args.calibrate:
        calibrate(args)
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    counts = [int(w) for w in args.workers.split(",")]
    fixes = args.fix.split(",")
    server_workers = [int(w) for w in args.server_workers.split(",")]
    work = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    started, load = time.time(), os.getloadavg()[0]
    results: dict[str, dict[int, dict[str, Any]]] = {}
    profile: dict[str, Any] = {}
    stores = None
    try:
        if args.storage:  # one count on servers someone else started (the test's)
            stores = Stores(None, None, None, args.tracking_uri)
            profile = run_calibration(args, work, None)
            with variant(fixes[0]):
                figures = run_phase(
                    stores, args.storage, args.study, counts[0], args, profile, work / "phase"
                )
            results["given"] = {counts[0]: figures}
            print(PHASE_HEADER)
            print_phase("given", figures)
        for sw in server_workers if not args.storage else ():
            stores = Stores.start(args.max_connections, sw)
            if not profile:
                profile = run_calibration(args, work, stores)
                print(profile["suggest_check"])
                if "counts" in profile:
                    print_counts(profile["counts"])
                print(PHASE_HEADER, flush=True)
            for count in counts:  # the variants in turn at each count: the same load around
                for fix in fixes:
                    label = f"{fix}, server --workers {sw}"
                    name = f"{fix}-{sw}-{count}"
                    storage = stores.optuna_pg.create_database(name.replace("-", "_"))
                    with variant(fix):
                        figures = run_phase(
                            stores, storage, name, count, args, profile, work / name
                        )
                    results.setdefault(label, {})[count] = figures
                    print_phase(label, figures)
                    artifacts = stores.server.root / "artifacts"
                    shutil.rmtree(artifacts, ignore_errors=True)  # disk, between phases
            stores.close()
            stores = None
    finally:
        if stores is not None:
            stores.close()
        shutil.rmtree(work, ignore_errors=True)
    for label, phases in results.items():
        print_calls(label, phases)
    for label, phases in results.items():
        print_demand(label, phases, args.store_cores)
        print(f"{label}: {verdict(phases, args.store_cores, args.max_connections)}")
    cpu = _cpu_model()
    print(
        f"\nmachine: {cpu}, {os.cpu_count()} cores shared by the clients, PostgreSQL and the "
        f"server; load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at the end; "
        f"bench {time.time() - started:.0f} s; gpu factor {args.gpu_factor}, "
        f"{args.trials_per_worker} trials per worker, heartbeat {args.heartbeat} s"
    )
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args), **results}, default=str))


def _cpu_model() -> str:
    text = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", text)
    return model.group(1).strip() if model else platform.processor()


if __name__ == "__main__":
    main()
