"""What one study is fixed to (experiments.stores.identity), on real Optuna studies: its
objectives always, what its figures depend on once recorded, re-recorded only while no trial
of it has a figure and the worker that recorded it is gone."""

from __future__ import annotations

import re

import optuna
import pytest

from experiments.config import HEARTBEAT_SECONDS
from experiments.stores.identity import IDENTITY_ATTR, check_heartbeat, check_identity
from experiments.stores.workers import worker_name

FIRST = {"--repeats": "1", "clips (--protocol, --fold, --split-seed)": "a1"}
OTHER = {"--repeats": "1", "clips (--protocol, --fold, --split-seed)": "a1,a2"}  # every fold


def study(tmp_path, name: str = "s", directions=("minimize",)) -> optuna.Study:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    return optuna.create_study(study_name=name, storage=storage, directions=list(directions))


def refusal(tmp_path, name: str, recorded: dict, now: dict) -> str:
    """The refusal of ``now`` by study ``name``, made with ``recorded`` and one complete trial."""
    made = study(tmp_path, name)
    check_identity(made, recorded, ["minimize"])
    add(made, optuna.trial.TrialState.COMPLETE)
    with pytest.raises(ValueError) as refused:
        check_identity(made, now, ["minimize"])
    return str(refused.value)


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


def test_features_of_another_backend_are_said_by_it() -> None:
    """A weights file's features under JAX have an entry of their own (probe AA): said by the
    backend, either way round (TensorFlow's entries name none)."""
    from experiments.stores.identity import _features_differ
    from experiments.stores.record import FEATURES, part_differences

    tf, jax = {"weights": "sha256:00"}, {"weights": "sha256:00", "backend": "jax"}
    assert part_differences(jax, tf) == {
        "backend": "the features' KERAS_BACKEND jax; this run's tensorflow"
    }
    assert part_differences(jax, dict(jax)) == {}
    # a study whose key named none (TensorFlow's, which a JAX run shared before): no flag or
    # backend gives its features back, so it is not "rerun with the study's flags" (review)
    said = part_differences(tf, jax)
    assert said == {
        "backend": "the features' KERAS_BACKEND tensorflow (whose entry every backend shared "
        "before 2026-12-07); this run's jax"
    }
    assert str(_features_differ("s", "features", said)).endswith(
        "this version extracts other features: start another study with --study"
    )
    # a backend is no flag: said by it, with the flags beside it (probe EE)
    assert str(_features_differ("s", "features", part_differences(jax, tf))).endswith(
        "this run's tensorflow: rerun under KERAS_BACKEND=jax, or start another study with --study"
    )
    half = part_differences({**jax, "precision": "float32"}, {**tf, "precision": "bfloat16"})
    assert str(_features_differ("s", "features", half)).endswith(
        "this run's tensorflow: rerun with the study's flags under KERAS_BACKEND=jax, or start "
        "another study with --study"
    )
    drawn = part_differences(
        {"weights": "random:he_normal:0"}, {"weights": "random:he_normal:0:jax"}
    )
    assert str(_features_differ("s", FEATURES, drawn)) == (
        "study s was run with other features: the random backbone drawn by "
        "KERAS_BACKEND=tensorflow; this run's by jax: rerun under KERAS_BACKEND=tensorflow, or "
        "start another study with --study"
    )


