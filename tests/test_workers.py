"""Many workers on one study: real PostgreSQL, a real ``mlflow server``, real worker processes.

Each worker is ``python experiments/sweep.py`` as a user starts it, on a tiny frame set (12 clips
of 3 frames) and the ``lstm30`` family, so a trial takes seconds. The servers are shared by the
session (tests/conftest.py); each test has its own database, so every start is on an empty one.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.storages._heartbeat import HeartbeatThread
from optuna.trial import FrozenTrial, TrialState

from experiments.config import WAIT_POLL_SECONDS
from experiments.results import console
from experiments.stores import identity, retries, tracking, workers
from experiments.stores import storage as storage_module
from tests.servers import stop as stop_process
from tests.test_resume import CtrlCInAFinalizer
from tests.test_sweep import FRAMES, write_tiny_set

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "s3cret-pw"
HEARTBEAT = 2  # seconds; a trial silent for 3 heartbeats (6 s) is lost
WORKER_SECONDS = 300


@pytest.fixture(scope="module")
def workspace():
    root = Path(tempfile.mkdtemp(prefix="vggface-workers-"))
    try:
        write_tiny_set(root / "data")
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Workers:
    """Worker processes of one study, their outputs in files (a full pipe would stall one)."""

    def __init__(self, workspace: Path, storage: str, tracking_uri: str, study: str) -> None:
        self.workspace, self.storage, self.tracking_uri, self.study = (
            workspace,
            storage,
            tracking_uri,
            study,
        )
        self.started: list[tuple[subprocess.Popen, Path]] = []

    def start(
        self, count: int, trials: int, heartbeat: int = HEARTBEAT, **env_vars: str
    ) -> list[subprocess.Popen]:
        command = [sys.executable, str(REPO / "experiments" / "sweep.py")]
        command += ["--data", str(self.workspace / "data"), "--frames", str(FRAMES)]
        command += ["--cache-dir", str(self.workspace / "cache"), "--heads", "lstm30"]
        command += ["--trials", str(trials), "--study", self.study, "--storage", self.storage]
        command += ["--tracking-uri", self.tracking_uri, "--heartbeat", str(heartbeat)]
        env = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="")
        env.update(TF_CPP_MIN_LOG_LEVEL="3", TF_NUM_INTRAOP_THREADS="1", OMP_NUM_THREADS="1")
        env.update(TF_NUM_INTEROP_THREADS="1", **env_vars)
        batch = []
        for _ in range(count):
            log = self.workspace / f"{self.study}-{len(self.started)}.log"
            with open(log, "w") as out:
                process = subprocess.Popen(
                    command,
                    cwd=self.workspace,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.started.append((process, log))
            batch.append(process)
        return batch

    def wait(self, processes: list[subprocess.Popen]) -> list[str]:
        """Each process's output, once all have ended; each must exit 0."""
        deadline = time.monotonic() + WORKER_SECONDS
        outputs = []
        for process in processes:
            try:
                process.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"worker {process.pid} still running after {WORKER_SECONDS}s")
            output = self.output(process)
            assert process.returncode == 0, output[-3000:]
            outputs.append(output)
        return outputs

    def output(self, process: subprocess.Popen) -> str:
        return next(log for p, log in self.started if p is process).read_text()

    def close(self) -> None:
        for process, _ in self.started:
            stop_process(process, signal.SIGKILL, wait=5)


def with_password(url: str) -> str:
    """A password (the trust-auth server ignores it) that no run, line or error may show."""
    return url.replace("postgres@", f"postgres:{PASSWORD}@")


@pytest.fixture
def study_workers(request, postgres, mlflow_server, workspace):
    name = request.node.name.removeprefix("test_")[:40].replace("_", "-")
    storage = with_password(postgres.create_database(name))
    group = Workers(workspace, storage, mlflow_server.url, name)
    try:
        yield group
    finally:
        group.close()


def trial_runs(client: MlflowClient, study: str):
    experiment = client.get_experiment_by_name(study)
    return client.search_runs(
        [experiment.experiment_id], f"tags.`{tracking.STUDY_TAG}` = '{study}'", max_results=1000
    )


