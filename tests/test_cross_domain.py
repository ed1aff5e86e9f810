"""Cross-domain studies end to end: OCIM-shaped trees (tests/trees.py, each database's real file
naming, tiny videos), the one-line flags, one OCIM setting and one limited-source setting through
the feature cache and real sweeps, their figures recomputed from scores.csv by the references
(Bob for the held-out figures, scikit-learn for AUC and TPR at FPR 1 %), the cross-domain table,
and bad input refused in one line before anything is extracted.

The trees and the cache are shared with tests/test_protocols_end_to_end.py (tests/conftest.py):
the intra-dataset protocols' extraction serves the sources here too.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score, roc_curve

from core.data.dataset import load_dataset
from core.features.crop import FaceCrop
from experiments.commands import compare
from experiments.commands.study import run_sweep
from experiments.commands.sweep import parse_args
from experiments.results import cross_table
from experiments.stores.tracking import ROLE_TAG
from tests.disks import fill, tmpfs
from tests.reference import auc_agrees, bob_measure
from tests.test_evaluation import bob_report
from tests.trees import FOLDERS

FRAMES = 2
HEADS = "[dl]*"  # the dense2048 and lstm30 write-up heads: a frame and a sequence head


def databases_file(root: Path) -> Path:
    path = root / "databases.toml"
    lines = [f'{name} = "{root / folder}"' for name, folder in FOLDERS.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def flags(root: Path, *more: str) -> list[str]:
    return [
        *("--databases", str(databases_file(root)), "--cache-dir", str(root / "cache")),
        *("--frames", str(FRAMES), "--no-face-crop", "--heads", HEADS, "--trials", "2"),
        *(
            "--storage",
            f"sqlite:///{root}/optuna.db",
            "--tracking-uri",
            f"sqlite:///{root}/mlflow.db",
        ),
        *more,
    ]


PRINTED: dict[str, str] = {}  # each module fixture's sweep's console


def run(root: Path, *more: str):
    config = parse_args(flags(root, *more))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        return run_sweep(config)


def run_printed(name: str, root: Path, *more: str):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        result = run(root, *more)
    PRINTED[name] = out.getvalue()
    return result


@pytest.fixture(scope="module")
def ocim_m(database_trees):
    return run_printed("ocim-m", database_trees, "--protocol", "ocim-m")


@pytest.fixture(scope="module")
def mi_c(database_trees):
    return run_printed("mi-c", database_trees, "--protocol", "mi-c", "--target-clips", "all")


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        (
            "ocim-m",
            "cross-domain ocim-m: heads train on oulu, casia, replay-attack (train splits, {train} "
            "clips), dev ACER and the threshold on their {dev} pooled dev clips; test figures on "
            "msu (its test split, {test} clips)",
        ),
        (
            "mi-c",
            "cross-domain mi-c: heads train on msu, replay-attack (train splits, {train} clips), "
            "dev ACER and the threshold on their {dev} pooled dev clips; test figures on casia "
            "(every clip, {test} clips)",
        ),
    ],
)
def test_the_console_says_which_databases_train_and_which_is_tested(
    request, database_trees, setting, said
) -> None:
    """The trial lines said dev and test ACER with no word of which databases they are on; the
    data summaries listed every database's three splits alike (a user probe), and not how many
    clips the sources train on (probe DD): counted here from the protocols' own splits."""
    result = request.getfixturevalue(setting.replace("-", "_"))
    (run, *_) = trial_runs(database_trees, result)
    sources = {"ocim-m": ("oulu", "casia", "replay-attack"), "mi-c": ("msu", "replay-attack")}
    clips = [c for n in sources[setting] for c in load_dataset(database_trees / FOLDERS[n]).clips]
    train, dev = (sum(c.split == split for c in clips) for split in ("train", "dev"))
    expected = said.format(train=train, dev=dev, test=run.data.tags["test_clips"])
    lines = PRINTED[setting].splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("trial head"))
    assert lines[header - 1] == expected