def test_clips_split_with_another_seed_are_said_by_the_flag(tmp_path) -> None:
    """--split-seed 1 on a study of clips carved with 0 was refused naming two hashes of clips
    (probe Y); a seed that changes no clip (the data gives its splits) is no reason at all."""
    from experiments.stores.record import SPLIT_SEED, differences

    made = study(tmp_path)
    check_identity(made, {**FIRST, SPLIT_SEED: "0"}, ["minimize"])
    add(made, optuna.trial.TrialState.COMPLETE)
    check_identity(made, {**FIRST, SPLIT_SEED: "1"}, ["minimize"])  # the same clips: goes on
    with pytest.raises(ValueError) as refused:
        check_identity(made, {**OTHER, SPLIT_SEED: "1"}, ["minimize"])
    assert str(refused.value) == (
        "study s split its clips by subject with --split-seed 0; this run's 1: rerun with the "
        "study's flags, or start another study with --study"
    )
    with pytest.raises(ValueError, match="with clips .* a1; this run's is a1,a2"):
        check_identity(made, {**OTHER, SPLIT_SEED: "0"}, ["minimize"])  # other clips, same seed
    tested = "test clips (--test-data, --test-protocol, --target-clips)"  # drawn by it too
    said = differences(
        {**FIRST, SPLIT_SEED: "0", tested: "t1:test"}, {**OTHER, SPLIT_SEED: "1", tested: "t2:test"}
    )
    assert said == ["--split-seed 0; this run's 1"]  # not the hashes it explains (review)
    # the same target taken otherwise: the flag, not "test clips ... differ" (probe BB)
    now, was = {**FIRST, tested: "t1:all but its own dev"}, {**FIRST, tested: "t1:test"}
    assert differences(was, now) == ["--target-clips test; this run's all"]  # the flag's values
    # other databases' clips too: the flag says what differs, whatever the hashes (OULU-NPU's
    # change where the flag takes it whole), its protocols so changed not said (review)
    protocols = "protocols (--protocol, --test-protocol, --db NAME=PATH:PROTOCOL)"
    p1, whole = {**was, protocols: "casia,oulu-p1"}, {**now, protocols: "casia,oulu-all"}
    assert differences(p1, {**whole, tested: "t2:all but its own dev"}) == [
        "--target-clips test; this run's all"
    ]
    assert differences(p1, {**whole, protocols: "casia,oulu-p2"}) == [
        "--target-clips test; this run's all",
        f"{protocols} casia,oulu-p1; this run's casia,oulu-p2",  # a protocol of the user's
    ]
    # a protocol of the user's beside it is said, not taken for the flag's (review)
    whole_p2 = {**whole, protocols: "casia,oulu-p2", tested: "t2:test"}
    assert differences({**whole, tested: "t1:all but its own dev"}, whole_p2) == [
        "--target-clips all; this run's test",
        f"{protocols} casia,oulu-all; this run's casia,oulu-p2",
    ]
    # a study of an OULU-NPU target whose "all" took its dev set too, rerun with test: said so
    dev_too = "--target-clips all, its own dev set too (before 2026-12-06)"
    assert differences({**whole, tested: "t1:all"}, {**p1, tested: "t2:test"}) == [
        f"{dev_too}; this run's test"
    ]
    # a target's "all" of before 2026-12-06 tested its own dev set too: no flag does it now
    old = {**FIRST, tested: "t1:all"}
    assert differences(old, now) == [
        "--target-clips all, its own dev set too (before 2026-12-06); this run's all"
    ]
    assert refusal(tmp_path, "targeted", was, now) == (
        "study targeted tested its target with --target-clips test; this run's all: rerun with "
        "the study's flags, or start another study with --study"
    )
    assert refusal(tmp_path, "before", old, now) == (
        "study before tested its target with --target-clips all, its own dev set too (before "
        "2026-12-06); this version leaves that dev set out: start another study with --study"
    )
    # the sources trained on every clip but dev: said by the flag too
    trained = "clips (--protocol, --fold, --split-seed)"
    was, now = {**FIRST, trained: "a1,b2"}, {**FIRST, trained: "a1:all,b2:all"}
    assert differences(was, now) == ["--source-clips train; this run's all"]
    assert differences(was, {**FIRST, trained: "a1:all,c3:all"}) == [  # whatever the hashes
        "--source-clips train; this run's all"
    ]
    assert refusal(tmp_path, "sourced", was, now) == (
        "study sourced trained its sources with --source-clips train; this run's all: rerun with "
        "the study's flags, or start another study with --study"
    )
    # another --split-seed too: both said, as "differs from" says both (review)
    seeded = {**now, SPLIT_SEED: "1"}
    assert refusal(tmp_path, "seeded", {**was, SPLIT_SEED: "0"}, seeded) == (
        "study seeded split its clips by subject with --split-seed 0; this run's 1, and it "
        "trained its sources with --source-clips train; this run's all: rerun with the study's "
        "flags, or start another study with --study"
    )