def check_study(group: Workers, trials: int, parents: int) -> tuple[optuna.Study, dict, dict]:
    """Counts, one run per trial, every run under a parent, no run left RUNNING."""
    study = optuna.load_study(study_name=group.study, storage=group.storage)
    all_trials = study.get_trials()
    assert retries.finished_count(all_trials) == trials
    assert not [t for t in all_trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    client = MlflowClient(group.tracking_uri)
    runs = trial_runs(client, group.study)
    by_role = {"study": [], "trial": []}
    for run in runs:
        by_role[run.data.tags[tracking.ROLE_TAG]].append(run)
    assert [r.info.status for r in runs if r.info.status == "RUNNING"] == []
    parent_runs = {r.info.run_id: r for r in by_role["study"]}
    assert len(parent_runs) == parents  # one per worker invocation
    numbers = [int(r.data.tags[tracking.TRIAL_TAG]) for r in by_role["trial"]]
    assert len(numbers) == len(set(numbers))  # no trial has two runs
    # Every trial that ran has its run; only one lost before it started its run may have none.
    done = [t.number for t in all_trials if t.state != TrialState.FAIL]
    assert set(done) <= set(numbers) <= {t.number for t in all_trials}
    for run in by_role["trial"]:
        assert run.data.tags["mlflow.parentRunId"] in parent_runs
    for run in parent_runs.values():  # the study's database password: logged as ***
        params = run.data.params
        assert PASSWORD not in str(params) and "postgres:***@" in params["storage"]
    for _, log in group.started:
        assert PASSWORD not in log.read_text()
        assert "View run" not in log.read_text()  # MLflow's line after every run, on a server
    runs_by_number = dict(zip(numbers, by_role["trial"], strict=True))
    return study, runs_by_number, parent_runs


def a_trial_run_finished(group: Workers) -> bool:
    """Whether a trial of the group's study has its MLflow run FINISHED."""
    client = MlflowClient(group.tracking_uri)
    try:
        return any(r.info.status == "FINISHED" for r in trial_runs(client, group.study))
    except Exception:  # the experiment does not exist yet
        return False


def test_two_then_four_workers_share_one_study(study_workers):
    first = study_workers.start(2, trials=3)  # together, on an empty database and cache
    outputs = study_workers.wait(first)
    study, runs, parents = check_study(study_workers, trials=3, parents=2)
    assert sum("extracted in" in out for out in outputs) == 1  # the other waited and reused
    assert sum(", reused, cache" in out for out in outputs) == 1
    # the other joined the first's study, which was not "resumed" (probe: 'resuming study s: 0 of')
    assert sum(f"new study {study_workers.study}:" in out for out in outputs) == 1
    assert sum(f"joining study {study_workers.study} (worker 2)" in out for out in outputs) == 1
    for out in outputs:  # the server's own page, not `mlflow ui --backend-store-uri http://`
        assert f"runs, best dev ACER first: {study_workers.tracking_uri}/#/experiments/" in out
        assert "mlflow ui" not in out

    outputs = study_workers.wait(study_workers.start(4, trials=6))
    study, runs, parents = check_study(study_workers, trials=6, parents=6)
    assert {t.state for t in study.get_trials()} <= {TrialState.COMPLETE, TrialState.PRUNED}
    baseline = [r for r in runs.values() if r.data.tags.get("vggface_heads.baseline")]
    assert len(baseline) == 1  # enqueued by every worker, run once
    assert all(p.info.status == "FINISHED" for p in parents.values())
    hosts = {p.data.tags[tracking.WORKER_TAG].rsplit(":", 1)[0] for p in parents.values()}
    assert hosts == {socket.gethostname()}
    assert all(", reused, cache" in out for out in outputs)


def in_transaction(storage: str) -> bool:
    """Whether a connection to the study's PostgreSQL database is inside a transaction: a
    worker frozen there would hold its row locks, and the other would wait on them for good."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(storage)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                sqlalchemy.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND state <> 'idle'"  # in a transaction, or
                    # a statement running (waiting on a lock): frozen, it holds its locks too
                )
            ).scalar()
    finally:
        engine.dispose()
    return bool(found)


def freeze_in_trial(group: Workers, workers: list[subprocess.Popen], between_writes: bool = False):
    """Freeze (SIGSTOP) the first of ``workers`` found in a trial: that worker, and the trial's
    MLflow run. Whichever it is: the first to start may wait while the other extracts. With
    ``between_writes``, only while no connection to the study's database is in a transaction
    (a worker left frozen must hold no row lock)."""
    client = MlflowClient(group.tracking_uri)
    deadline = time.monotonic() + WORKER_SECONDS
    while True:
        assert time.monotonic() < deadline, "no worker ran a trial"
        ended = [group.output(w) for w in workers if w.poll() is not None]
        assert not ended, f"a worker ended before one could be frozen in a trial:\n{ended[0]}"
        time.sleep(0.3)
        for worker in workers:
            os.kill(worker.pid, signal.SIGSTOP)  # frozen: what we see is what they are doing
        try:
            running = {
                _owner(client, run): run
                for run in trial_runs(client, group.study)
                if run.info.status == "RUNNING" and run.data.tags.get(tracking.ROLE_TAG) == "trial"
            }
        except Exception:  # the experiment does not exist yet
            running = {}
        if between_writes and running and in_transaction(group.storage):
            running = {}  # try again in a moment
        host = socket.gethostname()
        frozen = next((w for w in workers if f"{host}:{w.pid}" in running), None)
        for worker in workers:
            if worker is not frozen:
                os.kill(worker.pid, signal.SIGCONT)
        if frozen is not None:
            return frozen, running[f"{host}:{frozen.pid}"]


def test_a_mistyped_study_on_a_database_store_names_the_close_one_and_hides_the_password(
    mlflow_server, capsys
):
    """A study the store does not hold: compare and predict say where they looked with its
    password hidden (a PostgreSQL store's whole URL had been printed) and the name meant."""
    from experiments.commands import compare, predict

    MlflowClient(mlflow_server.url).create_experiment(
        "typo-target", tags={tracking.STUDY_TAG: "typo-target"}
    )
    store = with_password(mlflow_server.backend_uri)
    assert PASSWORD in store
    said = f"error: no study 'typo_target' in {store.replace(PASSWORD, '***')} (did you mean "
    said += "'typo-target'? python experiments/compare.py --list names them)"
    assert compare.main(["--tracking-uri", store, "--study", "typo_target"]) == 2
    assert capsys.readouterr().err.splitlines() == [said]
    assert predict.main(["--tracking-uri", store, "--study", "typo_target", "--best", "c.avi"]) == 2
    assert capsys.readouterr().err.splitlines() == [said]


def test_killed_worker_trial_is_failed_retried_and_its_runs_closed(study_workers):
    started = study_workers.start(2, trials=3)
    victim, killed_run = freeze_in_trial(study_workers, started)
    survivor = next(w for w in started if w is not victim)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    (out,) = study_workers.wait([survivor])

    study, runs, parents = check_study(study_workers, trials=3, parents=2)
    killed = int(killed_run.data.tags[tracking.TRIAL_TAG])
    states = {t.number: t.state for t in study.get_trials()}
    assert [n for n, s in states.items() if s == TrialState.FAIL] == [killed]
    assert sum(s == TrialState.COMPLETE for s in states.values()) == 3
    retry = next(t for t in study.get_trials() if retries.retry_history(t) == [killed])
    assert retry.state == TrialState.COMPLETE and retry.params == study.trials[killed].params
    assert runs[retry.number].data.tags[tracking.RETRY_TAG] == str(killed)
    assert runs[retry.number].info.status == "FINISHED"

    lost = runs[killed]
    assert lost.info.status == "FAILED"
    shown = runs[retry.number].info.run_name.removeprefix(f"{retry.number}-")  # the head
    assert lost.info.run_name == f"{killed}-{shown} (lost)"  # its figures are its retry's
    assert lost.data.tags[tracking.ERROR_TAG].startswith(f"worker lost in trial {killed}")
    assert f"retried as trial {retry.number}" in lost.data.tags[tracking.ERROR_TAG]
    victim_parent = parents[lost.data.tags["mlflow.parentRunId"]]
    assert victim_parent.info.status == "FAILED"
    survivor_parent = next(
        p for p in parents.values() if p.info.run_id != victim_parent.info.run_id
    )
    assert survivor_parent.info.status == "FINISHED"


def test_database_restart_costs_at_most_the_trial_in_flight(study_workers, postgres):
    (worker,) = study_workers.start(1, trials=2)
    deadline = time.monotonic() + WORKER_SECONDS
    while True:  # until the worker is in a trial
        assert worker.poll() is None, study_workers.output(worker)[-3000:]
        assert time.monotonic() < deadline
        try:
            study = optuna.load_study(study_name=study_workers.study, storage=study_workers.storage)
            if study.get_trials(states=(TrialState.RUNNING,)):
                break
        except KeyError:  # the study is not created yet
            pass
        time.sleep(0.3)
    postgres.stop()
    try:  # away until the worker meets it (a trial's end, an ask), however long its trial takes
        wait_for(lambda: "waiting for it up to" in study_workers.output(worker), "the outage seen")
    finally:
        postgres.start()
    (out,) = study_workers.wait([worker])

    assert "database unreachable at this worker's next call (" in out, out[-3000:]
    assert re.search(r"^database back \d+s later$", out, re.M), out[-3000:]
    assert "Traceback" not in out, out[-3000:]  # nor a heartbeat thread's
    assert "failed with parameters" not in out, out[-3000:]  # Optuna's, when a report met it
    study, runs, _ = check_study(study_workers, trials=2, parents=1)
    failed = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    assert len(failed) <= 1  # the trial in flight, queued again
    if failed:
        assert f"trial {failed[0].number} is lost and will be queued again" in out
        assert any(retries.retry_history(t) == [failed[0].number] for t in study.get_trials())
        if failed[0].number in runs:  # lost after its run started
            lost = runs[failed[0].number]
            assert lost.info.status == "FAILED"
            # the driver's reason, not Optuna's "invalid data in the commit" (probe)
            reason = lost.data.tags[tracking.ERROR_TAG]
            assert reason.startswith("database error: (psycopg") and "invalid data" not in reason
    else:  # its call waited the database out and went on: nothing lost, nothing said lost
        assert " is lost " not in out and "retried as trial" not in out, out[-3000:]


@pytest.mark.filterwarnings(
    "ignore:Heartbeat of storage", "ignore::optuna.exceptions.ExperimentalWarning"
)
def test_a_heartbeat_outlives_a_database_restart(postgres, caplog):
    """Optuna's heartbeat thread ends at its first error (its trial then looks lost to the other
    workers); on this storage a missed heartbeat is one logged line and the thread beats on."""
    storage = storage_module.SteadyHeartbeatStorage(
        postgres.create_database("heartbeat"),
        engine_kwargs={"pool_pre_ping": True},  # as the sweep opens it
        heartbeat_interval=1,
        grace_period=3,
    )
    study = optuna.create_study(storage=storage, study_name="heartbeat")
    trial_id = study.ask()._trial_id
    beating = HeartbeatThread(trial_id, storage)
    with caplog.at_level("WARNING", logger="sweep"):
        beating.start()
        time.sleep(0.5)  # its first heartbeat recorded: the trial has a heartbeat to go stale
        postgres.stop()
        try:
            time.sleep(2.5)  # two heartbeats missed
        finally:
            postgres.start()
        deadline = time.monotonic() + 20  # a heartbeat with the database back (a slow
        while storage._get_stale_trial_ids(study._study_id) and time.monotonic() < deadline:
            time.sleep(0.25)  # machine's restart is not the thread's fault)
        alive = beating._thread.is_alive()
        beating.join()
    assert alive
    missed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("heartbeat")]
    assert missed and all(
        m.startswith("heartbeat not recorded, database unreachable: ") for m in missed
    )
    # Its last heartbeat is from after the restart: within the grace period, the trial is not
    # lost (a thread that ended at the outage last beat more than 5 s ago).
    assert storage._get_stale_trial_ids(study._study_id) == []


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # ask() by hand
def test_a_waiting_worker_looks_without_the_study_lock(postgres, mlflow_server, monkeypatch):
    """A worker whose budget another's running trial holds looks every few seconds at the running
    trials without the study lock (64 waiting workers would queue on it, the finishing ones
    behind them), takes the lock once that trial ends, and stops a poll later."""
    url = postgres.create_database("waiting")
    study, _ = workers.open_study(
        "waiting", url, directions=["minimize"], pruner=optuna.pruners.NopPruner()
    )
    other = study.ask()  # another worker's trial: it holds the budget of 1
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_server.url)
    try:
        worker = workers.Worker(study, url, tracking.use_experiment("waiting"))
        looks: list[float] = []  # when the worker took the study lock
        acquire = worker.lock.acquire
        monkeypatch.setattr(
            worker.lock, "acquire", lambda: looks.append(time.monotonic()) or acquire()
        )
        waiting = threading.Thread(target=worker.optimize, args=(lambda trial: 0.0, 1))
        waiting.start()
        time.sleep(4 * WAIT_POLL_SECONDS)  # four polls, within a heartbeat (60 s)
        study.tell(other, 0.0)
        told = time.monotonic()
        waiting.join(timeout=30)  # a poll later, not a heartbeat's 60 s (no timing asserted:
    finally:  # a loaded machine; review)
        mlflow.set_tracking_uri(before)
    assert not waiting.is_alive()
    assert len(looks) == 2, looks  # the budget taken; then the budget done, after the trial ended
    assert looks[1] > told  # the second look, after the trial ended
    assert worker.ran == 0


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # ask() by hand
def test_a_waiting_worker_stops_once_its_database_stays_away(
    postgres, mlflow_server, monkeypatch, capsys
):
    """A worker with no trial in flight said "database back" at its next try, before the
    database answered, and so waited for it for ever (probe): it stops after the wait, and says
    the database back only where it answered."""
    url = postgres.create_database("stays-away")
    study, _ = workers.open_study(
        "stays-away", url, directions=["minimize"], pruner=optuna.pruners.NopPruner()
    )
    study.ask()  # another worker's trial: it holds the budget of 1, this worker waits
    monkeypatch.setattr(workers, "RECONNECT_SECONDS", 3.0)
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_server.url)
    ended: list[BaseException] = []
    try:
        worker = workers.Worker(study, url, tracking.use_experiment("stays-away"))

        def wait() -> None:
            try:
                worker.optimize(lambda trial: 0.0, 1)
            except Exception as err:  # noqa: BLE001 - what stopped it is the test's
                ended.append(err)

        waiting = threading.Thread(target=wait)
        waiting.start()
        wait_for(lambda: "waiting: 0 of 1" in capsys.readouterr().out, "the worker waiting")
        postgres.stop()
        try:
            waiting.join(timeout=60)
        finally:
            postgres.start()
    finally:
        mlflow.set_tracking_uri(before)
    assert not waiting.is_alive()
    (err,) = ended
    assert isinstance(err, workers.StorageUnavailable)
    assert str(err).startswith("the study's database did not answer for 3s (")
    said = capsys.readouterr()
    assert "database back" not in said.out and said.err.count("database unreachable") == 1


