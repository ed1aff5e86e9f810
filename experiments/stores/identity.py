"""What one study is, which every worker and every rerun of it must agree on: its search space
(the choices of its categorical parameters), its objectives, and what its figures depend on (the
features, clips, test clips and options, recorded on the study when it is made). A run that
differs is refused in one line naming ``--study``: Optuna cannot search a categorical whose
choices change, and a trial of other data or options ranked among the study's would be wrong
without a word.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from core.words import counted
from experiments.config import HEARTBEAT_SECONDS
from experiments.stores import wal
from experiments.stores.record import (
    CASIA_SUBSETS,
    DATABASES,
    DEV_TOO,
    FEATURES,
    KEY_PARTS,
    PART_NAMES,
    PROTOCOLS,
    SHARED_KEY,
    SIDES,
    SPREAD,
    TEST_FEATURES,
    UNCOMPARED,
    differences,
    folds_of_seeds,
    moved,
    part_differences,
    shown,
    sides_differ,
    split_seeds,
    taken_clips,
    tested_said,
    whole_only,
)

IDENTITY_ATTR = "numbers_depend_on"  # a study user attribute: what its trials' figures depend on
MAKER_ATTR = "numbers_recorded_by"  # ... and the worker (host:pid) that recorded them
HEARTBEAT_ATTR = "heartbeat_seconds"  # a study user attribute: its workers' --heartbeat
OBJECTIVES = ("dev_acer", "params_total")  # what a trial returns (both: --multi-objective)
FIGURED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)  # trials with a figure


def check_heartbeat(study: optuna.Study, heartbeat: int | None) -> int:
    """The study's heartbeat, its first worker's (recorded): this worker's ``--heartbeat``, or
    the study's where none was given (a study begun with ``--heartbeat 10`` was refused every
    later command that left it out: probe CC), or :data:`HEARTBEAT_SECONDS` for a new one. A
    ValueError (one line) when one given is not the study's: a worker finds a trial lost after
    its own heartbeats, so a shorter one failed the others' live trials, and a longer one waited
    too long for a dead worker's."""
    recorded = study.user_attrs.get(HEARTBEAT_ATTR)
    if recorded is None:
        recorded = heartbeat or HEARTBEAT_SECONDS
        study.set_user_attr(HEARTBEAT_ATTR, recorded)
    elif heartbeat is not None and recorded != heartbeat:
        raise ValueError(
            f"study {study.study_name}'s workers beat every {recorded} s, this one every "
            f"{heartbeat} s, and would find their trials lost: rerun with --heartbeat {recorded} "
            "(or without --heartbeat)"
        )
    return int(recorded)


def study_heartbeat(study: optuna.Study) -> int:
    """The seconds between the heartbeats of ``study``'s trials, as :func:`check_heartbeat` set
    them: every worker of a study beats alike."""
    return int(study.user_attrs.get(HEARTBEAT_ATTR, HEARTBEAT_SECONDS))


def check_search_space(study: optuna.Study, choices: dict[str, Sequence[str]]) -> None:
    """A ValueError (one line, naming ``--study``) when the study's trials searched other
    choices of a categorical parameter (``head``: the families ``--heads`` allows; ``fine_tune``)
    than this run would: Optuna cannot search a categorical whose choices change, and a trial
    that tried would fail with empty parameters."""
    for trial in study.get_trials(deepcopy=False):
        for name, wanted in choices.items():
            before = trial.distributions.get(name)
            if before is not None and tuple(before.choices) != tuple(wanted):
                flag = {"head": "--heads", "fine_tune": "--fine-tune"}.get(name, name)
                was, now = (", ".join(map(str, c)) for c in (before.choices, wanted))
                # said whether or not --heads was given: its default is not what the user typed
                default = " (whose default is every family registered)" if name == "head" else ""
                raise ValueError(
                    f"study {study.study_name} searches {name} over {was}; this run's {flag}"
                    f"{default} asks for {now}: rerun with the study's {flag}, or start another "
                    "study with --study"
                )