def test_a_study_of_folds_and_seeds_from_before_the_std_over_folds_is_refused(tmp_path) -> None:
    """Its trials' std was over every setting; this version's is over the folds, each fold's
    seeds averaged: resumed, one study's trials would hold both kinds (review). A study made
    since, or one with no figure yet, goes on."""
    from experiments.stores.record import SPREAD, SPREAD_OVER_FOLDS

    now = {**OTHER, "--repeats": "2", SPREAD: SPREAD_OVER_FOLDS}
    older = study(tmp_path, "older")
    check_identity(older, {**OTHER, "--repeats": "2"}, ["minimize"])
    add(older, optuna.trial.TrialState.COMPLETE)
    with pytest.raises(ValueError) as refused:
        check_identity(older, now, ["minimize"])
    assert str(refused.value) == (
        "study older's trials give each figure's ± std over every setting, its folds' and seeds' "
        "together; this version's is over the folds, each fold's seeds averaged: start another "
        "study with --study (their figures would be ranked together)"
    )
    # the closest study's line said such a study records the same, and resumes it (review)
    from experiments.stores.record import differences

    assert differences({**OTHER, "--repeats": "2"}, now) == [
        f"{SPREAD} over every setting; this run's {SPREAD_OVER_FOLDS}"
    ]
    made = study(tmp_path, "made")
    check_identity(made, now, ["minimize"])
    add(made, optuna.trial.TrialState.COMPLETE)
    check_identity(made, now, ["minimize"])  # the same: goes on
    # a study of no folds, or of one seed, has no such std to record: it was said to spread
    # over every setting beside an oulu-p4 --repeats 2 run (probe), and refused for it
    from experiments.stores.record import FOLDS

    folded = {**now, FOLDS: "1,2,3,4,5,6"}
    plains = ({**OTHER, FOLDS: "none", "--repeats": "2"}, {**OTHER, FOLDS: "1,2,3,4,5,6"})
    for number, plain in enumerate(plains):
        said = differences(plain, folded)
        assert said and not [line for line in said if SPREAD in line], said
        assert "over every setting" not in refusal(tmp_path, f"plain{number}", plain, folded)


def test_a_study_of_a_casia_subset_of_before_is_refused_saying_why(tmp_path) -> None:
    """Its clips' digest differs from this version's (the subsets restrict train and dev too
    now), and 'rerun with the study's flags' could not select its clips again (review)."""
    from experiments.stores.record import CASIA_EVERY_SPLIT, CASIA_SUBSETS

    older = study(tmp_path, "casia-low")
    check_identity(older, FIRST, ["minimize"])
    add(older, optuna.trial.TrialState.COMPLETE)
    same = {**FIRST, CASIA_SUBSETS: CASIA_EVERY_SPLIT}  # its clips unchanged: goes on
    check_identity(older, same, ["minimize"])
    with pytest.raises(ValueError) as refused:
        check_identity(older, {**OTHER, CASIA_SUBSETS: CASIA_EVERY_SPLIT}, ["minimize"])
    assert str(refused.value) == (
        "study casia-low trained on a casia-* subset of before 2026-12-07, which kept train and "
        "dev whole (the test split alone restricted); the subsets restrict train, dev and test "
        "alike now: start another study with --study"
    )


def test_a_study_tested_on_its_own_split_rerun_with_test_data_is_refused_saying_so(
    tmp_path,
) -> None:
    """It was refused as 'other test features: the data files differ (... cp -p ...)', before
    the extraction and after it (review): said as what it is, both ways."""
    from experiments.stores.identity import check_features
    from experiments.stores.record import FEATURES, TEST_FEATURES

    own = {**FIRST, FEATURES: "cache entry aaaaaaaaaaaa", TEST_FEATURES: "cache entry aaaaaaaaaaaa"}
    other = {**own, TEST_FEATURES: "cache entry bbbbbbbbbbbb"}
    for name, recorded, now, key in (
        ("own", own, other, "b" * 64),
        ("other", other, own, "a" * 64),
    ):
        made = study(tmp_path, name)
        check_identity(made, recorded, ["minimize"])
        add(made, optuna.trial.TrialState.COMPLETE)
        said = (
            "tested on --data's own test split; this run's --test-data"
            if recorded is own
            else "tested on --test-data; this run's --data's own test split"
        )
        expected = f"study {name} was {said}: rerun with the study's flags, or start another study"
        with pytest.raises(ValueError, match=re.escape(expected)):
            check_identity(made, now, ["minimize"])
        url = f"sqlite:///{tmp_path / 'optuna.db'}"
        with pytest.raises(ValueError, match=re.escape(expected)):
            check_features(url, name, key, part=TEST_FEATURES)


