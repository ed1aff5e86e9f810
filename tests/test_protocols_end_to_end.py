"""Every official protocol run end to end: trees named as the real databases, of real tiny videos,
through the feature cache, a real one-trial sweep (Optuna, MLflow) and its logged figures.

Each database's tree keeps the fewest clips that leave every split, and every species of it,
non-empty under each protocol run here. One cache serves the module: a database is extracted
once, whatever protocols and folds read it, and the cross-dataset run extracts nothing.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from core.constants import SPLITS
from core.data.dataset import load_dataset
from core.features import FeatureOptions
from experiments.commands.study import SweepResult, run_sweep
from experiments.commands.sweep import SweepConfig
from experiments.config import EvaluationOptions
from experiments.stores.tracking import ROLE_TAG
from tests.reference import bob_measure
from tests.test_evaluation import bob_report

FRAMES = 2  # of the three each tiny video holds


def species(*names: str, each: int = 1) -> dict[str, int]:
    return dict.fromkeys(("bonafide", *names), each)


# protocol -> split -> clips per species, for the trees above
REPLAY = {
    "replay-attack": dict.fromkeys(SPLITS, species("print", "mobile", "highdef")),
    "replay-attack-print": dict.fromkeys(SPLITS, species("print")),
}
OULU_SEEN = species("print", "display", each=2)  # one user, phones 1 and 2
OULU = {
    "oulu-p1": {"train": OULU_SEEN, "dev": OULU_SEEN, "test": species("print", "display", each=6)},
    "oulu-p2": {"train": OULU_SEEN, "dev": OULU_SEEN, "test": species("print", "display", each=6)},
    # all six folds run; the sweep's features are fold 1's: phone 2 trains, phone 1 tests
    "oulu-p3": dict.fromkeys(SPLITS, species("print", "display")),
}
CASIA = {
    "casia": dict.fromkeys(SPLITS, species("warped", "cut", "video")),
    "casia-warped": dict.fromkeys(SPLITS, species("warped")),  # every split's (probe)
}
SUBJECTS = {
    "replay": {"train": {"1"}, "dev": {"2"}, "test": {"3"}},
    "oulu": {"train": {"1"}, "dev": {"21"}, "test": {"36"}},
    "casia": {"train": {"1"}, "dev": {"16"}, "test": {"21"}},  # test_release 1 is subject 21
}


@pytest.fixture(scope="module")
def workspace(database_trees) -> Path:
    """The databases' trees (tests/trees.py), one feature cache, one Optuna and one MLflow
    store, shared with tests/test_cross_domain.py."""
    return database_trees


def sweep(
    workspace: Path,
    data: str,
    protocol: str,
    evaluation: EvaluationOptions | None = None,
    fold: int | None = None,
) -> SweepResult:
    """One lstm30 trial on the random backbone, MLflow artifacts under the workspace."""
    features = FeatureOptions(
        data=workspace / data,
        protocol=protocol,
        fold=fold,
        cache_dir=workspace / "cache",
        frames=FRAMES,
        face_crop=False,
        progress=False,
    )
    config = SweepConfig(
        features=features,
        trials=1,
        heads="lstm30",
        study=protocol if evaluation is None else f"{protocol}-cross",
        storage=f"sqlite:///{workspace}/optuna.db",
        tracking_uri=f"sqlite:///{workspace}/mlflow.db",
        evaluation=evaluation or EvaluationOptions(),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workspace)  # MLflow puts artifacts under ./mlruns, as for a user
        return run_sweep(config)


PRINTED: dict[str, str] = {}  # each protocol's sweep's console
ACERS = ("dev_acer", "test_acer")


def sweeps(workspace: Path, data: str, protocols: dict) -> dict[str, SweepResult]:
    results = {}
    for protocol in protocols:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            results[protocol] = sweep(workspace, data, protocol)
        PRINTED[protocol] = out.getvalue()
    return results


@pytest.fixture(scope="module")
def replay(workspace: Path) -> dict[str, SweepResult]:
    return sweeps(workspace, "replayattack", REPLAY)


@pytest.fixture(scope="module")
def oulu(workspace: Path) -> dict[str, SweepResult]:
    return sweeps(workspace, "OULU-NPU", OULU)


@pytest.fixture(scope="module")
def casia(workspace: Path) -> dict[str, SweepResult]:
    return sweeps(workspace, "CASIA-FASD", CASIA)


def client(workspace: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{workspace}/mlflow.db")


def trial_run(workspace: Path, result: SweepResult) -> Run:
    """The sweep's one trial run, finished."""
    runs = client(workspace).search_runs(
        [result.experiment_id], filter_string=f"tags.`{ROLE_TAG}` = 'trial'"
    )
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    return runs[0]