def check_identity(
    study: optuna.Study,
    identity: dict[str, Any],
    directions: Sequence[str] = (),
    worker: str = "",
) -> None:
    """A ValueError (one line, naming ``--study``) when this run's objectives (``directions``)
    or what its figures depend on (``identity``: flag or what it names -> value) differ from the
    study's, since its trials would be ranked against trials of other data or options.

    The identity is recorded when the study is made, with the ``worker`` (host:pid) that made
    it. It is recorded again by a run of other options only while none of the study's trials has
    a figure (none complete, pruned or running in a worker not known dead) and its maker is gone
    (a first run that failed, was stopped or was killed before its first trial ended, on this
    machine), and a rerun of the same options then becomes its maker; while the maker may be
    working (loading its backend, in its first trial), a worker of other options is refused like
    any other. A study with figures and no record (made before the record existed) is not
    checked, since this run's options need not be those its trials ran with. The objectives are
    named (:data:`OBJECTIVES`): optuna-dashboard said "Objective 0", and ``trials_dataframe``
    has ``value_dev_acer`` where it had ``value``.
    """
    wanted = [d.lower() for d in directions]
    made = [d.name.lower() for d in study.directions]
    if wanted and wanted != made:
        raise ValueError(
            f"study {study.study_name} has {counted(len(made), 'objective')}, this run asks for "
            f"{len(wanted)} (--multi-objective: dev ACER and parameters): rerun with the study's "
            "flags, or start another study with --study"
        )
    if wanted and study.metric_names != list(OBJECTIVES[: len(wanted)]):
        with warnings.catch_warnings():  # Optuna calls naming them experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(OBJECTIVES[: len(wanted)]))
    recorded = study.user_attrs.get(IDENTITY_ATTR)
    figured = _figured(study)
    if figured and not isinstance(recorded, dict):
        return
    was = recorded if isinstance(recorded, dict) else {}
    if figured and SPREAD in identity and SPREAD not in was and folds_of_seeds(was):  # older
        raise ValueError(
            f"study {study.study_name}'s trials give each figure's ± std over every setting, its "
            f"folds' and seeds' together; this version's is {identity[SPREAD]}: start another "
            "study with --study (their figures would be ranked together)"
        )
    differs = [
        (what, was[what], value)
        for what, value in identity.items()
        if what not in UNCOMPARED and what in was and was[what] != value
    ]
    clips = any(what.startswith("clips") for what, _, _ in differs)
    if figured and was and clips and CASIA_SUBSETS in identity and CASIA_SUBSETS not in was:
        raise ValueError(  # "rerun with the study's flags" cannot select its clips again
            f"study {study.study_name} trained on a casia-* subset of before 2026-12-07, which "
            "kept train and dev whole (the test split alone restricted); the subsets restrict "
            f"{identity[CASIA_SUBSETS]} now: start another study with --study"
        )
    gone = not figured and maker_gone(study, worker)
    if differs and not gone:
        what = differs[0][0]
        tested = moved(was, identity).get(SIDES[TEST_FEATURES])
        own = DATABASES not in was and DATABASES not in identity  # not a cross-domain study's
        if tested and own and (what == TEST_FEATURES or what.startswith("test")):
            raise _tested_otherwise(study.study_name, tested)  # not data files that differ
        data = _data_differs(what, was, identity)
        said = sides_differ(what, was, identity) or {}
        # the flag, not two hashes, nor the protocols that taking OULU-NPU whole changes; only
        # where it explains every difference (a protocol of the user's went unsaid: review)
        lines = [t for w, _, _ in differs if (t := taken_clips(w, was, identity))]
        explained = all(
            w.startswith(("clips", "test clips")) or (w == PROTOCOLS and whole_only(was, identity))
            for w, _, _ in differs
        )
        taken = "; ".join(lines) if lines and explained else None
        raise (  # features: by the flags that made them (cached, they were named by hash: probe)
            _databases(study.study_name, what, was, identity, data)
            or (_features_differ(study.study_name, what, said) if said else None)
            or _other(study.study_name, *differs[0], split_seeds(what, was, identity), taken)
        )
    if not identity or figured:
        return
    if gone or not isinstance(recorded, dict):  # made, or its maker gone: this worker's now
        study.set_user_attr(IDENTITY_ATTR, identity)
        study.set_user_attr(MAKER_ATTR, worker)
    elif recorded != identity:  # the same flags, an entry the record lacked
        study.set_user_attr(IDENTITY_ATTR, identity)