def run_worker(
    study: optuna.Study, url: str, tracking_uri: str, trials: int, heartbeat: int, seconds: float
) -> threading.Thread:
    """A worker of ``study`` (its experiment in ``tracking_uri``) running trials of value 0 in a
    thread until the study has ``trials`` finished ones, waited for up to ``seconds``: the
    thread, alive if it still waits."""
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        experiment = tracking.use_experiment(study.study_name)
        worker = workers.Worker(study, url, experiment, heartbeat=heartbeat)
        running = threading.Thread(target=worker.optimize, args=(lambda trial: 0.0, trials))
        running.start()
        running.join(timeout=seconds)
    finally:
        mlflow.set_tracking_uri(before)
    return running


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
def test_a_database_gone_inside_ask_costs_that_trial_not_the_study(
    postgres, mlflow_server, monkeypatch
):
    """The database stopped after Optuna's ``ask`` made a trial RUNNING, before the trial was
    the worker's (no heartbeat, no worker): it stayed RUNNING, and the worker, its other trial
    done, waited on it for ever (review). It is failed and queued again once the database
    answers, and the study ends with its trials."""
    url = postgres.create_database("gone-in-ask")
    study, _ = workers.open_study(
        "gone-in-ask", url, directions=["minimize"], pruner=optuna.pruners.NopPruner()
    )
    storage = study._storage
    create = storage.create_new_trial
    restarted: list[threading.Thread] = []

    def create_then_stop(*args, **kwargs):  # the real trial made, then the real database gone
        trial_id = create(*args, **kwargs)
        if not restarted:
            postgres.stop()
            restarted.append(threading.Thread(target=lambda: (time.sleep(3), postgres.start())))
            restarted[0].start()
        return trial_id

    monkeypatch.setattr(storage, "create_new_trial", create_then_stop)
    try:
        running = run_worker(study, url, mlflow_server.url, trials=2, heartbeat=60, seconds=120)
    finally:
        for thread in restarted:
            thread.join()
    assert not running.is_alive(), "the worker waits on the trial its ask left RUNNING"
    trials = optuna.load_study(study_name="gone-in-ask", storage=url).get_trials()
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == 2 and TrialState.RUNNING not in states, states
    assert [t.number for t in trials if t.state == TrialState.FAIL] == [0]
    assert any(retries.retry_history(t) == [0] for t in trials)  # queued again, and run


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # ask() by hand
def test_a_trial_left_in_ask_by_a_dead_worker_goes_stale_and_runs_again(
    tmp_path, monkeypatch, capsys
) -> None:
    """A worker gone between Optuna's ask and its trial (killed, interrupted, or stopped by an
    outage longer than its wait) left a RUNNING trial with no heartbeat and no worker, which no
    look found stale: every worker waited on it for ever (review). Its first heartbeat is
    recorded as it is asked: it goes stale, is failed and queued again."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study, _ = workers.open_study(
        "left", url, directions=["minimize"], pruner=optuna.pruners.NopPruner(), heartbeat=1
    )
    study.ask()  # a worker that stops here: no worker recorded, no heartbeat thread
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    running = run_worker(study, url, tracking_uri, trials=1, heartbeat=1, seconds=60)
    assert not running.is_alive(), "the worker waits on the trial left in ask"
    states = [t.state for t in optuna.load_study(study_name="left", storage=url).get_trials()]
    assert states == [TrialState.FAIL, TrialState.COMPLETE], states
    said = capsys.readouterr().out
    assert "trial 0 stopped beating, its worker not recorded (killed, frozen or" in said, said


def test_a_finished_study_opens_whatever_heartbeat_is_given(tmp_path) -> None:
    """No trial is left to beat for: a rerun's other --heartbeat was refused on the full path
    while the replayed closing printed without the check (review). With trials left, refused."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    opened = dict(directions=["minimize"], pruner=optuna.pruners.NopPruner(), target=1)
    study, _ = workers.open_study("done", url, heartbeat=10, **opened)
    study.tell(study.ask(), 0.5)
    again, _ = workers.open_study("done", url, heartbeat=30, **opened)  # finished: goes on
    assert identity.study_heartbeat(again) == 10  # the study's own, unchanged
    with pytest.raises(ValueError, match="beat every 10 s, this one every 30 s"):
        workers.open_study("done", url, heartbeat=30, **{**opened, "target": 2})