def scores(workspace: Path, run: Run, tmp_path: Path) -> pd.DataFrame:
    path = client(workspace).download_artifacts(run.info.run_id, "scores.csv", str(tmp_path))
    return pd.read_csv(path, keep_default_na=False, dtype={"phone": str, "subject": str})


def by_split(result: SweepResult, column: str = "attack_type") -> dict[str, Counter]:
    """Clips per value of ``column`` in each split of the sweep's features."""
    return {
        split: Counter(getattr(result.features.clips[i], column) for i in indices)
        for split in SPLITS
        if len(indices := result.features.indices(split))
    }


ALL_SPECIES = {"print", "mobile", "highdef", "display", "warped", "cut", "video"}


def logged_species(metrics: dict[str, float]) -> set[str]:
    """The species with a ``test_apcer_<species>`` figure (its ``_std`` and intervals aside)."""
    return {k.removeprefix("test_apcer_") for k in metrics} & ALL_SPECIES


def assert_protocol_ran(
    workspace: Path, result: SweepResult, expected: dict, subjects: dict, tmp_path: Path
) -> Run:
    """Split sizes, species and subjects as the protocol defines them; a test APCER per test
    species, no other; the logged figures are those of the logged scores."""
    assert by_split(result) == expected
    assert {s: set(c) for s, c in by_split(result, "subject").items()} == subjects
    run = trial_run(workspace, result)
    metrics = run.data.metrics
    assert logged_species(metrics) == set(expected["test"]) - {"bonafide"}
    logged = scores(workspace, run, tmp_path)
    test = logged[logged["split"] == "test"]
    if metrics["settings"] == 1:  # oulu-p3's six folds are checked on their own
        assert Counter(test["attack_type"]) == expected["test"]
        assert run.data.tags["test_clips"] == str(sum(expected["test"].values()))
    by_bob = bob_report(logged, bob_measure())  # every figure Bob computes, per setting
    assert {key: metrics[key] for key in by_bob} == by_bob
    return run


@pytest.mark.parametrize("protocol", list(REPLAY))
def test_replay_attack_protocols(workspace, replay, protocol, tmp_path) -> None:
    result = replay[protocol]
    run = assert_protocol_ran(workspace, result, REPLAY[protocol], SUBJECTS["replay"], tmp_path)
    assert run.data.metrics["settings"] == 1 and run.data.tags["folds"] == "none"
    assert result.features.random_weights and result.features.face_crop_method == "none"
    attacks = [c for c in result.features.clips if c.label == "attack"]
    assert {(c.columns["support"], c.columns["sample_type"]) for c in attacks} == {
        ("fixed", "photo")
    }


@pytest.mark.parametrize(
    ("protocol", "column", "values"),
    [
        pytest.param("oulu-p1", "session", ({"1"}, {"1"}, {"3"}), id="oulu-p1"),
        pytest.param(
            "oulu-p2",
            "instrument",
            ({"", "printer1", "display1"},) * 2 + ({"", "printer2", "display2"},),
            id="oulu-p2",
        ),
    ],
)
def test_oulu_protocols_1_and_2(workspace, oulu, protocol, column, values, tmp_path) -> None:
    result = oulu[protocol]
    run = assert_protocol_ran(workspace, result, OULU[protocol], SUBJECTS["oulu"], tmp_path)
    assert run.data.metrics["settings"] == 1 and run.data.tags["folds"] == "none"
    used = [
        {c.columns.get(column, "") for c in result.features.clips if c.split == s} for s in SPLITS
    ]
    assert used == list(values)