def _figured(study: optuna.Study) -> bool:
    """Whether one of the study's trials has a figure, or may have one: complete, pruned, or
    running in a worker not known dead. A first run killed in its first trial (SIGKILL) leaves it
    RUNNING until a worker queues it again, with no figure: its study is taken over like one
    whose first run was stopped by Ctrl-C."""
    trials = study.get_trials(deepcopy=False, states=FIGURED)
    running = [t for t in trials if t.state == TrialState.RUNNING]
    if len(running) < len(trials) or not running:
        return bool(trials)
    from experiments.stores.retries import dead_here  # MLflow: only for this question

    return len(dead_here(running)) < len(running)


def maker_gone(study: optuna.Study, worker: str = "") -> bool:
    """Whether the worker that recorded the study's identity no longer works on it: a process
    of this machine that is gone, this very process (``worker``: its earlier command ended), or
    a record made before its maker was. Another machine's worker is never known gone."""
    from experiments.stores.liveness import process_gone  # MLflow: only for this question

    maker = study.user_attrs.get(MAKER_ATTR)
    return not maker or maker == worker or process_gone(str(maker))


def _databases(
    name: str, part: str, recorded: dict[str, Any], databases: dict[str, Any], data: bool
) -> ValueError | None:
    """The refusal naming the databases by which a cross-domain study's ``part`` (its training
    or test features) differs, when the record names them, they differ, and so do the data
    files (``data``; else None): 'the data files differ' did not say that the target was another
    database, and names alone differ where a databases file calls the same folders otherwise."""
    side = SIDES.get(part)
    was, now = (d.get(DATABASES) if isinstance(d, dict) else None for d in (recorded, databases))
    if not side or not isinstance(was, dict) or not isinstance(now, dict):
        return None
    if side not in was or was[side] == now.get(side) or not data:
        return None
    return ValueError(
        f"study {name} was {side} {was[side]}; this run on {now.get(side)}: rerun with the "
        "study's flags, or start another study with --study"
    )


def _data_differs(part: str, recorded: dict[str, Any], identity: dict[str, Any]) -> bool:
    """Whether the data files of ``part``'s cache entries differ between the study's record and
    this run's (:data:`KEY_PARTS`); True where either does not say."""

    def data(record: dict[str, Any]) -> set[str] | None:
        keys = str(record.get(part, "")).removeprefix("cache entry ").split(",")
        parts = record.get(KEY_PARTS)
        if not isinstance(parts, dict) or not all(isinstance(parts.get(k), dict) for k in keys):
            return None
        return {str(parts[k].get("data")) for k in keys}

    was, now = data(recorded), data(identity)
    return was is None or now is None or was != now


def _other(
    name: str,
    what: str,
    recorded: str,
    value: str,
    seeds: str | None = None,
    taken: str | None = None,
) -> ValueError:
    def listed(text: str) -> list[str]:
        return sorted(str(text).removeprefix("cache entry ").split(","))

    if what == FEATURES and listed(recorded) == listed(value):  # the sources, pooled otherwise
        return ValueError(
            f"study {name} pooled its sources in another order ({recorded}; this run's is "
            f"{value}): they are pooled in the benchmark's order now (O, C, I, M, then by name), "
            "which gives other figures: start another study with --study"
        )
    if taken and DEV_TOO in taken:  # no flag tests those clips again
        return ValueError(
            f"study {name} tested its target with --target-clips {DEV_TOO}; this version "
            "leaves that dev set out: start another study with --study"
        )
    said = []  # the clips by the flags that split and took them, not by their hashes (probe Y,
    if seeds:  # probe BB); both where both differ (review)
        said.append(f"split its clips by subject with {seeds}")
    if taken:
        whose = "tested its target" if taken.startswith("--target") else "trained its sources"
        whose = "took its clips" if "--target" in taken and "--source" in taken else whose
        said.append(f"{whose} with {taken}")
    if said:
        return ValueError(
            f"study {name} {', and it '.join(said)}: rerun with the study's flags, or start "
            "another study with --study"
        )
    return ValueError(
        f"study {name} was run with {what} {recorded}; this run's is {value}: rerun with the "
        "study's flags, or start another study with --study"
    )