def test_a_maker_still_working_fixes_the_record_before_any_trial(tmp_path, request) -> None:
    """A worker of other flags that joined while the study's maker was still extracting or
    loading its backend (no trial started) rewrote the record and trained with its own flags;
    the maker's own command was then refused (probe: --train-precision, --seed)."""
    import socket
    import subprocess
    import sys

    working = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    request.addfinalizer(working.kill)  # a failing test leaves no sleeper (review)
    live = f"{socket.gethostname()}:{working.pid}"  # the maker, extracting
    other_host = f"{socket.gethostname()}-elsewhere:1"  # another machine's: never known gone
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    dead = f"{socket.gethostname()}:{ended.pid}"
    mine = worker_name()  # this process, whose earlier command ended
    cases = ((live, True), (other_host, True), (dead, False), (mine, False))
    for maker, refused in cases:
        made = study(tmp_path, f"s-{refused}-{maker}")
        check_identity(made, FIRST, ["minimize"], maker)
        if refused:
            with pytest.raises(ValueError, match="was run with clips"):
                check_identity(made, OTHER, ["minimize"], "joiner:2")
            assert made.user_attrs[IDENTITY_ATTR] == FIRST
            check_identity(made, FIRST, ["minimize"], "joiner:2")  # the same flags: joins
        else:  # a first run that ended before any trial: its flags may be fixed
            check_identity(made, OTHER, ["minimize"], mine)
            assert made.user_attrs[IDENTITY_ATTR] == OTHER
    # the maker gone, a rerun of its flags takes the study over: then it binds the others (a
    # worker of other flags rewrote the record while the rerun was loading its backend)
    rerun = study(tmp_path, "rerun")
    check_identity(rerun, FIRST, ["minimize"], dead)
    check_identity(rerun, FIRST, ["minimize"], live)
    with pytest.raises(ValueError, match="was run with clips"):
        check_identity(rerun, OTHER, ["minimize"], other_host)


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
    with pytest.raises(ValueError, match="has 1 objective, this run asks for 2"):
        check_identity(made, {}, ["minimize", "minimize"])
    pareto = study(tmp_path, "p", ("minimize", "minimize"))
    with pytest.raises(ValueError, match="has 2 objectives, this run asks for 1"):
        check_identity(pareto, {}, ["minimize"])


def test_the_objectives_are_named_also_on_a_study_made_before_they_were(tmp_path) -> None:
    """optuna-dashboard said "Objective 0"; named when a worker joins, under the schema lock,
    once the count is checked (a study of other objectives is not renamed)."""
    made = study(tmp_path)
    add(made, optuna.trial.TrialState.COMPLETE)
    assert made.metric_names is None  # as studies of earlier versions are
    check_identity(made, {}, ["minimize"])
    assert list(study_loaded(tmp_path, "s").trials_dataframe())[:2] == ["number", "value_dev_acer"]
    pareto = study(tmp_path, "p", ("minimize", "minimize"))
    with pytest.raises(ValueError, match="has 2 objectives"):
        check_identity(pareto, {}, ["minimize"])
    assert pareto.metric_names is None
    check_identity(pareto, {}, ["minimize", "minimize"])
    assert study_loaded(tmp_path, "p").metric_names == ["dev_acer", "params_total"]


def study_loaded(tmp_path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'optuna.db'}")


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
        "lost: rerun with --heartbeat 60 (or without --heartbeat)"
    )
    # none given: the study's (a study begun with --heartbeat 10 refused every later command
    # that left it out, saying "this one every 60 s": probe CC); a new study's: 60 s
    fast = study(tmp_path, "fast")
    assert check_heartbeat(fast, 10) == 10
    assert check_heartbeat(study_loaded(tmp_path, "fast"), None) == 10
    assert check_heartbeat(study(tmp_path, "new"), None) == HEARTBEAT_SECONDS


def test_sources_pooled_in_another_order_are_said_to_be(tmp_path) -> None:
    """A named cross-domain study made before the sources were pooled in the benchmark's order
    (--sources msu,casia) was refused with two lists of the same cache entries, and the advice
    to rerun with its flags, which now pool them in the other order (the review)."""
    from experiments.stores.record import FEATURES

    made = study(tmp_path)
    check_identity(made, {FEATURES: "cache entry bbb,aaa"}, ["minimize"])
    add(made, optuna.trial.TrialState.COMPLETE)
    with pytest.raises(ValueError) as refused:
        check_identity(made, {FEATURES: "cache entry aaa,bbb"}, ["minimize"])
    assert str(refused.value) == (
        "study s pooled its sources in another order (cache entry bbb,aaa; this run's is cache "
        "entry aaa,bbb): they are pooled in the benchmark's order now (O, C, I, M, then by name), "
        "which gives other figures: start another study with --study"
    )


