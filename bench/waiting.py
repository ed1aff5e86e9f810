"""Workers waiting at a study's tail: what their polls cost the one that has to take the lock.

    python bench/waiting.py [--workers 64] [--finished 300] [--seconds 30]

When a study's budget is taken by trials running in other workers, the idle workers wait: one
of those trials may be lost and retried. Each looks every ``WAIT_POLL_SECONDS`` (3 s). Two ways
of looking, measured in turn on one throw-away PostgreSQL 15 on loopback (``max_connections``
400), on a study of ``--finished`` complete trials (the sweep's parameters, 30 intermediate
values and 7 user attributes each) and ``--workers`` running ones:

- ``locked``: every poll is ``Worker._look`` (the study lock, Optuna's ``fail_stale_trials``, all
  the trials read), then the lock released: what each poll did before this bench was written;
- ``unlocked``: one ``Worker._look`` as the wait starts, then every poll ``Worker._running`` (the
  running trials read, no lock): the worker's waiting polls now, until a running trial ends or
  a heartbeat passes.

``--workers`` processes (forked, each its own storage and lock connections) poll; once all have
opened the study, for ``--seconds``, this process, as the worker whose trial just ended would,
takes the study lock once a second and times how long it waited. Printed per way: the polls done, a
poll's p50/p99 seconds, and the lock wait's p50/p99/max.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/scale.py
from engine import cpu  # noqa: E402
from scale import BenchPostgres, quantiles  # noqa: E402

from experiments.config import WAIT_POLL_SECONDS  # noqa: E402
from experiments.stores import workers  # noqa: E402


def fill(study: optuna.Study, finished: int, running: int) -> None:
    """``finished`` complete trials shaped like the sweep's, then ``running`` running ones."""
    distributions = {
        "family": optuna.distributions.CategoricalDistribution(["dense", "conv", "lstm"]),
        "width": optuna.distributions.IntDistribution(16, 4096, log=True),
        "learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True),
        "dropout": optuna.distributions.FloatDistribution(0.0, 0.7),
        "batch_size": optuna.distributions.CategoricalDistribution([16, 32, 64]),
    }
    rng = random.Random(0)
    trials = []
    for number in range(finished):
        params = {
            "family": rng.choice(["dense", "conv", "lstm"]),
            "width": rng.randint(16, 4096),
            "learning_rate": 10 ** rng.uniform(-5, -2),
            "dropout": rng.uniform(0, 0.7),
            "batch_size": rng.choice([16, 32, 64]),
        }
        trials.append(
            optuna.trial.create_trial(
                params=params,
                distributions=distributions,
                value=rng.random(),
                intermediate_values={e: rng.random() for e in range(1, 31)},
                user_attrs={f"attr{i}": f"value {number} {i}" for i in range(7)},
            )
        )
    study.add_trials(trials)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ask() outside optimize, by design
        for _ in range(running):
            study.ask()


def opened(url: str, name: str) -> optuna.Study:
    """The study as a worker opens it (its own storage, cache and connections)."""
    return workers.open_study(
        name, url, directions=["minimize"], pruner=optuna.pruners.NopPruner()
    )[0]


def poll(url: str, name: str, way: str, folder: Path, index: int) -> None:
    """One waiting worker's polls, from when it opened the study until ``folder/stop`` exists;
    their seconds to a file."""
    worker = workers.Worker(opened(url, name), url, experiment_id="0")
    (folder / f"ready-{index}").touch()
    seconds = []
    first = True
    while not (folder / "stop").exists():
        start = time.perf_counter()
        if way == "locked" or first:
            try:
                worker._look()
            finally:
                worker.lock.release()
            first = False
        else:
            worker._running()
        seconds.append(time.perf_counter() - start)
        time.sleep(WAIT_POLL_SECONDS)
    (folder / f"{way}-{index}.txt").write_text("\n".join(map(str, seconds)))


def phase(url: str, name: str, way: str, count: int, seconds: float, root: Path) -> dict:
    """``count`` pollers, and the lock waits of a finishing worker for ``seconds`` once all of
    them have opened the study."""
    folder = root / way
    folder.mkdir()
    children = []
    for index in range(count):
        pid = os.fork()
        if pid == 0:
            try:
                poll(url, name, way, folder, index)
            finally:
                os._exit(0)
        children.append(pid)
    finisher = workers.Worker(opened(url, name), url, experiment_id="0")
    while len(list(folder.glob("ready-*"))) < count:
        time.sleep(0.2)
    time.sleep(WAIT_POLL_SECONDS)  # the last to open has polled once
    waits = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        start = time.perf_counter()
        finisher.lock.acquire()
        waits.append(time.perf_counter() - start)
        finisher.lock.release()
        time.sleep(1.0)
    (folder / "stop").touch()
    for pid in children:
        os.waitpid(pid, 0)
    polls = [float(v) for f in folder.glob(f"{way}-*.txt") for v in f.read_text().split()]
    return {"polls": polls, "waits": waits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--finished", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    server = BenchPostgres(max_connections=400)
    try:
        url = server.create_database("waiting")
        study = opened(url, "waiting")
        fill(study, args.finished, args.workers)
        print(
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {cpu()['model']} ({cpu()['flags']}), "
            f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
            f"{args.workers} waiting workers, {args.finished} finished trials, "
            f"polls every {WAIT_POLL_SECONDS:g} s for {args.seconds:g} s"
        )
        print("| way | polls | poll s p50 / p99 | lock wait s p50 / p99 / max |")
        print("|---|---|---|---|")
        for way in ("locked", "unlocked"):
            found = phase(url, "waiting", way, args.workers, args.seconds, Path(server.root))
            polls, waits = quantiles(found["polls"]), quantiles(found["waits"])
            print(
                f"| {way} | {len(found['polls'])} | {polls['p50']:.3f} / {polls['p99']:.3f} "
                f"| {waits['p50']:.3f} / {waits['p99']:.3f} / {max(found['waits']):.3f} |",
                flush=True,
            )
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
    finally:
        server.close()


if __name__ == "__main__":
    main()
