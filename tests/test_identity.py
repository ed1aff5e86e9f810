"""What one study is fixed to (experiments.stores.identity), on real Optuna studies: its
objectives always, what its figures depend on once recorded, re-recorded only while no trial
of it has a figure."""

from __future__ import annotations

import optuna
import pytest

from experiments.stores.identity import IDENTITY_ATTR, check_heartbeat, check_identity

FIRST = {"--repeats": "1", "clips (--protocol, --fold, --split-seed)": "a1"}
OTHER = {"--repeats": "1", "clips (--protocol, --fold, --split-seed)": "a1,a2"}  # every fold


def study(tmp_path, name: str = "s", directions=("minimize",)) -> optuna.Study:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    return optuna.create_study(study_name=name, storage=storage, directions=list(directions))


def add(study: optuna.Study, state: optuna.trial.TrialState) -> None:
    trial = study.ask()
    if state == optuna.trial.TrialState.COMPLETE:
        study.tell(trial, 0.25)
    elif state == optuna.trial.TrialState.FAIL:
        study.tell(trial, state=state)


def test_recorded_when_made_and_again_while_no_trial_has_a_figure(tmp_path) -> None:
    made = study(tmp_path)
    check_identity(made, FIRST, ["minimize"])
    assert made.user_attrs[IDENTITY_ATTR] == FIRST
    add(made, optuna.trial.TrialState.FAIL)  # a first run that failed: its flags may be fixed
    check_identity(made, OTHER, ["minimize"])
    assert made.user_attrs[IDENTITY_ATTR] == OTHER
    add(made, optuna.trial.TrialState.COMPLETE)
    check_identity(made, OTHER, ["minimize"])  # the same: goes on
    with pytest.raises(ValueError) as refused:
        check_identity(made, FIRST, ["minimize"])
    assert str(refused.value) == (
        "study s was run with clips (--protocol, --fold, --split-seed) a1,a2; this run's is a1: "
        "rerun with the study's flags, or start another study with --study"
    )


def test_a_running_trial_of_another_worker_fixes_the_record(tmp_path) -> None:
    made = study(tmp_path)
    check_identity(made, FIRST, ["minimize"])
    add(made, optuna.trial.TrialState.RUNNING)  # a worker's first trial, still training
    with pytest.raises(ValueError, match="was run with clips"):
        check_identity(made, OTHER, ["minimize"])


def test_a_study_made_before_the_record_is_not_checked_nor_recorded(tmp_path) -> None:
    made = study(tmp_path)
    add(made, optuna.trial.TrialState.COMPLETE)
    check_identity(made, OTHER, ["minimize"])
    assert IDENTITY_ATTR not in made.user_attrs


def test_objectives_are_checked_on_every_study(tmp_path) -> None:
    made = study(tmp_path)  # no record at all: Optuna itself loads it with either directions
    add(made, optuna.trial.TrialState.COMPLETE)
    with pytest.raises(ValueError, match="has 1 objective\\(s\\), this run asks for 2"):
        check_identity(made, {}, ["minimize", "minimize"])
    pareto = study(tmp_path, "p", ("minimize", "minimize"))
    with pytest.raises(ValueError, match="has 2 objective\\(s\\), this run asks for 1"):
        check_identity(pareto, {}, ["minimize"])


def test_a_worker_with_another_heartbeat_is_refused(tmp_path) -> None:
    """A worker with --heartbeat 5 joining workers beating every 60 s found their live trials
    lost after 15 s and failed them; each then crashed telling its result."""
    made = study(tmp_path)
    check_heartbeat(made, 60)  # the first worker's, recorded
    again = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    check_heartbeat(again, 60)
    with pytest.raises(ValueError) as refused:
        check_heartbeat(again, 5)
    assert str(refused.value) == (
        "study s's workers beat every 60 s, this one every 5 s, and would find their trials "
        "lost: rerun with --heartbeat 60"
    )