def test_a_cross_domain_study_of_other_databases_names_them(tmp_path) -> None:
    """A rerun with another target or other sources was refused as 'other test features: the
    data files differ' (or two cache entries' hashes); the record names a cross-domain study's
    databases, said where its features differ and never compared on their own (a database's
    name is how its path is called)."""
    from experiments.stores.record import DATABASES, FEATURES, KEY_PARTS, TEST_FEATURES

    folders = {
        "msu": "m",
        "mymsu": "m",
        "MSU": "m",
        "casia": "c",
        "CASIA": "c",
        "replay-attack": "i",
    }
    folders["oulu"] = "o"

    def record(sources: str, target: str, trained: str, tested: str) -> dict:
        named = {"trained on": trained, "tested on": tested}
        parts = {  # each entry's data files: the folder the name stands for
            entry.removeprefix("cache entry "): {"data": folders[database]}
            for entry, database in ((sources, trained), (target, tested))
        }
        return {FEATURES: sources, TEST_FEATURES: target, DATABASES: named, KEY_PARTS: parts}

    made = study(tmp_path)
    check_identity(made, record("cache entry a1", "cache entry c1", "msu", "casia"), ["minimize"])
    add(made, optuna.trial.TrialState.COMPLETE)
    refusals = {
        ("cache entry a1", "cache entry i1", "msu", "replay-attack"): "tested on casia; this run "
        "on replay-attack",
        ("cache entry o1", "cache entry c1", "oulu", "casia"): "trained on msu; this run on oulu",
        # the same database's other files: said as before
        ("cache entry a2", "cache entry c1", "msu", "casia"): "run with features (data files, "
        "weights, frames, crop and detector, --precision) cache entry a1; this run's is cache "
        "entry a2",
        # the same folder by another name, with another option: the option is what differs
        ("cache entry a3", "cache entry c1", "mymsu", "casia"): "run with features (data files, "
        "weights, frames, crop and detector, --precision) cache entry a1; this run's is cache "
        "entry a3",
    }
    for other, said in refusals.items():
        with pytest.raises(ValueError) as refused:
            check_identity(made, record(*other), ["minimize"])
        assert str(refused.value) == (
            f"study s was {said}: rerun with the study's flags, or start another study with --study"
        )
    check_identity(made, record("cache entry a1", "cache entry c1", "MSU", "CASIA"), ["minimize"])


def test_cached_features_of_other_options_are_named_by_their_options(tmp_path) -> None:
    """A study named with --study and run with other options whose features were cached already
    (the check before extraction did not run): the refusal named two cache entries' hashes, not
    the option (probe: --precision float16 against a bfloat16 study)."""
    from experiments.stores.record import FEATURES, KEY_PARTS

    parts = {"data": "d", "precision": "bfloat16", "frames_per_clip": 2}

    def record(entry: str, **changed) -> dict:
        return {FEATURES: f"cache entry {entry}", KEY_PARTS: {entry: {**parts, **changed}}}

    made = study(tmp_path)
    check_identity(made, record("k1"), ["minimize"])
    add(made, optuna.trial.TrialState.COMPLETE)
    with pytest.raises(ValueError) as refused:
        check_identity(made, record("k2", precision="float16"), ["minimize"])
    assert str(refused.value) == (
        "study s was run with other features: --precision bfloat16; this run's float16: rerun "
        "with the study's flags, or start another study with --study"
    )


def test_a_first_run_killed_in_its_first_trial_is_taken_over(tmp_path) -> None:
    """A first run killed (SIGKILL) in its first trial left it RUNNING, which counted as a
    figure: a run of other flags was refused, where a first run stopped by Ctrl-C was taken over
    (probe: --train-precision bfloat16 after kill -9 in trial 0)."""
    import subprocess
    import sys

    from experiments.stores.retries import WORKER_ATTR, this_process

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    host, _, boot, namespace = this_process().split(":")
    dead = f"{host}:{ended.pid}"
    made = study(tmp_path)
    check_identity(made, FIRST, ["minimize"], dead)
    trial = made.ask()  # its first trial, RUNNING when the process was killed
    trial.set_user_attr(WORKER_ATTR, f"{dead}:{boot}:{namespace}")
    check_identity(made, OTHER, ["minimize"], worker_name())
    assert made.user_attrs[IDENTITY_ATTR] == OTHER
    # a live worker's running trial, or another machine's, still binds the record
    owners = (this_process(), f"{host}-elsewhere:{ended.pid}:{boot}:{namespace}")
    for number, owner in enumerate(owners):
        running = study(tmp_path, f"s{number}")
        check_identity(running, FIRST, ["minimize"], dead)
        running.ask().set_user_attr(WORKER_ATTR, owner)
        with pytest.raises(ValueError, match="was run with clips"):
            check_identity(running, OTHER, ["minimize"], worker_name())