def test_oulu_p3_runs_its_six_folds_in_each_trial(workspace, oulu, tmp_path) -> None:
    result = oulu["oulu-p3"]
    run = assert_protocol_ran(workspace, result, OULU["oulu-p3"], SUBJECTS["oulu"], tmp_path)
    metrics = run.data.metrics
    assert metrics["settings"] == 6 and run.data.tags["folds"] == "1,2,3,4,5,6"
    attrs = result.comparison.attrs  # what its console table heads with (OULU-NPU's figures)
    assert attrs["protocol"] == "oulu-p3" and attrs["evaluation"] == "intra-dataset"
    assert run.data.tags["fold"] == "all"  # not fold 1's, with six folds run
    for key in ("test_acer", "test_hter", "test_apcer_print", "test_apcer_display", "dev_eer"):
        assert f"{key}_std" in metrics
    logged = scores(workspace, run, tmp_path)
    assert sorted(logged["fold"].unique()) == [1, 2, 3, 4, 5, 6]
    per_fold = [(rows["split"] == "test").sum() for _, rows in logged.groupby("fold")]
    assert run.data.tags["test_clips"] == ",".join(map(str, per_fold))  # each fold's
    for fold, rows in logged.groupby("fold"):
        test, dev = rows[rows["split"] == "test"], rows[rows["split"] == "dev"]
        assert set(test["phone"]) == {str(fold)}  # leave one phone out
        assert Counter(test["attack_type"]) == species("print", "display")
        assert str(fold) not in set(dev["phone"]) and len(dev) == (3 if fold <= 2 else 6)
    names = {a.path for a in client(workspace).list_artifacts(run.info.run_id)}
    assert "settings.csv" in names
    # the parent run counts the clips of every fold, each once (it counted fold 1's)
    folds = [load_dataset(workspace / "OULU-NPU", "oulu-p3", fold=k) for k in range(1, 7)]
    every = {clip.path for dataset in folds for clip in dataset.clips}
    assert len(every) > len(result.features.clips)
    parent = client(workspace).get_run(run.data.tags["mlflow.parentRunId"])
    assert parent.data.params["clips"] == str(len(every))
    # fold 1's data summary whole, each later fold's counts in one line (six summaries before)
    printed = PRINTED["oulu-p3"].splitlines()
    # fold 1's clips of the cache entry's (every fold's, every protocol's): 55 of 90 were said as
    # "55 clips" beside the extraction's time (probe)
    entry = len(result.features.manifest["clips"])  # those that decoded
    assert len(every) <= entry and len(result.features.clips) < entry
    said = f"features: {len(result.features.clips)} clips of the entry's {entry} x {FRAMES} frames"
    assert any(line.startswith(said) for line in printed), printed
    assert sum(line.startswith("  split  label") for line in printed) == 1
    # the trial line's dev and test ACER, each the mean ± std over the folds, as in the table
    (line,) = [line for line in printed if line.startswith("#0 ")]
    dev, test = (f"{100 * metrics[k]:.1f}±{100 * metrics[f'{k}_std']:.1f}%" for k in ACERS)
    assert f" {dev} " in line and f" {test} " in line, line
    for fold in range(2, 7):
        (line,) = [line for line in printed if f"(oulu-p3 fold {fold})" in line]
        assert line.endswith((" subject", " subjects")) and "; dev: " in line and "; test: " in line
    # the paper's table of an intra-dataset study, chosen: APCER, BPCER and ACER over the folds
    # (it was refused without a cross study, and showed HTER and ACER only: probe)
    from experiments.commands import compare

    out, uri = tmp_path / "p3", f"sqlite:///{workspace}/mlflow.db"
    assert (
        compare.main(["--cross", "--study", "oulu-p3", "--out", str(out), "--tracking-uri", uri])
        == 0
    )
    table = pd.read_csv(out / "cross_domain.csv", index_col="head")
    for figure in ("apcer", "bpcer", "acer", "hter"):
        column = f"oulu-p3 {figure.upper()}"
        assert table.loc["write-up lstm30", f"{column} (fraction)"] == metrics[f"test_{figure}"]
        std = metrics[f"test_{figure}_std"]
        assert table.loc["write-up lstm30", f"{column} std (fraction)"] == std
    assert "held-out" not in (out / "cross_domain.md").read_text()  # no sources, no target
    # one fold of the study of all six: the folds said, not six hashes of clips (probe)
    said = "was run with folds (--fold) 1,2,3,4,5,6; this run's is 2: rerun with the study's flags"
    with pytest.raises(ValueError, match=re.escape(said)):
        sweep(workspace, "OULU-NPU", "oulu-p3", fold=2)