def check_features(
    url: str,
    name: str,
    key: str,
    parts: dict[str, Any] | None = None,
    cache: Path | None = None,
    part: str = FEATURES,
    databases: dict[str, str] | None = None,
) -> None:
    """Before features are extracted for the study ``name`` in ``url``: the ValueError
    :func:`check_identity` would raise after the extraction, when the study has figures (or a
    maker still working) from other training features (``part`` :data:`TEST_FEATURES`: test
    features) than those of cache entry ``key``. With ``parts`` (what ``key`` hashes) and the
    ``cache`` folder of entries, it names what differs from the study's entry when that entry is
    there (e.g. ``--precision bfloat16; this run's float32``); with a cross-domain run's
    ``databases`` (:data:`DATABASES`), the databases, where they differ. Reads only: a
    database, schema or study not there yet (or unreadable) is left to the full check when the
    study is opened."""
    from experiments.stores.workers import worker_name  # it imports this module

    database = wal.sqlite_file(url)
    if database is not None and not Path(database).is_file():
        return  # connecting would make the file
    try:
        storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
        study = optuna.load_study(study_name=name, storage=storage)
        recorded = study.user_attrs.get(IDENTITY_ATTR)
        figured = _figured(study)
        binding = figured or not maker_gone(study, worker_name())  # as check_identity holds
    except Exception:  # noqa: BLE001 - no study, no schema, no server: opening it says why
        return
    if not binding or not isinstance(recorded, dict) or part not in recorded:
        return  # a study recorded before test features were: checked when it is opened
    keys = recorded[part].removeprefix("cache entry ").split(",")
    trained = str(recorded.get(FEATURES, "")).removeprefix("cache entry ").split(",")
    own = [recorded.get(FEATURES) == recorded[part], key[:12] in trained]  # then, now
    if part == TEST_FEATURES and own[0] != own[1] and key[:12] not in keys and not databases:
        raise _tested_otherwise(name, tested_said(own[0]))  # said as data files that differ
    if key[:12] not in keys:
        recorded_parts = recorded.get(KEY_PARTS)
        recorded_parts = recorded_parts if isinstance(recorded_parts, dict) else {}
        differs = _differences(parts, cache, keys, recorded_parts) if parts and cache else None
        data = not differs or "data" in differs  # not only other names for the same folders
        if named := _databases(name, part, recorded, {DATABASES: databases}, data):
            raise named
        if differs:
            raise _features_differ(name, part, differs)
        raise _other(name, part, recorded[part], f"cache entry {key[:12]}")


def _tested_otherwise(name: str, said: str) -> ValueError:
    """The refusal of a study tested on its own test split rerun with ``--test-data``, or the
    reverse (``said``: "tested on ...; this run's ..."), which read as data files that differ."""
    return ValueError(
        f"study {name} was {said}: rerun with the study's flags, or start another study with "
        "--study"
    )


def _features_differ(name: str, part: str, differs: dict[str, str]) -> ValueError:
    """The study's features were made otherwise: ``differs``, their cache key parts as said."""
    fix = "rerun with the study's flags, or start another study with --study"
    # a backend is no flag: "rerun with the study's flags" could not give them back (probe EE)
    backend = re.search(r"KERAS_BACKEND[= ](\w+);", ", ".join(differs.values()))
    if backend:
        flags = any(  # a flag's part: not the data's, nor the backend's (a random draw's too)
            k not in ("data", "face_boxes") and "KERAS_BACKEND" not in said
            for k, said in differs.items()
        )
        fix = "rerun with the study's flags " if flags else "rerun "
        fix += f"under KERAS_BACKEND={backend[1]}, or start another study with --study"
    gone = any(SHARED_KEY in said for said in differs.values())  # no backend gives them back
    if gone or any(key not in PART_NAMES for key in differs):  # no flag gives them back
        fix = "this version extracts other features: start another study with --study"
    which = "features" if part == FEATURES else "test features"
    return ValueError(
        f"study {name} was run with other {which}: {', '.join(differs.values())}: {fix}"
    )