def test_differences_name_the_flags_by_which_two_records_differ() -> None:
    """How a new default-named study differs from another (said under 'new study NAME', which
    said nothing of why the name was new): features by their cache key parts, other entries
    as recorded, hashed clips only when no features differ (which would explain them)."""
    from experiments.stores.record import FEATURES, KEY_PARTS, differences

    clips = "clips (--protocol, --fold, --split-seed)"
    parts = {"data": "d1", "frames_per_clip": 7, "face_crop": False, "detector": "x"}

    def record(entry: str, repeats: str = "1", clip: str = "c1", **changed) -> dict:
        return {
            FEATURES: f"cache entry {entry}",
            clips: clip,
            "--repeats": repeats,
            KEY_PARTS: {entry: {**parts, **changed}},
        }

    base = record("k1")
    assert differences(base, record("k1")) == []
    assert differences(base, record("k2", frames_per_clip=8)) == ["--frames 7; this run's 8"]
    assert differences(base, record("k2", data="d2", repeats="3", clip="c2")) == [
        "the data files differ (names, sizes or times: cp -p, rsync -t keep times; the demo "
        "set's: --split-seed draws it)",
        "--repeats 1; this run's 3",
    ]
    # of other databases: their files and boxes differ as databases do, said by the protocols,
    # not with advice on copying (probe P: an OULU-NPU study beside a Replay-Attack one)
    protocols = "protocols (--protocol, --test-protocol, --db NAME=PATH:PROTOCOL)"
    replay = {**base, protocols: "replay-attack"}
    oulu = {**record("k2", data="d2", face_boxes="b2", frames_per_clip=8), protocols: "oulu-p1"}
    assert differences(replay, oulu) == [
        "--frames 7; this run's 8",
        f"{protocols} replay-attack; this run's oulu-p1",
    ]
    # each side on its own: trained on other databases, tested on one (review)
    from experiments.stores.record import TEST_FEATURES

    def crossed(train: str, data: str, test_data: str, protocol: str) -> dict:
        parts = {train: {**parts_of, "data": data}, test_data: {**parts_of, "data": test_data}}
        return {
            FEATURES: f"cache entry {train}",
            TEST_FEATURES: f"cache entry {test_data}",
            KEY_PARTS: parts,
            protocols: f"{protocol},replay-attack",
        }

    parts_of = {**parts, "face_boxes": "b"}
    casia = crossed("c", "d-casia", "d-replay", "casia")
    assert differences(casia, crossed("o", "d-oulu", "d-replay", "oulu-p1")) == [
        f"{protocols} casia,replay-attack; this run's oulu-p1,replay-attack"
    ]
    moved = differences(casia, crossed("o", "d-oulu", "d-replay2", "oulu-p1"))
    assert moved[0].startswith("the data files differ (names, sizes or times")  # the test's
    # the crop says its detector: one difference
    assert differences(base, record("k2", face_crop=True, detector="y")) == [
        "the face crop (--[no-]face-crop) off; this run's on"
    ]
    assert differences(base, record("k1", clip="c2")) == [f"{clips} differ"]
    # write-up heads first, which a study made before did not record: said (review)
    from experiments.stores.record import WRITE_UP

    assert differences(base, {**record("k1"), WRITE_UP: "conv2048"}) == [
        f"{WRITE_UP} not recorded; this run's conv2048"
    ]
    # another entry of the same parts explains nothing: the clips are said (review)
    assert differences(base, record("k2", clip="c2")) == [f"{clips} differ"]
    # beside another entry, but no features that would explain them: said too (were not: probe)
    assert differences(base, record("k1", repeats="2", clip="c2")) == [
        "--repeats 1; this run's 2",
        f"{clips} differ",
    ]
    older = {what: value for what, value in base.items() if what != KEY_PARTS}
    assert differences(older, record("k2")) == [f"{FEATURES} differ"]  # no parts recorded
    # tested on another database (--test-data) beside its own test split: said so, not as data
    # files that differ, with advice on copying them (probe)

    own = {**base, TEST_FEATURES: base[FEATURES]}
    other = {**base, TEST_FEATURES: "cache entry k9", KEY_PARTS: {"k1": parts, "k9": parts}}
    said = "tested on --data's own test split; this run's --test-data"
    assert differences(own, other) == [said]
    assert differences(other, own) == ["tested on --test-data; this run's --data's own test split"]
    assert differences(own, {**other, "--repeats": "2"}) == [said, "--repeats 1; this run's 2"]
    protocols = "protocols (--protocol, --test-protocol, --db NAME=PATH:PROTOCOL)"
    own, other = {**own, protocols: "oulu-p1"}, {**other, protocols: "oulu-p2,replay-attack"}
    assert differences(own, other) == [said, "--protocol oulu-p1; this run's oulu-p2"]  # review
    other[protocols] = "oulu-p1,replay-attack"  # the test side's own: said by its line
    assert differences(own, other) == [said]