def test_extract_without_a_fold_extracts_once_for_every_fold(oulu, workspace, capsys) -> None:
    """As the sweep runs every fold without --fold, extract.py extracts the database once for
    them all (it was refused: 'choose one with --fold K'); --list still wants its fold."""
    from experiments.commands import extract

    flags = ["--data", str(workspace / "OULU-NPU"), "--protocol", "oulu-p3"]
    flags += ["--frames", str(FRAMES), "--cache-dir", str(workspace / "cache")]
    flags += ["--no-face-crop", "--no-progress"]
    assert extract.main(flags) == 0
    out = capsys.readouterr().out
    said = "protocol oulu-p3 has folds 1-6: one extraction serves them all (fold 1's splits below)"
    assert said in out.splitlines()
    assert f"path:     {oulu['oulu-p3'].features.path}" in out  # what the sweep's folds read
    # what was extracted, every fold's clips, and fold 1's part (it said 18 clips of 60: probe)
    every = load_dataset(workspace / "OULU-NPU", "oulu-all")
    fold = load_dataset(workspace / "OULU-NPU", "oulu-p3", fold=1)
    lines = out.splitlines()
    assert (
        f"entry:    {len(every.clips)} clips of every fold, {len(every.clips) * FRAMES} frames"
        in lines
    )
    assert f"clips:    {len(fold.clips)} usable in fold 1's splits, 0 skipped" in lines
    # --list without --fold: each fold's clips, as the sweep runs them (it was refused: probe V)
    assert extract.main([*flags, "--list"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.startswith("fold,clip,split,label,species,subject")
    for k in range(1, 7):
        listed = sorted(row.split(",")[1:3] for row in rows if row.startswith(f"{k},"))
        fold_k = load_dataset(workspace / "OULU-NPU", "oulu-p3", fold=k)
        assert listed == sorted([c.clip_id, c.split] for c in fold_k.clips), k


def test_one_extraction_serves_every_protocol_of_a_database(replay, oulu, casia) -> None:
    for results in (replay, oulu, casia):
        # The first protocol run extracts, unless another module sharing `database_trees` already
        # did; every later protocol of the database reads that one entry.
        first, *others = results.values()
        assert first.features.path.exists()
        for other in others:
            assert not other.features.extracted and other.features.path == first.features.path
            assert other.features.dataset_fingerprint != first.features.dataset_fingerprint


@pytest.mark.parametrize("protocol", list(CASIA))
def test_casia_protocols(workspace, casia, protocol, tmp_path) -> None:
    result = casia[protocol]
    assert_protocol_ran(workspace, result, CASIA[protocol], SUBJECTS["casia"], tmp_path)
    assert {c.columns["quality"] for c in result.features.clips} == {"normal"}


def test_casia_to_replay_attack_reports_on_replay_attacks_test_split(
    workspace, casia, replay, tmp_path, capsys
) -> None:
    evaluation = EvaluationOptions(
        test_data=workspace / "replayattack", test_protocol="replay-attack"
    )
    capsys.readouterr()
    result = sweep(workspace, "CASIA-FASD", "casia", evaluation)
    said = (  # which data each figure is on, above the trial lines
        f"cross-dataset: dev ACER and the threshold on {workspace / 'CASIA-FASD'}'s dev clips; "
        f"test figures on {workspace / 'replayattack'} (4 test clips)"
    )
    assert said in capsys.readouterr().out.splitlines()
    assert not result.features.extracted  # both databases come from the cache
    assert by_split(result) == CASIA["casia"]  # trained and thresholded on CASIA
    run = trial_run(workspace, result)
    tags = run.data.tags
    target = replay["replay-attack"].features
    assert tags["evaluation"] == "cross-dataset" and tags["test_protocol"] == "replay-attack"
    assert tags["test_data"] == str(workspace / "replayattack")
    assert tags["test_data_fingerprint"] == target.dataset_fingerprint
    assert tags["test_clips"] == "4"
    metrics = run.data.metrics
    assert logged_species(metrics) == {"print", "mobile", "highdef"}
    logged = scores(workspace, run, tmp_path)
    test, dev = logged[logged["split"] == "test"], logged[logged["split"] == "dev"]
    assert set(test["clip"]) == {target.clips[i].clip_id for i in target.indices("test")}
    assert set(dev["subject"]) == {"16"}  # the threshold is CASIA's dev
    # each clip's database by name, as a cross-domain study's scores name theirs
    assert set(dev["database"]) == {"casia"} and set(test["database"]) == {"replay-attack"}
    by_bob = bob_report(logged, bob_measure())
    assert {key: metrics[key] for key in by_bob} == by_bob
    # the cross-domain table shows it as a one-source setting (it said "no cross-domain study")
    from experiments.commands import compare

    uri = f"sqlite:///{workspace}/mlflow.db"
    assert compare.main(["--cross", "--out", str(tmp_path / "t"), "--tracking-uri", uri]) == 0
    table = pd.read_csv(tmp_path / "t" / "cross_domain.csv", index_col="head")
    assert table.loc["write-up lstm30", "C→I HTER held-out (fraction)"] == metrics["test_hter"]
    intra = [c.removesuffix(" HTER (fraction)") for c in table.columns if " HTER (" in c]
    assert intra  # the store's intra-dataset studies beside it, said to be what they are
    said = f"{', '.join(intra)}: intra-dataset, each database's own protocol, the threshold on"
    assert said in (tmp_path / "t" / "cross_domain.md").read_text()
    apcer = "(APCER: the worst species', as OULU-NPU's protocols print it)"  # not said (probe)
    assert apcer in (tmp_path / "t" / "cross_domain.md").read_text()
    assert table.loc["write-up lstm30", "C→I AUC paper (fraction)"] == metrics["test_auc"]
