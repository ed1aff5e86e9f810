"""The scale simulation at a small size: 8 simulated workers on one study, on a real PostgreSQL
and a real ``mlflow server`` on loopback (``tests/conftest.py``, shared with test_workers.py).

``bench/scale.py --storage ... --tracking-uri ...`` forks the workers (each one what
``experiments/sweep.py`` does around its trials, with training replaced by a short sleep: the
same Optuna and MLflow calls) and this test reads the stores afterwards: the study's total, one
FINISHED run per complete trial (a pruned one KILLED), one FINISHED parent run per worker, and
nothing left RUNNING or WAITING.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from bench.scale import space_profile
from experiments.stores import retries, tracking

REPO = Path(__file__).resolve().parents[1]
WORKERS, PER_WORKER = 8, 2
STUDY = "scale-small"


def test_eight_simulated_workers_leave_a_truthful_study(postgres, mlflow_server, tmp_path):
    storage = postgres.create_database(STUDY)
    figures, profile = tmp_path / "figures.json", tmp_path / "profile.json"
    profile.write_text(json.dumps(space_profile()))  # the search space, from this process
    command = [sys.executable, str(REPO / "bench" / "scale.py"), "--workers", str(WORKERS)]
    command += ["--trials-per-worker", str(PER_WORKER), "--seconds", "400", "--heartbeat", "2"]
    command += ["--gpu-factor", "50", "--clips", "200", "--heads", "lstm30"]
    command += ["--study", STUDY, "--storage", storage]
    command += [
        "--tracking-uri",
        mlflow_server.url,
        "--json",
        str(figures),
        "--profile",
        str(profile),
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    phase = json.loads(figures.read_text())["given"][str(WORKERS)]
    assert phase["failed"] == [] and phase["killed"] == 0, phase["failed"]

    trials = optuna.load_study(study_name=STUDY, storage=storage).get_trials()
    assert retries.finished_count(trials) == WORKERS * PER_WORKER
    assert [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)] == []
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}

    client = MlflowClient(mlflow_server.url)
    experiment = client.get_experiment_by_name(STUDY)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert [r.info.run_id for r in runs if r.info.status == "RUNNING"] == []
    parents = [r for r in runs if r.data.tags[tracking.ROLE_TAG] == "study"]
    assert len(parents) == WORKERS and {p.info.status for p in parents} == {"FINISHED"}
    children = [r for r in runs if r.data.tags[tracking.ROLE_TAG] == "trial"]
    per_trial = Counter(int(r.data.tags[tracking.TRIAL_TAG]) for r in children)
    assert set(per_trial.values()) == {1}  # one run per trial, never two
    status = {int(r.data.tags[tracking.TRIAL_TAG]): r.info.status for r in children}
    expected = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED"}
    assert status == {t.number: expected[t.state] for t in trials}
    ids = {p.info.run_id for p in parents}
    assert all(r.data.tags[tracking.PARENT_TAG] in ids for r in children)