def test_the_closest_other_study_is_said_with_its_finished_trials(tmp_path) -> None:
    """The review found a one-objective twin skipped (its records equal, the name's -pareto
    not recorded) for a farther study, and queued trials counted as a study's trials."""
    from experiments.stores.identity import closest_other

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    precision = "training precision (--train-precision)"
    record = {"--repeats": "1", precision: "float32"}

    def made(name: str, identity: dict, objectives: int = 1, finished: int = 0) -> optuna.Study:
        made = optuna.create_study(
            study_name=name, storage=url, directions=["minimize"] * objectives
        )
        made.set_user_attr(IDENTITY_ATTR, identity)
        for _ in range(finished):
            made.tell(made.ask(), [0.5] * objectives)
        made.enqueue_trial({})  # queued: not a finished trial
        return made

    new = made("new", record)
    assert closest_other(url, new) is None  # alone in its store
    made("far", {"--repeats": "3", precision: "bfloat16"}, finished=2)
    made("pareto", record, objectives=2)
    assert closest_other(url, new) == (
        "differs from study pareto (0 finished trials): --multi-objective on; this run's off"
    )
    made("same", record, finished=1)
    assert closest_other(url, new) == (
        "study same (1 finished trial) records the same data and options: --study same resumes it"
    )
    # as close, and first by name, but just begun: the one with trials is said (probe Q)
    made("a-same-begun", record)
    assert closest_other(url, new).startswith("study same (1 finished trial) records the same")
    assert closest_other(f"sqlite:///{tmp_path / 'nothing.db'}", new) is None  # no schema


def test_of_two_as_close_the_one_with_fewer_entries_differing_is_said(tmp_path) -> None:
    """One line says data that differ ("the data files", its clips too): the study differing
    only by --target-clips lost to it by name (probe)."""
    from experiments.stores.identity import closest_other
    from experiments.stores.record import FEATURES, KEY_PARTS

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    clips, tested = "clips (--protocol, --fold, --split-seed)", "test clips (--target-clips)"

    def record(entry: str, data: str, clip: str, test: str) -> dict:
        parts = {entry: {"data": data, "frames_per_clip": 7}}
        return {FEATURES: f"cache entry {entry}", clips: clip, tested: test, KEY_PARTS: parts}

    def made(name: str, identity: dict) -> optuna.Study:
        made = optuna.create_study(study_name=name, storage=url)
        made.set_user_attr(IDENTITY_ATTR, identity)
        return made

    new = made("new", record("aaa", "d1", "c1", "t1:test"))
    made("a-other-data", record("bbb", "d2", "c2", "t1:test"))  # one line, two entries
    made("z-other-clips", record("aaa", "d1", "c1", "t1:all"))  # one line, one entry
    assert closest_other(url, new) == (  # by the flag, not "test clips differ" (probe BB)
        "differs from study z-other-clips (0 finished trials): --target-clips all; this run's test"
    )


