"""Throughput of many workers on one study, and what remote stores cost per trial.

    python bench/workers.py [--trials 8]

Starts a throw-away PostgreSQL and an ``mlflow server`` on it (tests.servers: Debian's
PostgreSQL under /usr/lib/postgresql, as the tests use), extracts the fc7 features of a tiny
frame set once, then runs ``python experiments/sweep.py --heads lstm30`` studies on the cached
features:

* 1 worker on SQLite + MLflow's local store (``mlflow.db``, ``mlruns/``): the baseline;
* 1, 2 and 4 workers on one PostgreSQL study + the mlflow server.

Throughput is finished trials per minute from the first trial's start to the last one's end
(Optuna's timestamps: process start-up, extraction and the closing comparison are left out).
A trial's overhead is its wall time (Optuna) minus its training time (``train_seconds`` logged
in MLflow): suggesting, logging metrics and artifacts, plots, the database round trips.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean

import mlflow
import optuna

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import MlflowServer, Postgres  # noqa: E402
from tests.test_sweep import FRAMES, write_tiny_set  # noqa: E402


def run_workers(work: Path, count: int, trials: int, study: str, storage: str, uri: str) -> float:
    command = [sys.executable, str(ROOT / "experiments" / "sweep.py")]
    command += ["--data", str(work / "data"), "--cache-dir", str(work / "cache")]
    command += ["--frames", str(FRAMES), "--heads", "lstm30", "--trials", str(trials)]
    command += ["--study", study, "--storage", storage, "--tracking-uri", uri]
    threads = str(max(1, (os.cpu_count() or 1) // count))
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    env.update(TF_NUM_INTRAOP_THREADS=threads, TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS=threads)
    start = time.perf_counter()
    processes = []
    for k in range(count):
        with open(work / f"{study}-{k}.log", "w") as log:
            processes.append(
                subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
    for k, process in enumerate(processes):
        if process.wait() != 0:
            sys.exit(f"worker failed: {(work / f'{study}-{k}.log').read_text()[-3000:]}")
    return time.perf_counter() - start


def measure(study: str, storage: str, uri: str) -> dict[str, float]:
    trials = [
        t
        for t in optuna.load_study(study_name=study, storage=storage).get_trials()
        if t.state.is_finished() and t.datetime_complete is not None
    ]
    span = (
        max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
    ).total_seconds()
    walls = {t.number: (t.datetime_complete - t.datetime_start).total_seconds() for t in trials}
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(
        experiment_names=[study], filter_string="tags.`vggface_heads.role` = 'trial'"
    )
    train = {
        int(n): s
        for n, s in zip(
            runs["tags.optuna.trial_number"], runs["metrics.train_seconds"], strict=True
        )
    }
    overhead = [walls[n] - train[n] for n in walls if n in train]
    return {
        "trials": len(trials),
        "span": span,
        "per_minute": 60 * len(trials) / span,
        "trial": mean(walls.values()),
        "train": mean(train[n] for n in walls if n in train),
        "overhead": mean(overhead),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="trials per study")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vggface-bench-workers-"))
    postgres = server = None
    rows = []
    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    try:
        write_tiny_set(work / "data")
        postgres = Postgres()
        server = MlflowServer(postgres.create_database("mlflow"))
        # Extract once, outside the timings (a one-trial study on SQLite).
        run_workers(work, 1, 1, "warmup", f"sqlite:///{work}/warmup.db", f"sqlite:///{work}/w.db")
        local = (f"sqlite:///{work}/optuna.db", f"sqlite:///{work}/mlflow.db")
        wall = run_workers(work, 1, args.trials, "local-1", *local)
        rows.append(("SQLite + local files", 1, wall, measure("local-1", *local)))
        for count in (1, 2, 4):
            study = f"remote-{count}"
            storage = postgres.create_database(study)
            wall = run_workers(work, count, args.trials, study, storage, server.url)
            rows.append(
                ("PostgreSQL + mlflow server", count, wall, measure(study, storage, server.url))
            )
    finally:
        if server is not None:
            server.close()
        if postgres is not None:
            postgres.close()
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"load average {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at the end; "
        f"bench {time.perf_counter() - started:.0f} s"
    )
    print(
        "| stores | workers | trials | processes s | trials span s | trials/min | trial s "
        "| train s | overhead s/trial |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for stores, count, wall, m in rows:
        print(
            f"| {stores} | {count} | {m['trials']} | {wall:.1f} | {m['span']:.1f} "
            f"| {m['per_minute']:.1f} | {m['trial']:.2f} | {m['train']:.2f} | {m['overhead']:.2f} |"
        )
    local, remote = rows[0][3], rows[1][3]
    print(
        f"remote stores cost {remote['overhead'] - local['overhead']:+.2f} s per trial against "
        f"SQLite + local files (1 worker each); speed-up 1 -> 2 -> 4 workers: "
        + " -> ".join(f"{r[3]['per_minute'] / remote['per_minute']:.2f}" for r in rows[1:])
    )


if __name__ == "__main__":
    main()