def trial_runs(root: Path, result) -> list:
    client = MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")
    runs = client.search_runs([result.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'")
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    return runs


def logged_scores(root: Path, run, folder: Path) -> pd.DataFrame:
    client = MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")
    folder.mkdir(parents=True, exist_ok=True)
    path = client.download_artifacts(run.info.run_id, "scores.csv", str(folder))
    return pd.read_csv(path, keep_default_na=False, dtype={"subject": str, "phone": str})


def sklearn_figures(test: pd.DataFrame) -> dict[str, float]:
    labels = (test["label"] == "bonafide").astype(int).to_numpy()
    scores = test["score"].to_numpy(np.float64)
    fpr, tpr, _ = roc_curve(labels, scores)  # bona fide positive, as SSDG's and FLIP's code
    return {
        "test_auc": roc_auc_score(labels, scores),
        "test_tpr_fpr1": float(tpr[fpr <= 0.01][-1]),
        "test_tpr_fpr01": float(tpr[fpr <= 0.001][-1]),
    }


def test_ocim_m_pools_three_sources_and_tests_msu(database_trees, ocim_m, tmp_path) -> None:
    root = database_trees
    assert ocim_m.study.study_name.startswith("pad-ocim-m-random-")
    for run in trial_runs(root, ocim_m):
        tags, metrics = run.data.tags, run.data.metrics
        assert tags["evaluation"] == "cross-domain" and tags["setting"] == "ocim-m"
        assert tags["sources"] == "oulu,casia,replay-attack" and tags["target"] == "msu"
        assert tags["target_clips"] == "test" and tags["test_protocol"] == "msu"
        assert [tags[f"protocol_{n}"] for n in ("oulu", "casia", "replay-attack", "msu")] == [
            "oulu-p1",
            "casia",
            "replay-attack",
            "msu",
        ]
        assert tags["face_boxes_msu"] == tags["face_crop"] == "none"  # --no-face-crop
        # the study's own tags name every source, as its data tag does, not the first one's
        assert tags["protocol"] == "oulu-p1,casia,replay-attack"
        assert tags["layout"] == "oulu,casia,replay-attack"
        fingerprints = [tags[f"data_fingerprint_{n}"] for n in ("oulu", "casia", "replay-attack")]
        assert tags["data_fingerprint"] == ",".join(fingerprints)
        assert len(tags["data"].split(",")) == len(tags["feature_cache"].split(",")) == 3
        tested = tags["test_feature_cache"]  # the target's entry: untagged before (probe W)
        assert (
            tested not in tags["feature_cache"] and (root / "cache" / "features" / tested).is_dir()
        )
        scores = logged_scores(root, run, tmp_path / run.info.run_id)
        dev, test = scores[scores["split"] == "dev"], scores[scores["split"] == "test"]
        assert set(dev["database"]) == {"oulu", "casia", "replay-attack"}  # pooled dev
        assert set(test["database"]) == {"msu"} and set(test["subject"]) == {"1"}  # its test
        assert set(test["attack_type"]) == {"bonafide", "print", "replay"}

        by_bob = bob_report(scores, bob_measure())  # held-out: threshold from the sources' dev
        assert {key: metrics[key] for key in by_bob} == by_bob
        paper = sklearn_figures(test)  # paper-compatible, on the target's own scores
        assert auc_agrees(metrics["test_auc"], paper.pop("test_auc"))
        assert {key: metrics[key] for key in paper} == paper

        bob, threshold = bob_measure(), metrics["dev_threshold"]
        for database, rows in dev.groupby("database"):  # each source's dev at the pooled one
            bonafide = rows[rows["label"] == "bonafide"]["score"].to_numpy(np.float64)
            attacks = rows[rows["label"] == "attack"]["score"].to_numpy(np.float64)
            bpcer = bob.farfrr(attacks, bonafide, threshold)[1]
            worst = max(  # its worst species' APCER at the pooled threshold
                bob.farfrr(species["score"].to_numpy(np.float64), bonafide, threshold)[0]
                for _, species in rows[rows["label"] == "attack"].groupby("attack_type")
            )
            name = database.replace("-", "_")
            assert metrics[f"dev_bpcer_{name}"] == bpcer
            assert metrics[f"dev_acer_{name}"] == (worst + bpcer) / 2  # its own ACER (review)
    client = MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")
    (parent,) = client.search_runs([ocim_m.experiment_id], f"tags.`{ROLE_TAG}` = 'study'")
    assert parent.data.params["protocol"] == parent.data.tags["protocol"] == tags["protocol"]
    protocols = {"oulu": "oulu-p1", "casia": "casia", "replay-attack": "replay-attack"}
    clips = [len(load_dataset(root / FOLDERS[n], p).clips) for n, p in protocols.items()]
    assert int(parent.data.params["clips"]) == sum(clips)  # every source's clips


def test_limited_source_tests_every_clip_of_the_target(database_trees, mi_c, tmp_path) -> None:
    root = database_trees
    assert mi_c.study.study_name.startswith("pad-mi-c-random-")
    assert mi_c.study.study_name.endswith("-all")
    for run in trial_runs(root, mi_c):
        assert run.data.tags["sources"] == "msu,replay-attack"
        scores = logged_scores(root, run, tmp_path / run.info.run_id)
        test = scores[scores["split"] == "test"]
        assert set(test["database"]) == {"casia"} and len(test) == 12  # train and test releases
        assert set(test["subject"]) == {"1", "16", "21"}
        by_bob = bob_report(scores, bob_measure())
        assert {key: run.data.metrics[key] for key in by_bob} == by_bob


def test_every_target_clip_leaves_out_a_dev_set_of_the_databases_own(
    database_trees, ocim_m, tmp_path
) -> None:
    """As SSDG's label files: Replay-Attack's "all" is train + test, without devel/ (it was
    tested too, probe); CASIA-FASD's dev here is carved from train_release, and its all has it
    (test_limited_source_tests_every_clip_of_the_target)."""
    root, replay = database_trees, database_trees / FOLDERS["replay-attack"]
    given = ("--sources", "msu,casia", "--target", "replay-attack", "--target-clips", "all")
    with contextlib.redirect_stdout(io.StringIO()) as out:
        result = run(root, *given, "--trials", "1")
    clips = [p.relative_to(replay) for p in replay.rglob("*.mov")]
    wanted = {str(p.with_suffix("")) for p in clips if p.parts[0] in ("train", "test")}
    assert len(wanted) < len(clips)  # the tree has devel clips to leave out
    said = f"test figures on replay-attack (every clip but its own dev set, {len(wanted)} clips)"
    assert said in out.getvalue()
    client = MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")
    (run_,) = client.search_runs([result.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'")
    assert run_.data.tags["target_clips"] == "all but its own dev"
    scores = logged_scores(root, run_, tmp_path)
    test = scores[scores["split"] == "test"]
    assert set(test["database"]) == {"replay-attack"}
    assert set(test["clip"]) == wanted


def test_every_oulu_clip_is_every_clip_of_its_users_not_protocol_1s(
    database_trees, ocim_m, tmp_path
) -> None:
    """OULU-NPU's "all" was oulu-p1's clips (session 3 of the test users): SSDG tests every
    clip of Train_files and Test_files (review). A test user's session-1 clip, which oulu-p1
    leaves out, is tested; the dev users' are not; the heading does not name oulu-all."""
    oulu = tmp_path / "OULU-NPU"
    shutil.copytree(database_trees / FOLDERS["oulu"], oulu)
    (session_3,) = [p for p in oulu.rglob("1_3_36_1.avi")]  # phone 1, user 36, bona fide
    shutil.copy(session_3, session_3.with_name("1_1_36_1.avi"))  # session 1: not oulu-p1's test
    given = ("--db", f"oulu={oulu}", "--sources", "msu,casia", "--target", "oulu")
    with contextlib.redirect_stdout(io.StringIO()) as out:
        result = run(database_trees, *given, "--target-clips", "all", "--trials", "1")
    users = {p.stem: int(p.stem.split("_")[2]) for p in oulu.rglob("*.avi")}
    wanted = {stem for stem, user in users.items() if not 21 <= user <= 35}
    assert "1_1_36_1" in wanted and len(wanted) < len(users)  # dev users to leave out
    said = f"test figures on oulu (every clip but its own dev set, {len(wanted)} clips)"
    assert said in out.getvalue()
    client = MlflowClient(tracking_uri=f"sqlite:///{database_trees}/mlflow.db")
    (run_,) = client.search_runs([result.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'")
    assert run_.data.tags["protocol_oulu"] == "oulu-all"
    scores = logged_scores(database_trees, run_, tmp_path / "scores")
    test = scores[scores["split"] == "test"]
    assert {Path(clip).name for clip in test["clip"]} == wanted
    assert (
        cross_table._cross_setting(
            pd.Series({f"tags.{key}": value for key, value in run_.data.tags.items()})
        )[1]
        == "C&M→O all target clips"
    )


def test_the_cross_domain_table(database_trees, ocim_m, mi_c, tmp_path, capsys) -> None:
    root = database_trees
    uri = f"sqlite:///{root}/mlflow.db"
    assert compare.main(["--cross", "--out", str(tmp_path), "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "O&C&I→M HTER held-out" in out and "M&I→C all target clips AUC paper" in out
    assert "Not shown" not in out
    table = pd.read_csv(tmp_path / "cross_domain.csv", index_col="head")
    assert {"best dense", "best lstm", "write-up dense2048", "write-up lstm30"} <= set(table.index)
    banner = "demonstration: a random backbone, not a result about VGG-Face"
    assert set(table["demonstration"]) == {banner}  # as the .md and .html say it
    best = {r.data.tags["optuna.trial_number"]: r for r in trial_runs(root, ocim_m)}
    lstm = next(r for r in best.values() if r.data.params["family"] == "lstm")
    figures = [c for c in table.columns if c != "demonstration"]  # fractions, and say so
    assert figures and all(c.endswith(" (fraction)") for c in figures), figures
    held, paper = "O&C&I→M HTER held-out (fraction)", "O&C&I→M HTER paper (fraction)"
    assert table.loc["write-up lstm30", held] == lstm.data.metrics["test_hter"]
    assert table.loc["write-up lstm30", paper] == lstm.data.metrics["test_eer"]
    assert (tmp_path / "cross_domain.md").is_file()
    page = (tmp_path / "cross_domain.html").read_text()
    # names left, figures right: the first figure column too (it was aligned as a name)
    first = re.search(r"<tbody><tr><td>([^<]*)</td><td class=num>\d", page)
    assert first and first.group(1) in table.index
    # each cell traced to its head, trial and study (the table said none of them)
    trials = pd.read_csv(tmp_path / "cross_domain_trials.csv", index_col="head")
    column = f"O&C&I→M ({ocim_m.study.study_name})"
    number = lstm.data.tags["optuna.trial_number"]
    assert trials.loc["write-up lstm30", column] == f"lstm30 #{number}"
    chosen = ocim_m.comparison.set_index("group").loc["best dense"]
    assert trials.loc["best dense", column] == f"{chosen['head']} #{int(chosen['trial'])}"
    assert f"| best dense | {chosen['head']} #{int(chosen['trial'])} |" in out
    client = MlflowClient(tracking_uri=uri)
    logged = client.search_runs(
        [client.get_experiment_by_name("cross-domain tables").experiment_id],
        f"tags.`{ROLE_TAG}` = 'cross-table'",
    )
    assert logged and logged[0].data.tags["study.ocim-m"] == ocim_m.study.study_name
    assert logged[0].data.tags["study.mi-c all"] == mi_c.study.study_name
    study = ["--study", ocim_m.study.study_name, "--tracking-uri", uri]
    assert compare.main(study) == 0  # one study's table says what it trained and tested on
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("- ")]
    assert notes[:5] == [
        "- evaluation: cross-domain",
        "- setting: ocim-m",
        "- trained on: oulu,casia,replay-attack",
        "- tested on: msu",
        "- target clips: test",
    ]
    taken = tmp_path / "cross_domain.csv"  # a file where --out wants a folder: one line, no run
    assert compare.main(["--cross", "--out", str(taken), "--tracking-uri", uri]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --out {taken}: a file; --out names a folder"
    ]
    blocked = tmp_path / "blocked"  # a folder whose files cannot be written (root or not)
    (blocked / "cross_domain.csv").mkdir(parents=True)
    assert compare.main(["--cross", "--out", str(blocked), "--tracking-uri", uri]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"error: --out {blocked}")
    again = client.search_runs(logged[0].info.experiment_id, f"tags.`{ROLE_TAG}` = 'cross-table'")
    assert len(again) == len(logged)
    # the same table again is not another run (every rerun of a finished study logged one)
    assert compare.main(["--cross", "--out", str(tmp_path), "--tracking-uri", uri]) == 0
    said = capsys.readouterr().out.strip().splitlines()[-2]
    run_id = logged[0].info.run_id
    assert (
        said == f"the table of run {run_id} of experiment 'cross-domain tables': not logged again"
    )
    again = client.search_runs(logged[0].info.experiment_id, f"tags.`{ROLE_TAG}` = 'cross-table'")
    assert len(again) == len(logged)


@pytest.mark.usefixtures("ocim_m", "mi_c")
def test_a_cross_table_onto_a_full_disk_leaves_the_older_tables_whole(
    database_trees, tmp_path, capsys
) -> None:
    """Written over in place, a full disk left an empty cross_domain.csv (probe)."""
    uri = f"sqlite:///{database_trees}/mlflow.db"
    with tmpfs(tmp_path / "disk", 4) as disk:
        older = {name: f"older {name}".encode() for name in ("cross_domain.csv", "cross_domain.md")}
        for name, data in older.items():
            (disk / name).write_bytes(data)
        fill(disk)
        assert compare.main(["--cross", "--out", str(disk), "--tracking-uri", uri]) == 2
        assert capsys.readouterr().err.strip().splitlines() == [
            f"error: --out {disk / 'cross_domain.csv'}: No space left on device"
        ]
        assert {p.name: p.read_bytes() for p in disk.iterdir() if p.name in older} == older
        assert sorted(p.name for p in disk.iterdir()) == [
            "cross_domain.csv",
            "cross_domain.md",
            "fill",
        ]


def bad_flags(root: Path) -> list:
    casia = f"{root / 'CASIA-FASD'}"
    two = root / "two.toml"  # casia and msu only
    two.write_text(f'casia = "{casia}"\nmsu = "{root / FOLDERS["msu"]}"\n')
    typo = root / "typo.toml"  # oulu under another name, msu in capitals
    typo.write_text(f'oulu-npu = "{root / "OULU-NPU"}"\nMSU = "{root / FOLDERS["msu"]}"\n')
    (empty := root / "empty.toml").write_text("")
    (spaced := root / "spaced.toml").write_text(f'"msu " = "{root / FOLDERS["msu"]}"\n')
    shipped = root / "shipped.toml"  # the names the databases ship under (probe FF)
    shipped.write_text(f'casia = "{casia}"\nmsu_mfsd = "{root / FOLDERS["msu"]}"\n')
    return [
        (
            ["--db", f"again={casia}", "--sources", "casia,again", "--target", "msu"],
            f"databases casia and again are one folder, {casia}: each database trains or is "
            "tested, once",
        ),
        (["--sources", "msu,casia", "--target", "msu"], "database msu is the target and a source"),
        (  # a source's own training clips as the target: tested what it trained on
            ["--db", f"inner={casia}/train_release", "--sources", "casia", "--target", "inner"],
            f"database {casia}/train_release is inside database {casia}: its clips are that",
        ),
        (["--sources", ",", "--target", "msu"], "--sources ',' names no database"),
        (["--sources", "", "--target", "msu"], "--sources '' names no database"),
        (["--sources", "casia", "--target", " "], "--target ' ' names no database"),
        (
            ["--protocol", "mi-c", "--test-protocol", "casia-video"],
            "--test-protocol goes with --test-data; a cross-domain target's protocol is its",
        ),
        (["--sources", "msu,nope", "--target", "casia"], "needs database nope (given: "),
        (["--sources", "casia,msuu", "--target", "oulu"], "; msu for msuu?): give --db msuu=PATH"),
        ([], "--db/--databases name databases for a cross-domain study: add --protocol ocim (its"),
        (  # the likely name said (probe)
            ["--protocol", "ocim-m", "--databases", str(typo)],
            "--protocol ocim-m needs databases oulu, casia, replay-attack, msu (given: oulu-npu, "
            "MSU; oulu-npu for oulu?; MSU for msu?): give --db oulu=PATH",
        ),
        (
            ["--sources", "casia", "--target", "msu", "--databases", str(shipped)],
            "needs database msu (given: casia, msu_mfsd; msu_mfsd for msu?)",
        ),
        (
            ["--protocol", "mi-c", "--databases", str(spaced)],
            f"--databases {spaced}: database 'msu ': a name is ASCII letters, digits, '-', '_' "
            "and '.', beginning with a letter or digit",
        ),
        (["--db", f"={casia}"], "expected NAME=PATH"),
        (["--db", f"a,b={casia}"], "database 'a,b': a name is ASCII letters, digits"),
        (  # "give ... --databases FILE" where one was given (probe FF)
            ["--protocol", "mi-c", "--databases", str(empty)],
            f"--protocol mi-c needs databases msu, replay-attack, casia (--databases {empty} "
            f"names none): give --db msu=PATH or add msu = PATH to {empty}",
        ),
        (  # each trial refused it, after the study was made (probe FF)
            ["--protocol", "mi-c", "--fine-tune", "none,fc"],
            "--fine-tune none,fc: fine-tuning trains on one source database, and a study of "
            "several trains heads on cached fc7: drop --fine-tune",
        ),
        (  # it was dropped without a word
            ["--sources", "msu", "--target", "oulu", "--protocol", "oulu-p2"],
            "--protocol oulu-p2 chooses --data's clips; a cross-domain database's protocol is its",
        ),
        (["--protocol", "ocim-m", "--target", "oulu"], "drop --sources and --target"),
        (  # msu,$X,casia with X unset: trained on two, without a word (probe BB)
            ["--sources", "msu,,casia", "--target", "oulu"],
            "--sources 'msu,,casia' has an empty name in its list (two commas together, or one at "
            "an end)",
        ),
        (  # every setting's missing databases, under the flag's name (was the first setting's)
            ["--protocol", "ocim", "--databases", str(two)],
            "--protocol ocim needs databases oulu, replay-attack (given: casia, msu): give --db "
            "oulu=PATH",
        ),
        (["--db", f"msu={casia}:"], f"--db 'msu={casia}:': no protocol after its ':'"),
        (["--protocol", "ocim-m", "--data", "x"], "trains on named databases (--db), not --data"),
        (
            ["--protocol", "ocim", "--study", "one"],
            "--study names one study; --protocol ocim runs 4",
        ),
        (["--db", f"msu={casia}", "--db", f"msu={casia}"], "--db msu is given twice"),
        (["--db", f"msu={casia}:oulu-p9"], f"--db msu={casia}:oulu-p9: database msu: no protocol"),
        (  # another database's protocol: one warning per clip, then "no oulu clip" before
            ["--db", f"oulu={root / 'OULU-NPU'}:casia"],
            # whole ones
            "database oulu: protocol casia is casia's; oulu's: oulu-all, oulu-p1, oulu-p2",
        ),
        (
            ["--db", f"oulu={root / 'OULU-NPU'}:oulu-p3", "--protocol", "ocim-m"],
            "database oulu: protocol oulu-p3 has folds, and a cross-domain study takes a "
            "database's protocol whole: one of oulu-p1, oulu-p2, oulu-all",
        ),
        (["--protocol", "ocim-m", "--fold", "2"], "a cross-domain study takes each database's own"),
        (["--protocol", "mi-c", "--face-detector", "haar"], "no frame is cropped (--no-face-crop)"),
        (
            [
                "--protocol",
                "mi-c",
                "--target-clips",
                "all",
                "--face-crop",
                "--face-detector",
                "haar",
            ],
            None,
        ),
    ]


def test_bad_flags_are_one_line_each(database_trees, capsys) -> None:
    for more, message in bad_flags(database_trees):
        if message is None:  # fine together
            parse_args(flags(database_trees, *more))
            continue
        with pytest.raises(SystemExit) as stop:
            parse_args(flags(database_trees, *more))
        assert stop.value.code == 2
        assert message in capsys.readouterr().err.strip().splitlines()[-1], more


def test_sources_in_any_order_are_one_setting_and_one_study(database_trees, ocim_m) -> None:
    """The order of --sources pools the clips: it changed every figure, and made two studies and
    two columns of one setting (probe: C&M→I and M&C→I). A named setting's databases given as
    --sources are that setting (they made a study of their own with the same figures). A study
    of a setting given by its databases is named after them (it was ``pad-cross-...``, or the one
    source's protocol, as an intra-dataset study)."""
    from experiments.commands.study_identity import default_study_name
    from experiments.trial import search
    from experiments.trial.evaluation import prepare_settings

    def name(*more: str) -> tuple[str, list[str]]:
        config = parse_args(flags(database_trees, *more))
        settings = prepare_settings(config.features, config.evaluation)  # features cached
        names = [data.name for data in config.evaluation.sources]
        return default_study_name(config, settings[0], search.families(config.heads)), names

    pooled = name("--sources", "msu,casia", "--target", "replay-attack")
    assert pooled == name("--sources", "casia,msu", "--target", "replay-attack")
    assert pooled[1] == ["casia", "msu"]  # the benchmark's order: O, C, I, M
    assert pooled[0].startswith("pad-c_m-to-i-random-")
    assert name("--sources", "oulu", "--target", "msu")[0].startswith("pad-o-to-m-random-")
    assert name("--sources", "replay-attack,oulu,casia", "--target", "msu") == (
        ocim_m.study.study_name,
        ["oulu", "casia", "replay-attack"],
    )


def test_a_named_study_rerun_with_another_protocol_is_refused_naming_it(
    database_trees, capsys
) -> None:
    """The refusal named two hashes of clips ('e304119cd6c0:test; this run's is
    30ffcf41f799:test'), not the protocol that chose them (a user probe)."""
    from experiments.commands import sweep

    casia = database_trees / FOLDERS["casia"]
    one = flags(database_trees, "--sources", "msu", "--target", "casia", "--study", "cut")
    one[one.index("--trials") + 1] = "1"
    assert sweep.main(one) == 0
    capsys.readouterr()
    assert sweep.main([*one, "--db", f"casia={casia}:casia-cut"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: study cut was run with protocols (--protocol, --test-protocol, --db "
        "NAME=PATH:PROTOCOL) msu,casia; this run's is msu,casia-cut: rerun with the study's "
        "flags, or start another study with --study"
    )
    other = [*one]  # another target: named (it read 'other test features: the data files differ')
    other[other.index("--target") + 1] = "replay-attack"
    assert sweep.main(other) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: study cut was tested on casia; this run on replay-attack: rerun with the study's "
        "flags, or start another study with --study"
    )
    # the same folders by names of one's own, and another option: the option is said, not the
    # names (names that spell the databases' own otherwise, OULU or replay, are refused)
    renamed = database_trees / "renamed.toml"
    renamed.write_text(f'mymsu = "{database_trees / FOLDERS["msu"]}"\nmycasia = "{casia}"\n')
    other = [*one, "--databases", str(renamed), "--frames", str(FRAMES + 1)]
    other[other.index("--sources") + 1], other[other.index("--target") + 1] = "mymsu", "mycasia"
    assert sweep.main(other) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: study cut was run with other features: --frames {FRAMES}; this run's "
        f"{FRAMES + 1}: rerun with the study's flags, or start another study with --study"
    )
    # the cut said where a researcher reads the study (the console, compare, the report)
    cut = [*one[: one.index("--study")], "--study", "cut2", "--db", f"casia={casia}:casia-cut"]
    assert sweep.main(cut) == 0
    assert "test figures on casia (casia-cut) (its test split" in capsys.readouterr().out
    uri = f"sqlite:///{database_trees}/mlflow.db"
    assert compare.main(["--study", "cut2", "--tracking-uri", uri]) == 0
    assert "- protocols: casia (casia-cut), msu" in capsys.readouterr().out


def test_a_copy_of_a_database_or_the_training_set_itself_is_no_test_set(
    database_trees, tmp_path, capsys
) -> None:
    """A source copied under another name (the same clips and file sizes, new file times: ``cp
    -r``) as the target, and --test-data naming --data, inside it or a copy of it: refused in one
    line before anything is extracted (each ran, and the copy also took the name of the
    intra-dataset study; a copy with new file times was taken for another database)."""
    import shutil

    from experiments.commands import sweep

    casia = database_trees / "CASIA-FASD"
    copy = tmp_path / "casia-copy"
    shutil.copytree(casia, copy, copy_function=shutil.copyfile)  # as cp -r: new file times
    cache = tmp_path / "cache"
    argv = flags(database_trees, "--sources", "casia", "--target", "again", "--db", f"again={copy}")
    argv[argv.index("--cache-dir") + 1] = str(cache)
    assert sweep.main([*argv, "--study", "copied"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"error: database again ({copy}) holds the same clips as database casia ({casia}): each "
        "database trains or is tested, once"
    )
    plain = ["--frames", str(FRAMES), "--no-face-crop", "--cache-dir", str(cache)]
    for test_data, said in (  # as the flags are read
        (casia, f"--test-data {casia} is --data: a cross-dataset study tests another database"),
        (casia / "train_release", f"database {casia / 'train_release'} is inside database"),
    ):
        with pytest.raises(SystemExit) as stop:
            sweep.main(["--data", str(casia), "--test-data", str(test_data), *plain])
        assert stop.value.code == 2
        assert said in capsys.readouterr().err.strip().splitlines()[-1]
    assert sweep.main(["--data", str(casia), "--test-data", str(copy), *plain]) == 2
    said = f"--test-data {copy} holds the same clips as --data {casia}: a cross-dataset study"
    assert said in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (cache / "features").exists()  # nothing extracted


def test_a_partial_copy_of_a_source_is_no_target_nor_test_set(database_trees, tmp_path, capsys):
    """A database less one clip (or a clip copied into another) shares the source's clips: a
    head would be tested on clips it trained on. Refused in one line, before extraction (it ran,
    and the table showed the source's clips as a held-out target)."""
    import shutil

    from experiments.commands import sweep

    casia = database_trees / "CASIA-FASD"
    part = tmp_path / "casia-part"
    shutil.copytree(casia, part, copy_function=shutil.copyfile)
    clips = sorted(part.rglob("*.avi"))
    next(clip for clip in clips if clip.name not in ("1.avi", "2.avi", "HR_1.avi")).unlink()
    cache = tmp_path / "cache"
    argv = flags(database_trees, "--sources", "casia", "--target", "part", "--db", f"part={part}")
    argv[argv.index("--cache-dir") + 1] = str(cache)
    assert sweep.main([*argv, "--study", "part"]) == 2
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert said == (
        f"error: database part ({part}) shares {len(clips) - 1} of its {len(clips) - 1} clips "
        f"(file names and sizes) with database casia ({casia}): each database trains or is "
        "tested, once"
    )
    plain = ["--frames", str(FRAMES), "--no-face-crop", "--cache-dir", str(cache)]
    assert sweep.main(["--data", str(casia), "--test-data", str(part), *plain]) == 2
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"--test-data {part} shares {len(clips) - 1} of its" in said
    from experiments.commands import extract  # ahead of the sweep, as refused (it extracted)

    databases = ["--databases", str(databases_file(database_trees)), "--db", f"part={part}"]
    argv = [*databases, *plain, "--no-progress", "--sources", "casia", "--target", "part"]
    assert extract.main(argv) == 2
    assert f"database part ({part}) shares" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (cache / "features").exists()  # nothing extracted


def test_a_database_that_is_not_what_its_name_says_is_refused_before_extraction(
    database_trees, tmp_path, capsys
) -> None:
    """``msu`` pointed at the OULU-NPU tree: one line, nothing extracted."""
    from experiments.commands import sweep

    cache = tmp_path / "cache"
    oulu = database_trees / "OULU-NPU"
    argv = flags(database_trees, "--protocol", "mi-c", "--db", f"msu={oulu}")
    argv[argv.index("--cache-dir") + 1] = str(cache)
    code = sweep.main([*argv, "--study", "refused"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: database msu (")
    assert "its files read as the oulu layout, not msu's" in err[-1]
    from experiments.commands import extract  # the README's first step for OCIM: as refused

    code = extract.main(
        [
            *("--databases", str(databases_file(database_trees)), "--cache-dir", str(cache)),
            *("--frames", str(FRAMES), "--no-face-crop", "--no-progress"),
            *("--protocol", "mi-c", "--db", f"msu={oulu}"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "its files read as the oulu layout, not msu's" in err[-1]
    empty = tmp_path / "MSU-MFSD"  # no clip at all: MSU's naming said, not the generic layout's
    empty.mkdir()
    argv[argv.index(f"msu={oulu}")] = f"msu={empty}"
    assert sweep.main([*argv, "--study", "refused"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: database msu ({empty}): no msu clip where that layout")
    assert "real|attack/<real|attack>_client<NNN>" in err[-1]
    assert err[-1].endswith("; check the path")
    # a Replay-Attack copy one folder down: its place said (probe W: "check the path")
    nested = tmp_path / "nested"
    shutil.copytree(database_trees / "replayattack", nested / "replayattack")
    argv[argv.index(f"msu={empty}")] = f"replay-attack={nested}"
    assert sweep.main([*argv, "--study", "refused"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: database replay-attack ({nested}): "), err[-1]
    assert err[-1].endswith(f"; is the database's folder {nested / 'replayattack'}, one down?")
    # a database under another name than its layout's: a setting of its own, half letters and
    # half names in its heading (O&C→MSU was C&OULU→MSU), that no other study pooled (probe)
    argv = flags(database_trees, "--sources", "casia,OULU", "--target", "msu")
    argv[argv.index("--cache-dir") + 1] = str(cache)
    assert sweep.main([*argv, "--db", f"OULU={oulu}"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: database OULU ({oulu}): its files are oulu's: name it oulu (--db oulu=PATH, or "
        "oulu = PATH in a --databases file, and in --sources or --target), the name its "
        "settings, table headings and other studies know it by"
    )
    for other in ("replay", "I", "replayattack"):  # a prefix, a letter, Idiap's folder name
        argv = flags(database_trees, "--sources", f"casia,{other}", "--target", "msu")
        argv[argv.index("--cache-dir") + 1] = str(cache)
        assert (
            sweep.main([*argv, "--db", f"{other}={database_trees / FOLDERS['replay-attack']}"]) == 2
        )
        assert f"error: database {other} (" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (cache / "features").exists()


def test_extract_takes_the_sweeps_sources_and_target(database_trees, ocim_m, capsys) -> None:
    """A pool of databases is extracted ahead of its sweep as the README says (the flags were
    refused: 'unrecognized arguments: --sources casia --target msu')."""
    from experiments.commands import extract

    code = extract.main(
        [
            *("--databases", str(databases_file(database_trees))),
            *("--cache-dir", str(database_trees / "cache"), "--frames", str(FRAMES)),
            *("--no-face-crop", "--no-progress", "--sources", "replay-attack,casia"),
            *("--target", "msu"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    for name in ("replay-attack", "casia", "msu"):  # each database, reused
        assert f"== {name}: {database_trees / FOLDERS[name]}" in out, name
    assert out.count("reused") == 3 and "extracted in" not in out
    # a target tested whole, as the sweep tests it: OULU-NPU's every clip, not Protocol 1's
    # (--target-clips was refused: probe BB)
    code = extract.main(
        [
            *("--databases", str(databases_file(database_trees))),
            *("--cache-dir", str(database_trees / "cache"), "--frames", str(FRAMES)),
            *("--no-face-crop", "--no-progress", "--sources", "replay-attack,casia"),
            *("--target", "oulu", "--target-clips", "all"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    every = load_dataset(database_trees / FOLDERS["oulu"], "oulu-all")
    assert f"{database_trees / FOLDERS['oulu']} (oulu-all): {len(every.clips)} clips" in out


def test_a_databases_stray_file_is_said_once(database_trees, ocim_m, tmp_path, caplog) -> None:
    """Every database is read to be checked, then read again to be extracted: each of its skips
    was warned twice (probe)."""
    from experiments.commands import extract

    msu = tmp_path / "MSU-MFSD"
    shutil.copytree(database_trees / FOLDERS["msu"], msu)
    first = sorted(msu.rglob("*.mp4"))[0]
    stray = first.with_name(f"{first.stem} (1){first.suffix}")
    shutil.copy(first, stray)
    caplog.set_level(logging.WARNING)
    code = extract.main(
        [
            *("--databases", str(databases_file(database_trees)), "--db", f"msu={msu}:msu"),
            *("--cache-dir", str(database_trees / "cache"), "--frames", str(FRAMES)),
            *("--no-face-crop", "--no-progress", "--sources", "replay-attack,casia"),
            *("--target", "msu"),
        ]
    )
    assert code == 0
    said = [r.getMessage() for r in caplog.records if str(stray) in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"skipped {stray}: ")


def test_the_crop_tags_of_pooled_sources_count_every_source() -> None:
    """A cross-domain run's face_crop tags describe all its sources, not the first one."""
    oulu = FaceCrop(True, None, 20, 20)  # every clip with OULU-NPU's eye positions
    casia = FaceCrop(True, "mtcnn", 0, 12)
    replay = FaceCrop(True, "mtcnn", 8, 10)
    assert FaceCrop.pooled([oulu, casia, replay]).tags() == {
        "face_crop": "database boxes + mtcnn",
        "face_detector": "mtcnn",
        "face_boxes": "28 of 42",
    }
    assert FaceCrop.pooled([oulu]) == oulu and FaceCrop.pooled([casia]) == casia
    assert FaceCrop.pooled([FaceCrop(False), FaceCrop(False)]).tags()["face_crop"] == "none"


def test_a_setting_run_by_two_studies_shows_the_last_and_names_the_other(
    database_trees, ocim_m, mi_c, tmp_path, capsys
) -> None:
    """Studies of a setting on the same data and options (other --heads) are pooled: each
    family's best over their trials (a family only one searched had no figures, probe). Of
    studies of other options the table holds the last one run; the others are named under it,
    on the console and in the files, not dropped without a word."""
    root = database_trees
    uri = f"sqlite:///{root}/mlflow.db"
    again = run(root, "--protocol", "ocim-m", "--study", "ocim-m-again", "--heads", "conv2048")
    assert compare.main(["--cross", "--out", str(tmp_path), "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    pooled = (
        f"O&C&I→M: studies ocim-m-again, {ocim_m.study.study_name} pooled, the same data and "
        "options (other --heads, --seed or search flags): each family's best over their trials, "
        "chosen on dev."
    )
    assert pooled in out.splitlines() and "Not shown" not in out
    table = pd.read_csv(tmp_path / "cross_domain.csv", index_col="head")
    assert {"best conv", "best dense", "best lstm"} <= set(table.index)
    assert (
        table["O&C&I→M HTER held-out (fraction)"].notna().all()
    )  # every family's, from either study
    trials = pd.read_csv(tmp_path / "cross_domain_trials.csv", index_col="head")
    cells = trials[f"O&C&I→M (ocim-m-again + {ocim_m.study.study_name})"]
    assert cells["best conv"].startswith("conv") and cells["best conv"].endswith(" of ocim-m-again")
    assert cells["best lstm"].endswith(f" of {ocim_m.study.study_name}")
    other = run(
        root, "--protocol", "ocim-m", "--study", "ocim-m-other", "--train-precision", "bfloat16"
    )
    assert compare.main(["--cross", "--out", str(tmp_path), "--tracking-uri", uri]) == 0
    lines, markdown = (
        capsys.readouterr().out.splitlines(),
        (tmp_path / "cross_domain.md").read_text(),
    )
    for name in (ocim_m.study.study_name, again.study.study_name):  # other options: not pooled
        said = (
            f"Not shown: study {name}, a study of O&C&I→M on other data or options (--cross "
            "--study NAME ... chooses)."
        )
        assert said in lines and said in markdown
    # the columns it shows are of other options: said (a paper's row mixed them silently: probe)
    differ = [line for line in lines if line.startswith("The columns differ in options")]
    assert len(differ) == 1 and differ[0] in markdown
    assert differ[0].startswith(
        "The columns differ in options or data, which a paper's table holds one of: "
        "--train-precision "
        "bfloat16 in O&C&I→M; float32 in "
    ) and differ[0].endswith(
        " (each setting shows its study whose trial ran last; --cross --study NAME ... chooses)."
    )
    assert "M&I→C" in differ[0] and "face crop" not in differ[0]  # the same flags
    client = MlflowClient(tracking_uri=uri)

    def last_logged():
        return client.search_runs(
            [client.get_experiment_by_name("cross-domain tables").experiment_id],
            f"tags.`{ROLE_TAG}` = 'cross-table'",
            order_by=["attributes.start_time DESC"],
        )[0]

    assert last_logged().data.tags["study.ocim-m"] == other.study.study_name == "ocim-m-other"
    # the table shows the studies named (a smoke run had replaced a whole study's column)
    chosen = ["--study", ocim_m.study.study_name, "--study", mi_c.study.study_name]
    assert compare.main(["--cross", *chosen, "--out", str(tmp_path), "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "Not shown" not in out and "O&C&I→M HTER held-out" in out
    assert "differ in options" not in out
    assert last_logged().data.tags["study.ocim-m"] == ocim_m.study.study_name
    settings = pd.read_csv(tmp_path / "cross_domain_trials.csv", index_col="head").columns
    assert [c[: c.index("→") + 2] for c in settings] == ["O&C&I→M", "M&I→C"]
    flipped = [*chosen[2:], *chosen[:2]]  # in the order given (it was the papers' order)
    assert compare.main(["--cross", *flipped, "--out", str(tmp_path), "--tracking-uri", uri]) == 0
    settings = pd.read_csv(tmp_path / "cross_domain_trials.csv", index_col="head").columns
    assert [c[: c.index("→") + 2] for c in settings] == ["M&I→C", "O&C&I→M"]
    capsys.readouterr()
    both = ["--study", ocim_m.study.study_name, "--study", "ocim-m-again"]  # one setting's two
    assert compare.main(["--cross", *both, "--out", str(tmp_path), "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    for name in (ocim_m.study.study_name, "ocim-m-again"):  # each shown, headed with its name
        assert f"O&C&I→M [{name}] HTER held-out" in out
        assert f"O&C&I→M [{name}] ({name})" not in out  # the trials' heading: named once (probe)
        assert last_logged().data.tags[f"study.ocim-m.{name}"] == name
    trials = pd.read_csv(tmp_path / "cross_domain_trials.csv", index_col="head")
    assert {f"O&C&I→M [{name}]" for name in (ocim_m.study.study_name, "ocim-m-again")} <= set(
        trials.columns
    )
    assert "Not shown" not in out
    # a sweep's own table shows the study it ran (it showed the setting's last one run)
    from experiments.commands.study import run_command

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # finished: its closing and its table again
        assert run_command(parse_args(flags(root, "--protocol", "ocim-m"))) == 0
    assert last_logged().data.tags["study.ocim-m"] == ocim_m.study.study_name
    assert compare.main(["--cross", "--study", "nope", "--tracking-uri", uri]) == 2
    assert capsys.readouterr().err.startswith("error: no study 'nope' in ")


@pytest.mark.parametrize(
    ("sources", "target", "clips", "expected"),
    [
        ("oulu,casia,replay-attack", "msu", "test", ("s", "O&C&I→M")),
        ("casia,msu", "replay-attack", "test", ("s", "C&M→I")),
        ("msu,replay-attack", "casia", "all", ("s all", "M&I→C all target clips")),
        ("a,b", "c", "test", ("s", "a&b→c")),
        ("msu", "casia", "test", ("s casia-cut", "M→C (casia-cut)")),  # a cut is not the whole
        ("casia,msu", "replay-attack", "all but its own dev", ("s all", "C&M→I all target clips")),
        (
            "casia,msu",
            "replay-attack",
            "all",
            ("s all+dev", "C&M→I all target clips, dev too"),
        ),  # old
        (
            "casia,msu,replay-attack",
            "oulu",
            "all but its own dev",
            ("s all", "C&M&I→O all target clips"),
        ),
        ("msu", "casia", "test", ("s sources-all", "M→C all source clips")),
        (  # both taken whole, both said ("all source clips all clips" said neither: probe DD)
            "msu,replay-attack",
            "casia",
            "all but its own dev",
            ("s sources-all all", "M&I→C all source clips, all target clips"),
        ),
    ],
)
def test_a_settings_columns_are_headed_as_papers_head_them(sources, target, clips, expected):
    """From a trial run's tags: the databases' letters, names without one as they are, and
    every target clip set apart: OULU-NPU's every clip is oulu-all's, not named; runs of
    before a database's own dev set was left out of "all" in columns of their own."""
    tags = {"setting": "s", "sources": sources, "target": target, "target_clips": clips}
    tags |= {"source_clips": "all"} if "source" in expected[1] else {}
    tags |= {"protocol_casia": "casia-cut"} if "cut" in expected[1] else {}
    tags |= {"protocol_oulu": "oulu-all"} if target == "oulu" else {}
    run = pd.Series({f"tags.{key}": value for key, value in tags.items()})
    assert cross_table._cross_setting(run) == expected


@pytest.fixture
def tagged_store(tmp_path, monkeypatch, request):
    """A real MLflow store in ``tmp_path``; ``log(name, tags)`` makes study ``name``'s experiment
    and one finished trial run tagged as the sweep tags it, plus ``tags``."""
    import mlflow

    from experiments.stores import tracking

    monkeypatch.chdir(tmp_path)
    request.addfinalizer(partial(mlflow.set_tracking_uri, mlflow.get_tracking_uri()))
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")

    def log(name: str, tags: dict[str, str]) -> None:
        experiment_id = tracking.use_experiment(name)
        tags = {
            tracking.STUDY_TAG: name,
            tracking.ROLE_TAG: "trial",
            tracking.TRIAL_TAG: "0",
            "synthetic": "false",
            **tags,
        }
        tags = {tag: value for tag, value in tags.items() if value is not None}  # None: untagged
        with mlflow.start_run(experiment_id=experiment_id, tags=tags):
            mlflow.log_params({"head": "dense2048", "family": "dense", "output": "softmax"})
            mlflow.log_metrics({"dev_acer": 0.125, "test_hter": 0.25})

    return log


def test_studies_whose_columns_would_share_a_heading_are_told_apart(tagged_store):
    """O→C from OULU-NPU Protocol 1 and from Protocol 2, and O→C tested on CASIA-FASD's warped
    subset: three settings, one heading, and the table kept one of them without a word (a real
    MLflow store, a finished trial run of each study as the sweep tags it)."""
    for trained, tested in (
        ("oulu-p1", "casia"),
        ("oulu-p2", "casia"),
        ("oulu-p1", "casia-warped"),
    ):
        tags = {"evaluation": "cross-dataset", "protocol": trained, "test_protocol": tested}
        tagged_store(f"{trained}-to-{tested}", tags)
    shown = cross_table.studies()
    # a database taken by another protocol than its first is named: no cut passes as the whole
    assert sorted(shown["label"]) == ["O→C", "O→C (casia-warped)", "O→C (oulu-p2)"]
    assert shown.attrs["not shown"] == []
    # one fold of a protocol of folds is not the protocol: it hid the six folds' study
    for name, fold in (("p4-all", "all"), ("p4-fold3", "3")):
        tagged_store(name, {"evaluation": "intra-dataset", "protocol": "oulu-p4", "fold": fold})
    shown = cross_table.studies()
    assert {"oulu-p4", "oulu-p4 fold 3"} <= set(shown["label"])
    assert shown.attrs["not shown"] == []


def test_studies_of_data_of_no_named_database_are_told_apart_by_folder(tagged_store, tmp_path):
    """Two folders of the generic layout: data->data2 and data2->data are opposite experiments,
    and the intra-dataset studies of each are two; the table showed one of each pair, headed
    'generic→generic' and 'generic', and named the other 'an older run' (a user probe)."""
    data, data2 = str(tmp_path / "data"), str(tmp_path / "data2")
    studies = {
        "data-to-data2": {"evaluation": "cross-dataset", "data": data, "test_data": data2},
        "data2-to-data": {"evaluation": "cross-dataset", "data": data2, "test_data": data},
        "data": {"evaluation": "intra-dataset", "data": data},
        "data2": {"evaluation": "intra-dataset", "data": data2},
        "casia": {"evaluation": "intra-dataset", "data": data, "protocol": "casia"},
    }
    for name, tags in studies.items():
        tagged_store(name, {"protocol": "generic", "test_protocol": "generic", **tags})
    shown = cross_table.studies()
    assert dict(zip(shown["study"], shown["label"], strict=True)) == {
        "data-to-data2": "data→data2",
        "data2-to-data": "data2→data",
        "data": "generic:data",
        "data2": "generic:data2",
        "casia": "casia",  # a named database by its protocol, wherever its folder
    }
    assert shown.attrs["not shown"] == []


def test_cross_studies_of_synthetic_data_are_said_to_be_left_out_and_shown_when_chosen(
    tagged_store,
) -> None:
    """The table left out studies of synthetic data without a word: 'no cross-domain or
    cross-dataset study with a finished trial yet' after one had finished, and compare --cross
    --study NAME said the same; runs without the synthetic tag were taken as synthetic too (a
    user probe)."""
    cross = {"evaluation": "cross-dataset", "protocol": "casia", "test_protocol": "msu"}
    tagged_store("demo-cross", {**cross, "synthetic": "true"})
    tagged_store("demo", {"evaluation": "intra-dataset", "protocol": "casia", "synthetic": "true"})
    with pytest.raises(LookupError) as nothing:
        cross_table.log_cross_table()
    assert str(nothing.value).endswith(
        " but 1 study on synthetic data, a demonstration (--cross --study NAME shows it: "
        "demo-cross)"
    )
    assert list(cross_table.studies(["demo-cross"])["study"]) == ["demo-cross"]  # chosen: shown
    ran = cross_table.studies(preferred=["demo-cross"])  # as the sweep that ran it shows it
    assert list(ran["study"]) == ["demo-cross"] and ran.attrs["synthetic"] == []
    tagged_store("untagged", {**cross, "protocol": "oulu-p1", "synthetic": None})
    shown = cross_table.studies()
    assert list(shown["study"]) == ["untagged"] and shown.attrs["synthetic"] == ["demo-cross"]
    lines = cross_table.log_cross_table()
    said = "Left out: study demo-cross, on synthetic data, a demonstration (--cross --study "
    assert said + "demo-cross shows it)." in lines
    # beside a real setting, the warning names its column (it read as about the whole table)
    lines = cross_table.log_cross_table(chosen=["demo-cross", "untagged"])
    assert "**C→M: demonstration: synthetic data, not a result about VGG-Face**" in lines


def test_a_db_flag_of_a_name_the_file_has_keeps_its_protocol(database_trees, tmp_path) -> None:
    """``--db msu=COPY`` beside a databases file giving msu ``protocol = "msu"`` dropped the
    protocol, and the copy's stray file was refused with a fix that named the file's protocol
    line the user had written (probe)."""
    msu, casia = database_trees / FOLDERS["msu"], database_trees / "CASIA-FASD"
    listed = tmp_path / "listed.toml"
    listed.write_text(f'msu = {{ path = "{msu}", protocol = "msu" }}\ncasia = "{casia}"\n')
    given = ["--databases", str(listed), "--sources", "msu", "--target", "casia"]
    config = parse_args([*given, "--db", f"msu={msu}/", "--db", f"casia={casia}:casia-cut"])
    (source,) = config.evaluation.sources
    assert source.options.protocol == "msu"  # the file's, kept
    assert config.evaluation.target.options.protocol == "casia-cut"  # the flag's own
    config = parse_args([*given, "--db", f"msu={msu}:auto"])  # said: the file's is overridden
    assert config.evaluation.sources[0].options.protocol == "auto"  # it read as none (review)


def test_columns_on_other_copies_of_a_database_are_said(tagged_store):
    """An OCIM table showed O&C&I→M trained on one copy of the four databases beside columns
    of another, without a word (probe W): each database's data, by protocol, is compared across
    the shown columns like the options."""
    one, two = "a" * 64, "b" * 64
    names = ("oulu", "casia", "replay-attack", "msu")
    protocols = {
        "oulu": "oulu-p1",
        "casia": "casia",
        "replay-attack": "replay-attack",
        "msu": "msu",
    }
    for setting, copy_of_oulu in (("ocim-m", two), ("ocim-c", one), ("ocim-i", one)):
        target = {"m": "msu", "c": "casia", "i": "replay-attack"}[setting[-1]]
        sources = [n for n in names if n != target]
        tags = {"evaluation": "cross-domain", "setting": setting, "target": target}
        tags |= {"sources": ",".join(sources)}
        tags |= {f"protocol_{n}": protocols[n] for n in names}
        tags |= {f"data_fingerprint_{n}": one for n in names} | {
            "data_fingerprint_oulu": copy_of_oulu
        }
        tagged_store(setting, tags)
    note = cross_table.options_differ(cross_table.studies())
    assert note is not None and "oulu's data (oulu-p1) bbbbbbbbbbbb in O&C&I→M; " in note, note
    assert "aaaaaaaaaaaa in O&I&M→C, O&C&M→I" in note, note
    assert "casia's data" not in note and "msu's data" not in note  # the same copy in each


def test_the_ocim_protocol_runs_its_four_settings_then_their_table(
    database_trees, tmp_path, capsys
) -> None:
    """--protocol ocim: the four leave-one-out settings in turn, one study each, then their
    table. Each database is summarised in full once, then by its splits in a line (each
    setting had printed all four in full: 16 summaries, probe W)."""
    from experiments.commands import sweep

    stores = (
        "--storage",
        f"sqlite:///{tmp_path}/o.db",
        "--tracking-uri",
        f"sqlite:///{tmp_path}/m.db",
    )
    one = ("--trials", "1", "--heads", "dense2048")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        assert sweep.main(flags(database_trees, "--protocol", "ocim", *one, *stores)) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"^\s+split\s+label\s+species\s+clips$", out, re.M)) == 4, out
    for folder in FOLDERS.values():  # in full once, then a line for each later setting
        lines = [
            line for line in out.splitlines() if line.startswith(f"{database_trees / folder} (")
        ]
        assert len(lines) == 4 and all(" train: " in line for line in lines[1:]), lines
    names = {s.study_name for s in optuna.get_all_study_summaries(stores[1])}
    assert {name.split("-")[1] for name in names} == {"ocim"} and len(names) == 4, names
    # a later setting's new study was said to differ from the setting before it, as asked
    assert len(re.findall(r"^new study pad-ocim-", out, re.M)) == 4, out
    assert "differs from study" not in out, out
    for label in ("O&C&I→M", "O&M&I→C", "O&C&M→I", "I&C&M→O"):
        assert f"| {label} HTER held-out |" in out, out[-3000:]
    # the list of studies says each one's setting (their names' digests alone: probe W)
    assert compare.main(["--list", "--tracking-uri", stores[3]]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    column = header.split().index("setting") - len(header.split())  # from the end: a date has
    assert sorted(row.split()[column] for row in rows) == ["ocim-c", "ocim-i", "ocim-m", "ocim-o"]


def test_sources_trained_on_every_clip_but_dev_as_ssdg_trains(
    database_trees, ocim_m, tmp_path, capsys
) -> None:
    """SSDG's label files (which the OCIM papers reuse) train each source on every clip but its
    own dev set; a source here trained on its train split alone, with no way to match them
    (probe BB): --source-clips all trains on train and test, OULU-NPU's every session, and its
    study, tags, console and table columns say so."""
    root = database_trees
    stores = ("--storage", f"sqlite:///{tmp_path}/optuna.db")
    stores += ("--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db")  # the module's store apart
    result = run_printed(
        "sources-all",
        root,
        "--protocol",
        "ocim-m",
        "--source-clips",
        "all",
        "--trials",
        "1",
        *stores,
    )
    assert result.study.study_name.startswith("pad-ocim-m-random-")
    assert result.study.study_name.endswith("-sources-all")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    (trial,) = client.search_runs([result.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'")
    # every clip but dev, counted from the trees' files by each database's rule (the layouts'
    # own splits counted it, which moved with them: review): OULU-NPU's Train_files and
    # Test_files, every session; CASIA-FASD but train_release subjects 16-20 (Bob's grandtest dev);
    # Replay-Attack's train/ and test/, not devel/
    oulu, casia = root / FOLDERS["oulu"], root / FOLDERS["casia"]
    replay = root / FOLDERS["replay-attack"]
    every = {
        "oulu": [p for p in oulu.rglob("*.avi") if p.parent.name != "Dev_files"],
        "casia": [
            p
            for p in casia.rglob("*.avi")
            if not (p.parent.parent.name == "train_release" and 16 <= int(p.parent.name) <= 20)
        ],
        "replay-attack": [
            p for p in replay.rglob("*.mov") if p.relative_to(replay).parts[0] != "devel"
        ],
    }
    dev = [*oulu.glob("Dev_files/*.avi"), *casia.glob("train_release/16/*.avi")]
    dev += replay.glob("devel/**/*.mov")
    assert all(every.values()) and len(dev) == 6 + 4 + 4  # the rule leaves clips out
    assert trial.data.tags["source_clips"] == "all"
    assert trial.data.tags["protocol_oulu"] == "oulu-all"
    whole = sum(map(len, every.values()))
    assert int(trial.data.tags["train_clips"]) == whole
    (default,) = trial_runs(root, ocim_m)[:1]
    firsts = {"oulu": "oulu-p1", "casia": "casia", "replay-attack": "replay-attack"}
    trained = [load_dataset(root / FOLDERS[n], p).clips for n, p in firsts.items()]
    assert int(default.data.tags["train_clips"]) == sum(
        c.split == "train" for clips in trained for c in clips
    )
    said = f"heads train on oulu, casia, replay-attack (every clip but dev, {whole} clips)"
    assert said in PRINTED["sources-all"]
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_printed("mi-c-apart", root, "--protocol", "mi-c", "--trials", "1", *stores)
    assert compare.main(["--cross", "--tracking-uri", uri, "--out", str(tmp_path / "t")]) == 0
    header = next(
        line for line in capsys.readouterr().out.splitlines() if line.startswith("| head")
    )
    # in the papers' order, beside its setting's place (it came after every plain setting)
    assert header.index("O&C&I→M all source clips HTER held-out") < header.index("M&I→C HTER")
    # a source given a protocol that keeps part of OULU-NPU is not trained whole: refused (it was
    # trained on Protocol 1's train and test, and said to be whole: review)
    from experiments.commands import sweep

    oulu = f"oulu={root / FOLDERS['oulu']}:oulu-p1"
    argv = flags(root, "--protocol", "ocim-m", "--source-clips", "all", "--db", oulu, *stores)
    assert sweep.main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: database oulu: --source-clips all trains on every clip but its dev split, and "
        "protocol oulu-p1 keeps part of it: drop the protocol (or give oulu-all)"
    )