def test_cross_domain_studies_of_other_databases_say_them_not_their_files(tmp_path) -> None:
    """A study of other sources was said to differ by "the data files (cp -p ...)" and an
    unlabelled list of protocols, and the study of the same target and other sources lost to
    one of another target (probe)."""
    from experiments.stores.identity import closest_other
    from experiments.stores.record import DATABASES, FEATURES, KEY_PARTS, TEST_FEATURES, differences

    protocols = "protocols (--protocol, --test-protocol, --db NAME=PATH:PROTOCOL)"
    clips, tested = "clips (--protocol, --fold, --split-seed)", "test clips (--target-clips)"
    data = {"c": "dc", "m": "dm", "i": "di", "r": "dr", "o": "do"}
    boxes = {"o": "bo", "m": "bm", "r": "br"}  # the databases that ship face boxes

    def record(sources: str, target: str, frames: int = 2) -> dict:
        parts = {
            k: {"data": data[k], "frames_per_clip": frames, "face_boxes": boxes.get(k)}
            for k in sources + target
        }
        return {
            FEATURES: "cache entry " + ",".join(sources),
            TEST_FEATURES: f"cache entry {target}",
            protocols: ",".join(sources + target),
            clips: sources,
            tested: f"{target}:test",
            "--repeats": "1",
            DATABASES: {"trained on": ", ".join(sources), "tested on": target},
            KEY_PARTS: parts,
        }

    cm_i = record("cm", "i")
    assert differences(cm_i, record("cmr", "i")) == ["trained on c, m; this run's c, m, r"]
    assert differences(cm_i, record("cmr", "i", frames=3)) == [
        "trained on c, m; this run's c, m, r",
        "--frames 2; this run's 3",
    ]
    assert differences(cm_i, record("cm", "o")) == ["tested on i; this run's o"]
    assert differences(cm_i, record("om", "i")) == ["trained on c, m; this run's o, m"]
    # an intra-dataset study (one entry, no databases): no copy of the sources (review)
    intra = {k: v for k, v in record("c", "c").items() if k != DATABASES}
    assert differences(intra, cm_i) == [
        "--data tested on its own test split; this run's a cross-domain study (trained on c, m, "
        "tested on i)"
    ]
    assert differences(cm_i, record("mc", "i")) == [  # pooled in another order
        f"{protocols} c,m,i; this run's m,c,i",
        f"{clips} differ",
    ]
    copied = record("cm", "i")  # a copy of c without cp -p: another entry
    copied[FEATURES] = "cache entry c2,m"
    copied[KEY_PARTS]["c2"] = {"data": "dc2", "frames_per_clip": 2}
    assert differences(cm_i, copied)[0].startswith("the data files differ (names, sizes")
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    for name, identity in (("ocim-c", record("oim", "c")), ("c_m-to-i", cm_i)):
        optuna.create_study(study_name=name, storage=url).set_user_attr(IDENTITY_ATTR, identity)
    new = optuna.create_study(study_name="new", storage=url)
    new.set_user_attr(IDENTITY_ATTR, record("cmr", "i"))
    assert closest_other(url, new) == (
        "differs from study c_m-to-i (0 finished trials): trained on c, m; this run's c, m, r"
    )
    # a group's later setting: only a study of its own setting (the one before, as asked: no)
    assert closest_other(url, new, same_setting=True) is None
    # the same setting on another copy, at other --frames: two lines, but the same experiment;
    # the study of other sources (one line) had been said (probe W)
    again = record("cmr", "i", frames=3)
    again[FEATURES] = "cache entry c2,m,r"
    again[KEY_PARTS]["c2"] = {"data": "dc2", "frames_per_clip": 3}
    optuna.create_study(study_name="z-cmr-i", storage=url).set_user_attr(IDENTITY_ATTR, again)
    said = closest_other(url, new)
    assert said.startswith("differs from study z-cmr-i (0 finished trials): --frames 3; "), said
    assert closest_other(url, new, same_setting=True) == said
    assert said.count(" | ") == 1, said


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_retry_says_same_parameters_only_of_a_trial_that_had_them() -> None:
    """A trial lost in Optuna's ask (the database gone before it drew anything) was retried as
    "same parameters, same seed", and its place taken by a newly drawn configuration (probe X)."""
    from experiments.stores.retries import queue_again, retry_line

    study = optuna.create_study()  # a real in-memory study
    study.ask()  # lost before its objective drew a parameter
    drew = study.ask()
    drew.suggest_int("width", 1, 9)
    study.enqueue_trial({"width": 3})  # a queued baseline: its parameters are fixed
    baseline = study.ask()
    for number in (0, 1, 2):
        study.tell(number, state=optuna.trial.TrialState.FAIL)
        queue_again(study, study.trials[number])
    assert baseline.number == 2
    took, *_ = retried = [study.ask() for _ in range(3)]
    assert [t.number for t in retried] == [3, 4, 5]
    took.suggest_int("width", 1, 9)  # 3 takes 0's place and draws; lost too, retried as 6
    study.tell(3, state=optuna.trial.TrialState.FAIL)
    queue_again(study, study.trials[3])
    assert study.ask().number == 6
    trials = study.get_trials(deepcopy=False)
    assert retry_line(trials, 6) == (  # not "first tried as trial 0", which had none (review)
        "trial 6 retries trial 3, which did not finish: same parameters, same seed"
    )
    assert retry_line(trials, 3) == (
        "trial 3 takes the place of trial 0, lost before its parameters were drawn"
    )
    for number, lost in ((4, 1), (5, 2)):
        assert retry_line(trials, number) == (
            f"trial {number} retries trial {lost}, which did not finish: same parameters, same seed"
        )
    assert retry_line(trials, 1) is None