def test_a_database_whose_connections_are_taken_is_said_so(postgres) -> None:
    """PostgreSQL refusing a connection for its limit read as the database down (its workers
    waited and tried again for ever, probe): the refusal says the fix."""
    postgres.sql("CREATE ROLE crowded LOGIN CONNECTION LIMIT 0")
    postgres.sql("CREATE DATABASE crowded OWNER crowded")
    url = f"postgresql://crowded@127.0.0.1:{postgres.port}/crowded"
    with pytest.raises(workers.StorageUnavailable) as refused:
        workers.open_study(
            "crowded", url, directions=["minimize"], pruner=optuna.pruners.NopPruner()
        )
    said = str(refused.value)
    assert said.startswith(f"--storage {url}: cannot open the study: (psycopg")
    assert 'too many connections for role "crowded"' in said
    assert said.endswith(  # the role's own limit, not the server's (review)
        "; the role 'crowded' has all its connections: raise its limit (ALTER ROLE \"crowded\" "
        "CONNECTION LIMIT ...), or run fewer workers"
    )
    # the server's slots, as PostgreSQL refuses a worker when they are taken (probe)
    refused = "FATAL:  remaining connection slots are reserved for roles with the SUPERUSER"
    assert storage_module.full(RuntimeError(refused)).startswith(
        "; its connections are all taken: raise max_connections in postgresql.conf"
    )
    assert storage_module.full(RuntimeError("connection refused")) == ""