def _differences(
    parts: dict[str, Any], cache: Path, keys: Sequence[str], recorded: dict[str, Any]
) -> dict[str, str] | None:
    """What differs between ``parts`` and those of the study's entry closest to them (a
    cross-domain study has one a database), part by part: "--precision bfloat16; this run's
    float32", "the data files differ". The entries' parts are read from their manifests under
    ``cache``, else from those the study ``recorded`` (another machine's cache); None when
    neither has them (a study recorded before its parts were)."""
    theirs_all = []
    for prefix in keys:
        for manifest in sorted(cache.glob(f"{prefix}*/manifest.json")):
            try:
                theirs_all.append(json.loads(manifest.read_text(encoding="utf-8"))["key_parts"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
    if not theirs_all:
        theirs_all = [recorded[prefix] for prefix in keys if prefix in recorded]
    found = [part_differences(theirs, parts) for theirs in theirs_all if isinstance(theirs, dict)]
    return min(found, key=len) or None if found else None


def closest_other(storage: str, study: optuna.Study, same_setting: bool = False) -> str | None:
    """Why a new study's default name is new: how it differs from the closest other study in
    ``storage`` (the fewest differences in what the figures depend on and its objectives, then
    the fewest entries of the record that differ), as
    "differs from study pad-... (12 finished trials): --frames 7; this run's 8", three at most
    with "|" between them; or that one records the same (named otherwise: ``--study``). None
    where the store holds no other study with a record (``same_setting``: of this setting, as
    for a group's later setting, which differs from the one before as asked), or cannot be read:
    it only reads."""
    ours = study.user_attrs.get(IDENTITY_ATTR)
    if not isinstance(ours, dict):
        return None
    found = []
    try:  # the studies' records, not their trials (Optuna's summaries read every trial)
        stored = optuna.storages.RDBStorage(storage, skip_table_creation=True)
        for other in stored.get_all_studies():
            theirs = other.user_attrs.get(IDENTITY_ATTR)
            if other.study_name == study.study_name or not isinstance(theirs, dict):
                continue
            said = differences(theirs, ours)
            was, now = (len(s.directions) > 1 for s in (other, study))  # the name's -pareto
            if was != now:
                said.append(f"--multi-objective {shown(was)}; this run's {shown(now)}")
            # ties (one line can say several entries: "the data files differ"): fewer entries
            raw = sum(theirs.get(k, ours[k]) != ours[k] for k in ours.keys() - set(UNCOMPARED))
            # a study of another setting (databases, protocols) is another experiment: one of
            # this setting on other data is closer, however many lines say it (probe W)
            setting = any(theirs.get(k) != ours.get(k) for k in (DATABASES, PROTOCOLS))
            found.append((setting, len(said), raw, other.study_name, said))
        found = [f for f in found if not (same_setting and f[0])]
        if not found:
            return None
        finished = (TrialState.COMPLETE, TrialState.PRUNED)
        count = lambda name: stored.get_n_trials(  # noqa: E731
            stored.get_study_id_from_name(name), state=finished
        )
        # of those as close, the one with the most finished trials (a study just begun, with
        # none, was said beside a finished one: probe), then by name
        closest = min(found)[:3]
        tied = [(-count(n), n, said) for *key, n, said in found if tuple(key) == closest]
        least, name, said = min(tied)
        trials = -least
    except Exception:  # noqa: BLE001 - a line of help, never a failure of the sweep
        return None
    study_said = f"study {name} ({counted(trials, 'finished trial')})"
    if not said:
        return f"{study_said} records the same data and options: --study {name} resumes it"
    more = f" | {len(said) - 3} more" if len(said) > 3 else ""
    return f"differs from {study_said}: {' | '.join(said[:3])}{more}"