def test_a_trial_the_tracking_store_failed_is_not_finished_until_queued_again() -> None:
    """Optuna fails the trial before its worker's callback queues it again: another worker that
    looked between the two counted it finished and could end with the study unfinished
    (review). It counts once its retries are spent, as queue_again then leaves it."""
    study = optuna.create_study()
    trial = study.ask()
    trial.set_user_attr(retries.STORE_FAILED_ATTR, "the tracking store did not answer")
    study.tell(trial, state=TrialState.FAIL)
    assert retries.finished_count(study.get_trials()) == 0  # about to be queued again
    retries.queue_again(study, study.trials[0])
    assert retries.finished_count(study.get_trials()) == 0  # queued: its retry will count
    spent = optuna.create_study()
    failed = spent.ask()
    failed.set_user_attr(retries.STORE_FAILED_ATTR, "the tracking store did not answer")
    spent._storage.set_trial_system_attr(  # as Optuna's retry callback records its history
        failed._trial_id, "retry_history", list(range(10, 10 + retries.MAX_RETRY))
    )
    spent.tell(failed, state=TrialState.FAIL)
    assert retries.finished_count(spent.get_trials()) == 1  # not queued again: it counts
    diverged = spent.ask()
    spent.tell(diverged, state=TrialState.FAIL)  # a failure of its own: counts
    assert retries.finished_count(spent.get_trials()) == 2


def test_the_slurm_script_warns_of_connections_its_array_would_not_get(postgres, tmp_path):
    """scripts/slurm_sweep.sh's first task compares the tasks' connections with what the study's
    PostgreSQL gives a worker: max_connections less the slots reserved for superusers (which
    refuse a worker: probe), and those in use now. Run as Slurm would, the sweep asked --help."""
    url = postgres.create_database("slurm")
    script = REPO / "scripts" / "slurm_sweep.sh"
    said = {}
    for tasks in (8, 64):
        env = {
            **os.environ,
            "DATA": str(tmp_path),
            "STORAGE": url,
            "SLURM_ARRAY_TASK_ID": "1",
            "SLURM_ARRAY_TASK_MIN": "1",
            "SLURM_ARRAY_TASK_COUNT": str(tasks),
            "SLURM_SUBMIT_DIR": str(REPO),
        }
        done = subprocess.run(
            ["bash", str(script), "--help"], env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0 and "--storage" in done.stdout, done.stderr
        said[tasks] = done.stderr
    assert "warning" not in said[8]  # 3 * 8 + 20 of the fixture's 200
    warned = re.search(
        r"allows (\d+) connections to workers \(max_connections 200, (\d+) reserved\)", said[64]
    )
    assert warned and int(warned[1]) == 200 - int(warned[2]) and int(warned[2]) >= 3, said[64]
    assert "64 workers need about 212 (README, Sizing)" in said[64]


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")  # not printed
def test_a_ctrl_c_dropped_in_a_trial_stops_the_worker_after_it(postgres, mlflow_server):
    """A Ctrl-C that lands in a finalizer during a trial (Python drops it there) still stops the
    worker, without a printed traceback: that trial is kept, no other starts."""
    url = postgres.create_database("dropped-ctrl-c")
    study, _ = workers.open_study(
        "dropped-ctrl-c", url, directions=["minimize"], pruner=optuna.pruners.NopPruner()
    )

    def objective(trial: optuna.Trial) -> float:
        CtrlCInAFinalizer()
        return float(trial.number)

    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_server.url)
    try:
        worker = workers.Worker(study, url, tracking.use_experiment("dropped-ctrl-c"))
        with pytest.raises(KeyboardInterrupt):
            worker.optimize(objective, 3)
    finally:
        mlflow.set_tracking_uri(before)
    assert worker.ran == 1
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE]


def test_a_frozen_worker_found_lost_comes_back_with_an_open_parent(study_workers):
    """A worker frozen in a trial (SIGSTOP: a suspended laptop, a partitioned machine) past its
    heartbeat's grace: the other worker says it found the trial lost, queues it again, closes
    its runs. Unfrozen, the worker drops its result and goes on: its parent run, closed as lost,
    is open again and ends FINISHED without the loss in its error tag (it ended FINISHED with
    'worker lost in trial N' there, and the other worker said nothing)."""
    started = study_workers.start(2, trials=3)
    victim, frozen = freeze_in_trial(study_workers, started, between_writes=True)
    survivor = next(w for w in started if w is not victim)
    client = MlflowClient(study_workers.tracking_uri)
    parent = frozen.data.tags["mlflow.parentRunId"]
    try:
        closed = lambda: client.get_run(parent).info.status == "FAILED"  # noqa: E731
        wait_for(closed, "the frozen worker's parent run closed by the other worker")
        assert tracking.ERROR_TAG in client.get_run(parent).data.tags
    finally:
        os.kill(victim.pid, signal.SIGCONT)
    came_back, went_on = study_workers.wait([victim, survivor])
    number = int(frozen.data.tags[tracking.TRIAL_TAG])
    worker = f"{socket.gethostname()}:{victim.pid}"
    assert f"trial {number}'s worker {worker} stopped beating (killed, frozen or cut off)" in (
        went_on
    )
    said = [line for line in came_back.splitlines() if "its parent run is open again" in line]
    assert said and f"worker lost in trial {number}" in said[0], came_back
    _, runs, parents = check_study(study_workers, trials=3, parents=2)
    assert parents[parent].info.status == "FINISHED"
    assert tracking.ERROR_TAG not in parents[parent].data.tags
    assert runs[number].info.status == "FAILED"  # the trial itself was lost: its run says so
    assert all(p.info.status == "FINISHED" for p in parents.values())


def _owner(client: MlflowClient, run) -> str:
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    return parent.data.tags.get(tracking.WORKER_TAG, "")


def wait_for(condition, what: str, seconds: float = WORKER_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.3)


def test_a_worker_whose_trial_was_taken_over_drops_it_and_goes_on(study_workers):
    """Another worker found A's trial lost (its heartbeat silent past the grace: a frozen or
    partitioned machine), failed it and queued it again, as Optuna's stale-trial check does; A,
    going on, crashed telling its result ('Cannot tell a FAIL trial', exit 2). It now says so in
    one line, closes the trial's run and goes on: it runs the retry itself."""
    (a,) = study_workers.start(1, trials=2)
    client = MlflowClient(study_workers.tracking_uri)

    def take_over() -> FrozenTrial | None:  # A's trial, once its run is made, failed and requeued
        try:
            runs = trial_runs(client, study_workers.study)
            study = optuna.load_study(study_name=study_workers.study, storage=study_workers.storage)
        except Exception:  # no experiment or study yet
            return None
        training = {
            int(r.data.tags[tracking.TRIAL_TAG])
            for r in runs
            if r.data.tags[tracking.ROLE_TAG] == "trial" and r.info.status == "RUNNING"
        }
        for trial in study.get_trials(states=(TrialState.RUNNING,)):
            if trial.number in training:
                try:
                    study.tell(trial.number, state=TrialState.FAIL)  # as the other's check does
                except ValueError:  # it ended meanwhile: the next one
                    return None
                retries.retry_callback()(study, study.get_trials()[trial.number])
                return trial
        return None

    taken: list[FrozenTrial] = []
    wait_for(lambda: taken.append(take_over()) or taken[-1] is not None, "A in its trial")
    running = taken[-1]
    (output,) = study_workers.wait([a])
    said = [line for line in output.splitlines() if "found lost by another worker" in line]
    assert len(said) == 1 and "Traceback" not in output and "Cannot tell" not in output, output
    study, runs, _ = check_study(study_workers, trials=2, parents=1)
    assert runs[running.number].info.status == "FAILED"
    assert runs[running.number].data.tags[tracking.ERROR_TAG] == said[0]
    retry = next(t for t in study.get_trials() if retries.retry_history(t) == [running.number])
    assert retry.state == TrialState.COMPLETE and retry.params == running.params


def test_a_worker_killed_between_trials_leaves_no_running_parent(study_workers):
    """B waits for A's trial (the budget is taken), is SIGKILLed while waiting, between trials:
    the next worker that looks (A, as its trial ends) closes B's parent run as FAILED."""
    slow = 60  # heartbeat: A, frozen meanwhile, is not declared lost
    (a,) = study_workers.start(1, trials=1, heartbeat=slow)
    # frozen once its trial's run is open (past the study lock, which it holds from asking
    # until the trial is its own: frozen when Optuna's trial was merely RUNNING, it held the
    # lock and B never came to wait, in CI) and outside a transaction
    a, _ = freeze_in_trial(study_workers, [a], between_writes=True)
    try:
        (b,) = study_workers.start(1, trials=1, heartbeat=slow)
        wait_for(lambda: "waiting: 0 of 1 trials finished" in study_workers.output(b), "B waits")
        # no trial header above its waiting lines: B ran no trial (probe M)
        assert console.TRIAL_HEADER not in study_workers.output(b)
        os.kill(b.pid, signal.SIGKILL)
        b.wait()
    finally:
        os.kill(a.pid, signal.SIGCONT)
    study_workers.wait([a])
    _, _, parents = check_study(study_workers, trials=1, parents=2)  # no RUNNING run
    dead = next(
        p for p in parents.values() if p.data.tags[tracking.WORKER_TAG].endswith(f":{b.pid}")
    )
    assert dead.info.status == "FAILED"
    assert dead.data.tags[tracking.ERROR_TAG].endswith(
        "ended between trials, its run left open (its process is gone)"
    )


def test_a_tracking_server_outage_costs_no_worker(study_workers, postgres, mlflow_server):
    """One outage of the tracking server, two workers on two studies (one worker run for both
    cases: each start costs seconds of imports).

    - With MLflow's retries (the default), the client backs off and the worker rides out a
      restart of the server: nothing fails.
    - Without them (as when the server stays away past them), a call that finds no server fails
      the trial in flight with one line and queues it again; the worker pauses, goes on once the
      server is back, and the study ends with its total of real trials, nothing left RUNNING.
    """
    riding = study_workers
    name = f"{riding.study}-no-retries"
    storage = with_password(postgres.create_database(name))
    failing = Workers(riding.workspace, storage, mlflow_server.url, name)
    try:
        (rider,) = riding.start(1, trials=5)  # more trials: still in them when the server stops
        (worker,) = failing.start(
            1, trials=5, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="5"
        )  # as the rider: with 3, a loaded machine ran them all before the server stopped

        wait_for(
            lambda: a_trial_run_finished(failing) and a_trial_run_finished(riding),
            "a finished trial in each study",
        )
        stopped_at = time.time()
        mlflow_server.stop()
        try:
            # said as it fails; Optuna fails it once the worker has waited for the server (a poll
            # of Optuna's state, a new engine each, filled PostgreSQL's connections meanwhile)
            said = "failed: the tracking store did not answer"
            wait_for(
                lambda: said in failing.output(worker), "a trial failed while the server is away"
            )
        finally:
            mlflow_server.start()
        (rode,) = riding.wait([rider])
        (out,) = failing.wait([worker])
    finally:
        failing.close()

    # urllib3's retry lines are --verbose's (five a call on the quiet console: probe CC)
    assert "Retrying" not in rode and "Traceback" not in rode, rode[-3000:]
    # MLflow retries a call that finds no server, not a reply cut off as the server stops: that
    # one trial may fail, said in one line, and be queued again (a race of the test's stop)
    failures = [line for line in rode.splitlines() if "failed" in line]
    assert len(failures) <= 1, failures
    assert all("failed: the tracking store did not answer" in line for line in failures), failures
    assert ("queued again" in rode) == bool(failures), rode[-3000:]
    (parent,) = check_study(riding, trials=5, parents=1)[2].values()
    assert parent.info.end_time / 1000 > stopped_at  # it did meet the outage, and rode it out

    assert "failed: the tracking store did not answer" in out, out[-3000:]
    assert "queued again" in out
    said = [line.split()[0] for line in out.splitlines() if re.match(r"#\d+ ", line)]
    assert len(said) == len(set(said)), out[-3000:]  # one line a trial: not figures, then failed
    assert "Traceback" not in out, out
    study, runs, parents = check_study(failing, trials=5, parents=1)
    trials = study.get_trials()
    failed = [t.number for t in trials if t.state == TrialState.FAIL]
    # the worker waits for the server before its next trial: a restart slower than its pauses
    # (5 + 10 + 20 s) had failed a trial four times, the last not queued again (review)
    assert 1 <= len(failed) <= 2, failed
    assert set(failed) <= retries.retried_numbers(trials)  # each queued again: 5 real trials
    for number in set(failed) & set(runs):  # a run its worker could not end, closed later
        error = runs[number].data.tags.get(tracking.ERROR_TAG, "")
        assert not error.startswith("worker lost"), error  # its worker lived throughout
    (parent,) = parents.values()  # the live worker's own run: never closed as a lost one's
    assert parent.info.status == "FINISHED" and tracking.ERROR_TAG not in parent.data.tags


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # ask() by hand
def test_the_top_seeds_next_worker_samples_with_seed_0(tmp_path):
    """Worker k samples with seed + k, wrapped into NumPy's 0..2**32-1: at ``--seed 4294967295``
    the second worker to join samples as a study seeded 0 does (unwrapped, its first
    suggestion failed: NumPy takes no seed of 2**32)."""
    url = f"sqlite:///{tmp_path / 'top.db'}"
    first = []
    for joined in (0, 1):
        study, k = workers.open_study(
            "top", url, directions=["minimize"], pruner=optuna.pruners.NopPruner(), seed=2**32 - 1
        )
        assert k == joined
        first.append(study.ask().suggest_float("x", 0.0, 1.0))
    fresh = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    assert first[1] == fresh.ask().suggest_float("x", 0.0, 1.0)
    assert first[0] != first[1]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # ask() by hand
def test_a_trial_the_tracking_store_failed_is_closed_as_such(
    tmp_path, monkeypatch, capsys, request
):
    """A live worker's trial whose run could not be ended (the tracking store away) is closed
    later, saying the store failed it, not "worker lost": its worker's own parent run stays
    open (it was ended as FAILED with that tag, a live worker's). A trial lost more often than
    it is retried says it is given up, not silently."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/optuna.db"
    study, _ = workers.open_study(
        "outage", url, directions=["minimize"], pruner=optuna.pruners.NopPruner()
    )
    before = mlflow.get_tracking_uri()
    request.addfinalizer(lambda: mlflow.set_tracking_uri(before))
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = tracking.use_experiment("outage")
    client = MlflowClient()
    tags = {tracking.STUDY_TAG: "outage"}
    parent = client.create_run(experiment, tags={**tags, tracking.ROLE_TAG: "study"}).info.run_id
    trial = study.ask()
    trial.set_user_attr(retries.STORE_FAILED_ATTR, "API request to http://127.0.0.1:1 failed")
    study.tell(trial, state=TrialState.FAIL)
    trial_tags = {**tags, tracking.ROLE_TAG: "trial", tracking.TRIAL_TAG: str(trial.number)}
    run = client.create_run(experiment, tags={**trial_tags, tracking.PARENT_TAG: parent})
    worker = workers.Worker(study, url, experiment, parent_run_id=parent)
    worker.close_lost_runs(force=True)
    closed = client.get_run(run.info.run_id)
    assert closed.info.status == "FAILED"
    # named so: killed after it logged its figures, it read as a second row of its retry's in
    # the view sorted by dev ACER (probe CC)
    assert closed.info.run_name == f"{run.info.run_name} (lost)"
    assert closed.data.tags["mlflow.runName"] == closed.info.run_name
    assert closed.data.tags[tracking.ERROR_TAG] == (
        "the tracking store did not answer in trial 0 (API request to http://127.0.0.1:1 failed)"
    )
    assert client.get_run(parent).info.status == "RUNNING"  # its worker lives: it ends it
    frozen = study.get_trials()[trial.number]
    for _ in range(retries.MAX_RETRY):  # queued again and lost again, as often as allowed
        retries.queue_again(study, frozen)
        study.tell(study.ask().number, state=TrialState.FAIL)
        frozen = study.get_trials()[-1]
    capsys.readouterr()
    retries.queue_again(study, frozen)
    assert capsys.readouterr().out.splitlines() == [
        f"trial {frozen.number} is not queued again: its parameters were tried "
        f"{retries.MAX_RETRY + 1} times (trials 0, 1, 2, 3); they count as one failed trial"
    ]


def test_a_long_trial_just_ended_is_no_silence(tmp_path, monkeypatch, request):
    """A worker says it lives at each trial's start and end: when a trial longer than the grace
    ends, its run ends a moment before the worker says so, and a peer looking then closed the
    live worker's parent as 'silent ... lost' (found by a review). The parent's latest trial
    ended within the grace: alive; ended before it: closed, as before."""
    from experiments.stores import liveness

    monkeypatch.chdir(tmp_path)
    before = mlflow.get_tracking_uri()
    request.addfinalizer(lambda: mlflow.set_tracking_uri(before))
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = tracking.use_experiment("long")
    client = MlflowClient()
    now = time.time()
    parents = {}
    for name, ended in (("just", now - 5), ("long ago", now - 500)):
        tags = {tracking.STUDY_TAG: "long", tracking.ROLE_TAG: "study"}
        tags |= {tracking.WORKER_TAG: f"elsewhere:{len(parents) + 1}"}
        tags |= {liveness.LAST_SEEN_TAG: f"{now - 900:.0f}"}  # said it lived at its trial's start
        parent = client.create_run(experiment, tags=tags).info.run_id
        client.log_param(parent, "heartbeat", "60")  # lost after 180 s of silence
        trial = client.create_run(experiment, tags={tracking.PARENT_TAG: parent}).info.run_id
        client.set_terminated(trial, "FINISHED", end_time=int(ended * 1000))
        parents[name] = parent
    closed = liveness.close_dead_parents(experiment, "long")
    assert list(closed) == [parents["long ago"]]
    assert client.get_run(parents["just"]).info.status == "RUNNING"
    assert re.fullmatch(
        r"worker elsewhere:2 silent for 9\d\ds between trials: lost", closed[parents["long ago"]]
    )
