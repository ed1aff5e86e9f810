"""The study's comparison as the parent run, the report and the console show it.

Real trial runs in a real MLflow store (SQLite, local artifacts) in a temporary folder, each
with a scores.csv and the figures :func:`pad_report` computes from it, under a parent run, for a
real Optuna study; then the real ``log_comparison`` on that parent run. No network, no mocks:
two studies, a 12-trial demonstration (synthetic data, random backbone) and a multi-objective
study on "real" data whose trials ran twice each (mean ± std).
"""

from __future__ import annotations

import base64
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zlib
from fractions import Fraction
from functools import partial
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import optuna
import pandas as pd
import plotly.offline
import pytest
from mlflow.tracking import MlflowClient

from core.backbone.spec import PARAMS_TO_FC7
from core.words import percent
from experiments.commands import compare, predict
from experiments.metrics import ScoreSet, is_species_figure, pad_report, summarise
from experiments.results import console, parent_run, tables
from experiments.stores import runs_table, tracking
from tests.disks import fill, read_only, tmpfs
from tests.servers import CHROMIUM_FLAGS

SPECIES = ("print", "replay", "photo")
# head, family, head params, how well it separates, baseline, how the trial ends. The frame
# families never see that the "photo" is still; the sequence families do.
DEMO_TRIALS = (
    ("conv4096", "conv", 16_789_506, 1.2, "conv4096", "complete"),
    ("conv2048", "conv", 8_394_754, 1.0, "conv2048", "complete"),
    ("dense2048", "dense", 8_394_754, 0.9, "dense2048", "complete"),
    ("convlstm2049", "convlstm", 50_376_716, 1.4, "convlstm2049", "complete"),
    ("lstm30", "lstm", 495_302, 1.1, "lstm30", "complete"),
    ("conv1024", "conv", 4_197_378, 1.5, None, "complete"),
    ("dense512", "dense", 2_098_690, 0.4, None, "complete"),
    ("lstm64", "lstm", 1_065_090, 2.0, None, "complete"),
    ("lstm16", "lstm", 265_250, 0.6, None, "complete"),
    ("convlstm512", "convlstm", 9_439_234, 1.8, None, "complete"),
    ("dense4096", "dense", 16_785_410, 0.2, None, "pruned"),
    ("conv256", "conv", 1_049_346, 0.0, None, "failed"),
)
REAL_TRIALS = DEMO_TRIALS[:5]
SEQUENCE = ("lstm", "convlstm")
NAMES = ("demo", "real")
REPO = Path(__file__).resolve().parents[1]


def split_scores(rng, separation: float, sees_motion: bool) -> ScoreSet:
    """16 bona fide clips and 8 of each species; the still photo fools a frame head."""
    labels = ["bonafide"] * 16 + [kind for kind in SPECIES for _ in range(8)]
    centre = {"bonafide": separation / 2, "print": -separation / 2, "replay": -separation / 2}
    centre["photo"] = centre["print"] if sees_motion else separation / 2 - 0.3
    logits = np.array([centre[kind] for kind in labels]) + rng.normal(0, 0.6, len(labels))
    scores = 1 / (1 + np.exp(-logits))
    return ScoreSet(scores, np.array([k == "bonafide" for k in labels]), np.array(labels))


def scores_rows(split: str, scores: ScoreSet, repeat: int) -> list[dict]:
    return [
        {
            "split": split,
            "clip": f"{split}-{i}",
            "subject": f"client{i % 8:03d}",
            "label": "bonafide" if kind == "bonafide" else "attack",
            "attack_type": kind,
            "repeat": repeat,
            "score": float(score),
        }
        for i, (kind, score) in enumerate(zip(scores.attack_types, scores.scores, strict=True))
    ]


def log_trial(study, spec, repeats: int, tags: dict[str, str], seed: int) -> None:
    """One trial as the sweep runs it: an Optuna trial and its nested MLflow run."""
    head, family, params_head, separation, baseline, end = spec
    rng = np.random.default_rng(seed)
    study.enqueue_trial({"head": family, "dropout": 0.1 * (seed % 5), "learning_rate": 1e-3})
    trial = study.ask()
    trial.suggest_categorical("head", ["conv", "dense", "lstm", "convlstm"])
    trial.suggest_float("dropout", 0.0, 0.5)
    trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True)
    run_tags = {tracking.STUDY_TAG: study.study_name, tracking.TRIAL_TAG: str(trial.number)}
    run_tags |= tags | ({"vggface_heads.baseline": baseline} if baseline else {})
    try:
        with tracking.run(f"{trial.number}-{head}", "trial", run_tags, nested=True):
            mlflow.log_params({"head": head, "family": family, "output": "softmax"})
            if end == "failed":
                raise RuntimeError("loss diverged")
            if end == "pruned":
                raise optuna.TrialPruned("pruned at epoch 3")
            reports, rows = [], []
            for repeat in range(1, repeats + 1):
                dev, test = (split_scores(rng, separation, family in SEQUENCE) for _ in "dt")
                reports.append(pad_report(dev, test))
                rows += scores_rows("dev", dev, repeat) + scores_rows("test", test, repeat)
            metrics = summarise(reports)
            sizes = {"params_head": params_head, "params_total": PARAMS_TO_FC7 + params_head}
            mlflow.log_metrics({**metrics, **sizes, "settings": repeats})
            with tempfile.TemporaryDirectory() as folder:
                pd.DataFrame(rows).to_csv(Path(folder) / "scores.csv", index=False)
                mlflow.log_artifact(str(Path(folder) / "scores.csv"))
    except optuna.TrialPruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return
    except RuntimeError:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    for key, value in {"head": head, "family": family, **sizes}.items():
        trial.set_user_attr(key, value)
    values = [metrics["dev_acer"], sizes["params_total"]]  # --multi-objective: both
    study.tell(trial, values[: len(study.directions)])


def build_study(root: Path, name: str, trials, demo: bool, repeats: int = 1, objectives: int = 1):
    """A finished study in the store at ``root``: its trial runs, then the comparison logged on
    its parent run. Returns (study, experiment id, parent run id, the comparison table)."""
    MlflowClient().create_experiment(name, artifact_location=str(root / "artifacts" / name))
    experiment_id = tracking.use_experiment(name)
    flag = str(demo).lower()
    tags = {"synthetic": flag, "random_weights": flag, "evaluation": "intra-dataset"}
    tags |= {"keras_backend": "jax" if demo else "tensorflow", "extraction_precision": "float32"}
    if repeats > 1:
        tags["repeats"] = str(repeats)
    study = optuna.create_study(study_name=name, directions=["minimize"] * objectives)
    with tracking.run(f"study {name}", "study", {tracking.STUDY_TAG: name, **tags}) as parent:
        for seed, spec in enumerate(trials):
            log_trial(study, spec, repeats, tags, seed)
        table = parent_run.log_comparison(study, experiment_id, name)
    return study, experiment_id, parent.info.run_id, table


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("comparison")
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    try:
        with pytest.MonkeyPatch.context() as patch:  # the artifacts in root/mlruns
            patch.chdir(root)
            studies = {
                "demo": build_study(root, "demo", DEMO_TRIALS, demo=True),
                "real": build_study(root, "real", REAL_TRIALS, demo=False, repeats=2, objectives=2),
            }
        yield {"root": root, **studies}
    finally:
        mlflow.set_tracking_uri(before)


def artifact(run_id: str, path: str, folder: Path) -> Path:
    return Path(
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(folder))
    )


def trial_runs(experiment_id: str) -> pd.DataFrame:
    runs = mlflow.search_runs([experiment_id], "tags.`vggface_heads.role` = 'trial'")
    return runs[runs["status"] == "FINISHED"]


@pytest.fixture(scope="module")
def reports(store, tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("reports")
    return {
        name: artifact(store[name][2], "report.html", folder / name).read_text() for name in NAMES
    }


def packed_scripts(page: str) -> list[str]:
    """The plotly.js payloads of a page, unpacked (raw DEFLATE, base64)."""
    opening = r"<script type='application/octet-stream' id='plotly-js'[^>]*>"
    found = re.findall(opening + r"([^<]*)<", page)
    return [zlib.decompress(base64.b64decode(payload), -15).decode() for payload in found]


def test_report_prints_numbers_as_papers_do(store, reports) -> None:
    page = reports["demo"].split("<h2>Figures")[0]  # the tables (figures hold raw numbers)
    assert not re.search(r"\d\.0000\b", page)  # no count printed as 134755846.0000
    best = tables.best_per_family(store["demo"][3])
    lstm = best[best["family"] == "lstm"].iloc[0]
    for count in (lstm["params_head"], lstm["params_total"]):
        assert f">{count:,}<" in page and str(count) not in page.replace(lstm["run_id"], "")
    runs = trial_runs(store["demo"][1]).set_index("run_id")
    row = runs.loc[lstm["run_id"]]
    assert f"<td class=num>{100 * row['metrics.dev_acer']:.1f}%<" in page  # figures right
    assert f">{row['metrics.test_auc']:.3f}<" in page  # AUC: a plain number
    low, high = row["metrics.test_hter_ci_low"], row["metrics.test_hter_ci_high"]
    assert f">[{100 * low:.1f}%, {100 * high:.1f}%]<" in page
    assert lstm["run_id"] in page  # the run ids belong in the report

    real = reports["real"]  # two repeats: mean ± std in percentage points
    row = trial_runs(store["real"][1]).iloc[0]
    acer, spread = row["metrics.test_acer"], row["metrics.test_acer_std"]
    assert f">{100 * acer:.1f} ± {100 * spread:.1f}%<" in real


def test_report_carries_plotly_once_and_is_small(reports) -> None:
    plotlyjs = plotly.offline.get_plotlyjs()
    # scatter, distributions, ROC, Optuna's history and importance (and its Pareto front)
    for name, count in (("demo", 5), ("real", 6)):
        page = reports[name]
        unpacked = packed_scripts(page)
        assert unpacked == [plotlyjs]
        assert (page + unpacked[0]).count("* plotly.js v") == 1  # the library's own banner
        assert "cdn.plot.ly" not in page and "<script src" not in page  # opens offline
        # Before: plotly.js inlined as shipped, so every report was larger than plotly.js.
        assert len(page.encode()) < 0.5 * len(plotlyjs.encode())
        figures = re.findall(r"<script type='application/json' class='figure'", page)
        assert len(figures) == count
        # rates never below 0: every point at 50 % drew an axis from -50 % to 150 %
        assert page.count('"rangemode":"tozero"') == 1  # the distributions'
        # the scatter's from a little below 0: a trial at 0 % was cut in half (probe)
        assert re.search(r'"range":\[-0\.0[0-9]+,', page)
    assert "Pareto-front Plot" in reports["real"]  # --multi-objective
    assert "Optimization history: dev ACER of the " in reports["demo"]
    assert re.search(r"Hyperparameter importances over the \d+ complete trials", reports["demo"])


def test_report_draws_every_figure_in_a_browser(store, tmp_path) -> None:
    assert shutil.which("chromium"), "needs Debian's chromium (.ci/run installs it)"
    page = artifact(store["demo"][2], "report.html", tmp_path)
    profile = tmp_path / "profile"
    dom = subprocess.run(
        [
            "chromium",
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    assert "demonstration: synthetic data and a random backbone" in dom
    assert 'id="plotly-status"' not in dom  # removed once every figure is drawn
    drawn = re.findall(r"<div class=\"plot[^\"]*\" id=\"plot-\d+\"[^>]*>.{0,400}main-svg", dom)
    assert len(drawn) == 5


def test_the_report_counts_the_trials_as_optuna_ended_them(store, reports) -> None:
    """It read '6 finished trial runs (6 complete, 6 pruned, 0 failed in Optuna)': the runs
    with figures beside every ended trial, as if they contradicted each other (a user probe)."""
    ends = [spec[-1] for spec in DEMO_TRIALS]
    complete, pruned, failed = (ends.count(end) for end in ("complete", "pruned", "failed"))
    said = (
        f"{len(ends)} trials ended ({complete} complete, {pruned} pruned, {failed} failed); the "
        f"tables rank the {complete} complete ones."
    )
    assert said in reports["demo"]


def test_banner_follows_the_trial_runs_tags(store, reports, capsys) -> None:
    banner = "demonstration: synthetic data and a random backbone, not a result about VGG-Face"
    assert reports["demo"].index(banner) < reports["demo"].index("<h1>")  # the page opens with it
    assert "demonstration" not in reports["real"]
    notes = {name: mlflow.get_run(store[name][2]).data.tags[parent_run.NOTE_TAG] for name in NAMES}
    assert notes["demo"].startswith(f"**{banner}**") and "demonstration" not in notes["real"]
    uri = mlflow.get_tracking_uri()
    assert compare.main(["--study", "demo", "--tracking-uri", uri]) == 0
    assert banner in capsys.readouterr().out
    assert compare.main(["--study", "real", "--tracking-uri", uri]) == 0
    assert "demonstration" not in capsys.readouterr().out


@pytest.mark.parametrize("name", NAMES)
def test_compare_ends_as_the_sweep_does(store, capsys, name) -> None:
    """compare.py printed the table alone: not the sweep's best head and Pareto front (of the
    multi-objective study too), nor what test_eer and test_bpcer20 are (probe Z)."""
    study, _, _, table = store[name]
    said = " ".join(" ".join(console.verdict(table, study, None)).split())  # lines unwrapped
    assert compare.main(["--study", name, "--tracking-uri", mlflow.get_tracking_uri()]) == 0
    out = capsys.readouterr().out
    best, pareto = (line.removesuffix(".") for line in out.splitlines()[-2:])
    assert best.startswith("best head by dev ACER: ") and pareto.startswith("Pareto front (")
    assert said.startswith(f"{best} {pareto}"), (said, best, pareto)
    assert "test_eer, the test set's own EER" in out and "test_bpcer20: test BPCER" in out
    assert "fewer than 20 dev attacks, none: then test_bpcer100's figure" in out  # probe Z
    # the note on means and stds where there are several settings only (it was always said)
    assert ("mean ± its sample std" in out) == (name == "real")  # real: --repeats 2


@pytest.mark.parametrize("flags", [["--list"], ["--study", "demo"]])
def test_a_reader_that_stops_early_ends_compare_quietly(store, flags) -> None:
    """``compare.py --list | true`` said "error: --out None: Broken pipe" and ended 2, though no
    --out was given (probe AA): the reader has what it wanted."""
    command = [sys.executable, str(REPO / "experiments" / "compare.py"), *flags]
    command += ["--tracking-uri", f"sqlite:///{store['root']}/mlflow.db"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    child.stdout.close()  # gone before the table is printed
    err = child.stderr.read().decode()
    assert child.wait(timeout=300) == 0, err
    assert "Broken pipe" not in err and "Traceback" not in err and "--out" not in err, err


@pytest.mark.parametrize("flags", [["--list"], ["--study", "demo"]])
def test_a_full_stdout_is_said_as_such(store, flags) -> None:
    """Redirected to a file on a full disk, compare.py said "error: --out None: No space left on
    device" (probe). /dev/full answers every write with ENOSPC."""
    command = [sys.executable, str(REPO / "experiments" / "compare.py"), *flags]
    command += ["--tracking-uri", f"sqlite:///{store['root']}/mlflow.db"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with open("/dev/full", "w") as full:
        done = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, env=env, text=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == ["error: stdout cannot be written (No space left on device)"]


@pytest.mark.parametrize("disk", ["read-only", "full"])
def test_a_store_that_cannot_be_read_where_it_is_is_one_line(store, tmp_path, capsys, disk):
    """An archived study (a read-only folder) or a store on a full disk: compare and predict
    ended in MLflow's traceback, "unable to open database file" or "disk I/O error" (probe):
    SQLite reads a store in WAL mode with a file it makes beside it."""
    with tmpfs(tmp_path / "disk", 20) as folder:
        shutil.copy(store["root"] / "mlflow.db", folder)
        if disk == "read-only":
            read_only(folder)
            why = f"{folder}: Read-only file system"
            fix = "copy it, with its artifacts, where that can be written"
        else:
            fill(folder)
            why, fix = "its disk is full", "free space on its disk, or copy it with its artifacts"
        uri = f"sqlite:///{folder}/mlflow.db"
        for command, flags in ((compare, ["--list"]), (predict, ["--best", str(tmp_path)])):
            assert command.main([*flags, "--tracking-uri", uri]) == 2
            assert capsys.readouterr().err.splitlines() == [
                f"error: --tracking-uri {uri}: cannot be read where it is ({why}); SQLite reads "
                f"it with a file it makes beside it: {fix} (scripts/move_store.py)"
            ]


def test_a_trial_line_keeps_its_columns_when_three_species_tie(capsys) -> None:
    """ "photo/print/replay 100.0%" pushed the time out of its column (probe AA)."""
    from experiments.config import TrialConfig

    config = TrialConfig(head="lstm76", family="lstm", output="softmax", fine_tune="fc")
    figures = {"params_head": 1_265_806, "dev_acer": 0.5, "test_acer": 0.5, "test_hter": 0.5}
    species = {f"test_apcer_{kind}": 1.0 for kind in ("photo", "print", "replay")}
    console.trial_line(1, config, figures | species, 49.8)
    console.trial_line(2, config, figures | species | {"test_apcer_photo": 0.5}, 9.8)
    tied = {"test_apcer_photo": 0.05, "test_apcer_print": 0.05}
    console.trial_line(3, config, figures | tied, 9.8)
    three, two, short = capsys.readouterr().out.splitlines()
    assert len(three) == len(two) == len(short) == len(console.TRIAL_HEADER)
    assert "% 3 species 100.0%  " in three and "% 2 species 100.0%  " in two
    assert "% photo/print 5.0%  " in short  # named where the column holds them
    console.trial_line(4, config, figures | {"test_apcer_printed_photo": 1.0}, 3.0)  # one, long
    (long,) = capsys.readouterr().out.splitlines()
    assert len(long) == len(console.TRIAL_HEADER) and "% printed_… 100.0%  " in long
    assert three.endswith("49.8s") and two.endswith(" 9.8s")


def test_a_trial_lines_test_figures_say_so_and_carry_their_spread(capsys) -> None:
    """The header's "HTER" and "worst attack" were read as the dev set's (probe Z), and under
    --repeats the HTER had no ± where the ACERs beside it had: each figure now ends under its
    heading's last letter, the test ones headed "test", with its spread where there is one."""
    from experiments.config import TrialConfig

    config = TrialConfig(head="dense2048", family="dense", output="sigmoid")
    figures = {"params_head": 10_493_953, "dev_acer": 0.0625, "test_acer": 0.3125}
    figures |= {"test_hter": 0.28125, "test_apcer_photo": 0.75}
    spreads = {"dev_acer_std": 0.125, "test_acer_std": 0.125, "test_hter_std": 0.125}
    for number, outcome in enumerate((figures, figures | spreads)):
        console.trial_line(number, config, outcome, 12.5)
    plain, spread = capsys.readouterr().out.splitlines()
    header = console.TRIAL_HEADER
    assert "test HTER" in header and "worst test attack" in header
    assert len(header) <= 100 and len(plain) == len(spread) == len(header)
    for heading, plain_value, spread_value in (
        ("dev ACER", "6.3%", "6.3±12.5%"),
        ("test ACER", "31.3%", "31.3±12.5%"),
        ("test HTER", "28.1%", "28.1±12.5%"),
    ):
        end = header.index(heading) + len(heading)
        assert plain[:end].endswith(f" {plain_value}"), (heading, plain)
        assert spread[:end].endswith(f" {spread_value}"), (heading, spread)
    assert plain[header.index("worst test attack") :].startswith("photo 75.0%")
    # a trial of 100 s and more, of 1000 s, a pruned one: the time in its column, 100 in all
    # (one ran into the worst attack, one past 100 columns, a pruned one's a column left: review)
    tied = figures | {"test_apcer_print": 0.75}
    console.trial_line(7, config, tied, 123.4)
    console.trial_line(1234, config, tied, 1234.5)
    console.trial_line(8, config, "pruned", 3.2)
    lines = capsys.readouterr().out.splitlines()
    assert [len(line) for line in lines] == [len(header)] * 3
    assert [line.rsplit(" ", 1)[-1] for line in lines] == ["123.4s", "20m34s", "3.2s"]
    assert "% 2 species 75.0%  123.4s" in lines[0]


def test_every_figure_names_each_rows_run_for_predict(store, capsys) -> None:
    """``--all`` ("every figure") held no run id, which ``predict.py --run`` takes (probe)."""
    uri = mlflow.get_tracking_uri()
    assert compare.main(["--study", "demo", "--tracking-uri", uri]) == 0
    headline = capsys.readouterr().out
    assert compare.main(["--study", "demo", "--all", "--tracking-uri", uri]) == 0
    every = capsys.readouterr().out
    rows = [line for line in every.splitlines() if line.startswith("| ") and "run_id" not in line]
    finished = set(trial_runs(store["demo"][1])["run_id"])
    cells = [[c.strip().removesuffix(" (no head weights)") for c in row.split("|")] for row in rows]
    shown = [[c for c in row if c in finished] for row in cells]
    assert len(rows) >= 2 and all(len(runs) == 1 for runs in shown)  # a row may repeat a trial
    assert not any(run in headline for (run,) in shown)


def test_parent_run_holds_the_best_trial_per_family(store, tmp_path) -> None:
    study, experiment_id, parent, _ = store["demo"]
    names = {a.path for a in MlflowClient().list_artifacts(parent)}
    assert {"comparison.csv", "best_per_family.csv", "best_per_family.json", "report.html"} <= names
    assert not any(n.startswith("optuna_") for n in names)  # Optuna's figures: in the report

    best = pd.read_csv(artifact(parent, "best_per_family.csv", tmp_path), keep_default_na=False)
    logged = MlflowClient().load_table(experiment_id, "best_per_family.json", [parent])
    assert list(logged["head"]) == list(best["head"])
    runs = trial_runs(experiment_id)
    assert sorted(best["family"]) == sorted(runs["params.family"].unique())
    species = [f"metrics.test_apcer_{s}" for s in SPECIES]
    for _, row in best.iterrows():
        family = runs[runs["params.family"] == row["family"]]
        chosen = family.loc[family["metrics.dev_acer"].idxmin()]  # chosen on dev only
        assert row["dev_acer"] == chosen["metrics.dev_acer"] == family["metrics.dev_acer"].min()
        for figure in ("test_apcer", "test_bpcer", "test_acer", "test_hter"):
            assert row[figure] == chosen[f"metrics.{figure}"]
        assert row["params_total"] == row["params_head"] + PARAMS_TO_FC7
        worst = chosen[species].astype(float)
        tied = [s for s, col in zip(SPECIES, species, strict=True) if worst[col] == worst.max()]
        assert row["worst_species"] == ("/".join(sorted(tied)) if worst.max() > 0 else "")
        assert row["worst_species_apcer"] == worst.max() == row["test_apcer"]  # one setting
    frames = best[~best["family"].isin(SEQUENCE)]
    assert all("photo" in w.split("/") for w in frames["worst_species"])  # fools frame heads

    note = mlflow.get_run(parent).data.tags[parent_run.NOTE_TAG]
    assert "| family | head | trial | output | head params | total params | dev ACER |" in note
    for _, row in best.iterrows():
        assert (
            f"| {row['family']} | {row['head']} | {row['trial']} | softmax | "
            f"{row['params_head']:,} | {row['params_total']:,} | {100 * row['dev_acer']:.1f}% |"
        ) in note
    assert "report.html" in note and "Pareto front" in note


def test_console_table_fits_a_100_column_terminal(store) -> None:
    for name in NAMES:
        table = store[name][3]
        text = console.console_table(table)
        lines = text.splitlines()
        assert max(map(len, lines)) <= 100
        assert len(lines) == 3 + len(table)  # title, header's two lines, one line per row
        header = ["head", "output", "params", "ACER", "APCER", "BPCER", "ACER", "HTER", "worst"]
        if name == "real":  # repeats: the worst species' own mean APCER, wider; output goes first
            header.remove("output")
        assert lines[2].split() == header  # group: no name
        assert lines[1].split() == ["head", "dev", "test", "test", "test", "test"]
        ends = [{m.end(): m.group() for m in re.finditer(r"\S+", lines[i])} for i in (1, 2)]
        assert [ends[1][end] for end in ends[0]] == header[-7:-1]  # each over its column
        assert not any(run_id in text for run_id in table["run_id"])
        for line, (_, row) in zip(lines[3:], table.iterrows(), strict=True):
            assert row["head"] in line and f"{row['params_head']:,.0f}" in line
            top = max(row[c] for c in table.columns if is_species_figure(c))
            own = top > 0 and f"{100 * top:.1f}" != f"{100 * row['test_apcer']:.1f}"
            assert f"{100 * row['test_acer']:.1f}" in line and line.count("%") == 5 + own
    demo_title = console.console_table(store["demo"][3]).splitlines()[0]  # one setting
    assert demo_title == "rates in %, test at the dev EER threshold; worst: highest-APCER species"
    real = console.console_table(store["real"][3])
    assert "±" in real  # two repeats: the spreads fit
    narrow = console.console_table(store["real"][3], width=70)
    assert max(map(len, narrow.splitlines())) <= 70
    rates = ("dev_acer", "test_apcer", "test_bpcer", "test_acer", "test_hter")  # five ± columns
    assert all(f"{rate}_std" in store["real"][3].columns for rate in rates)
    said = {}
    for width in range(60, 170):  # the ± columns dropped to fit are said, in full
        lines = console.console_table(store["real"][3], width=width).splitlines()
        header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["head"]) + 1
        shown, title = lines[header + 1].count("±"), "; ".join(lines[: header - 1])
        said[shown] = title
        # its APCER (each repeat's worst, averaged) above its worst species' mean read as a
        # mistake (probe): said in the title
        assert title.startswith("rates in %, test at the dev EER threshold; worst: highest m")
        assert "mean APCER" in title or width < 68  # cut short at 60 columns
        if shown == 3:  # HTER's kept after the ACERs' (cross-domain papers' headline figure)
            rates = [cell for cell in lines[header + 1].split() if cell.endswith("%")][:5]
            assert ["±" in rate for rate in rates] == [True, False, False, True, True], rates
        if shown == len(rates):
            assert "report" not in title, (width, title)
        elif shown:
            assert title.endswith("; other ± std in the report"), (width, title)
        else:
            assert title.endswith("; ± std in the report"), (width, title)
    assert sorted(said) == [0, 2, 3, 5], said  # none, the ACERs', and HTER's, all
    # of an OULU-NPU protocol, APCER's and BPCER's are kept over HTER's: its papers print them
    assert store["real"][3].attrs["evaluation"] == "intra-dataset"  # from its runs' tags
    oulu = store["real"][3].copy()
    oulu.attrs.update(store["real"][3].attrs, protocol="oulu-p2", evaluation="intra-dataset")
    kept = set()
    for width in range(60, 170):
        lines = console.console_table(oulu, width=width).splitlines()
        header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["head"]) + 1
        rates = [cell for cell in lines[header + 1].split() if cell.endswith("%")][:5]
        kept.add(tuple("±" in rate for rate in rates))
    assert (True, True, True, True, False) in kept and (True, False, False, True, True) not in kept


def pareto_points(study: optuna.Study) -> dict[tuple[float, float], set[int]]:
    """The front of (params_total, dev ACER) over the study's complete trials, computed
    here by brute force: each point with the trials that reach it."""
    done = [
        (t.number, t.user_attrs["params_total"], t.values[0])
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE
    ]
    points: dict[tuple[float, float], set[int]] = {}
    for number, size, error in done:
        beaten = any(s <= size and e <= error and (s < size or e < error) for _, s, e in done)
        if not beaten:
            points.setdefault((size, error), set()).add(number)
    return points


def test_verdict_names_the_best_head_the_front_and_the_report(store) -> None:
    for name in NAMES:
        study, experiment_id, parent, table = store[name]
        location = table.attrs["report"]
        assert location == parent_run.report_location(parent)
        assert Path(location).is_file() and Path(location).name == "report.html"
        wrapped = console.verdict(table, study, location)
        assert all(len(line) <= 100 or location in line for line in wrapped)  # a path is a path
        lines = []  # the logical lines: a continuation is indented
        for line in wrapped:
            if line.startswith("  "):
                lines[-1] += " " + line.strip()
            else:
                lines.append(line)

        runs = trial_runs(experiment_id).assign(
            trial=lambda r: r["tags.optuna.trial_number"].astype(int)
        )
        order = ["metrics.dev_acer", "metrics.dev_eer", "metrics.params_total", "trial"]
        best = runs.sort_values(order).iloc[0]  # ties: the lower EER, then the smaller head
        head, params = best["params.head"], int(best["metrics.params_head"])
        assert lines[0].startswith(f"best head by dev ACER: {head} (trial {best['trial']}, ")
        assert f"{params:,} head params" in lines[0]
        assert f"dev ACER {100 * best['metrics.dev_acer']:.1f}" in lines[0]
        assert f"test ACER {100 * best['metrics.test_acer']:.1f}" in lines[0]
        assert f"HTER {100 * best['metrics.test_hter']:.1f}" in lines[0]  # cross-domain's figure
        low, high = (best.get(f"metrics.test_hter_ci_{end}") for end in ("low", "high"))
        if name == "demo":  # one setting's interval, said; the real study's repeats have none
            assert f"HTER {100 * best['metrics.test_hter']:.1f}%, 95% CI [" in lines[0]
            assert f", 95% CI [{percent(low)}%, {percent(high)}%]" in lines[0]
        else:
            assert pd.isna(low) and "95% CI" not in lines[0]

        points = pareto_points(study)
        listed = [int(n) for n in re.findall(r"#(\d+) ", lines[1])]
        assert lines[1].startswith("Pareto front") and len(listed) == len(set(listed))
        covered = {point for point, trials in points.items() for n in listed if n in trials}
        assert covered == set(points) and len(listed) == len(points)  # each point once (review)
        assert lines[2] == f"report: {location}"
        demo = [line for line in lines if line.startswith("demonstration:")]
        assert len(demo) == (name == "demo") and len(lines) == 3 + len(demo)
    assert len(console.verdict(table, study, None)) == len(wrapped) - 1  # no report line


def test_an_hter_interval_of_no_width_says_why(store) -> None:
    """Bengio-Mariethoz's interval is a normal approximation: where APCER and BPCER are each 0 or
    100 % it has no width, however few the clips; the verdict printed "95% CI [50.0%, 50.0%]" of
    three test clips as if it were sure (probe)."""
    study, _, _, table = store["demo"]
    best = tables.best_per_family(table).iloc[0]
    low, high = best["test_hter_ci_low"], best["test_hter_ci_high"]
    said = " ".join(console.verdict(table, study, None))
    assert ("(no width: APCER and BPCER each 0 or 100 %" in said) == (low == high)
    # the best trial's test figures as a study whose test set it classed all right or all wrong
    # would have them (each rate 0 or 1): the interval computed for them, then said
    from experiments.metrics.intervals import hter_interval

    sure = table.copy()
    row = sure.index[sure["run_id"] == best["run_id"]][0]
    bounds = hter_interval(0, 16, 24, 24)  # no attack accepted, every bona fide rejected
    sure.loc[row, ["test_hter_ci_low", "test_hter_ci_high"]] = bounds
    said = " ".join(console.verdict(sure, study, None))
    assert bounds[0] == bounds[1] == 0.5
    assert (
        "HTER" in said and ", 95% CI [50.0%, 50.0%] (no width: APCER and BPCER each 0 or " in said
    )


def test_a_trial_ended_after_the_runs_were_read_is_not_said_left_out(store) -> None:
    """The verdict reads the study after the tables read the runs: another worker's trial that
    ended in between was said "left out ... deleted, or tracked in another store" (review)."""
    import datetime

    study, _, _, table = store["demo"]
    assert table.attrs["read_at"] <= datetime.datetime.now()  # when tracking.study_runs read
    missing = table.copy()
    missing.attrs = {**table.attrs, "trials": table.attrs["trials"][1:]}  # one run not found
    complete = (optuna.trial.TrialState.COMPLETE,)
    ended = [t.datetime_complete for t in study.get_trials(states=complete)]
    for read_at, said in ((min(ended) - datetime.timedelta(seconds=1), 0), (max(ended), 1)):
        missing.attrs["read_at"] = read_at + datetime.timedelta(microseconds=1)
        lines = console.verdict(missing, study, None)
        assert sum(line.startswith("left out: 1 complete trial") for line in lines) == said


def test_the_progress_line_names_the_best_trial_the_verdict_will(capsys) -> None:
    """Tied on dev ACER, the comparison ranks the lower dev EER first, then the smaller model;
    the progress line said the first trial of the tie (trial 0 here)."""
    study = optuna.create_study()
    for head, eer, params in (("lstm44", 0.3, 100), ("lstm30", 0.2, 200), ("lstm29", 0.2, 150)):
        attrs = {"head": head, "dev_eer": eer, "params_total": params}
        study.add_trial(optuna.trial.create_trial(value=0.5, user_attrs=attrs))
    console.Progress(3, "tied")(study, study.trials[-1])
    assert "best dev ACER 50.0% (#2 lstm29)" in capsys.readouterr().out


def test_rates_equal_but_for_their_last_bit_tie_and_the_smaller_model_ranks_first(capsys):
    """Two trials' dev EER was 41/96, one summed as (7/16 + 10/24) / 2: the later, larger head
    ranked first in the progress line, the table and the registered model, while the Pareto
    front chose the other (probe HH). Every place that ranks now calls them a tie."""
    summed, exact = (7 / 16 + 10 / 24) / 2, 41 / 96
    assert summed != exact and Fraction(summed).limit_denominator(1000) == Fraction(41, 96)
    small, large = (0, "lstm30", summed, 495_302), (1, "lstm44", exact, 728_861)
    if not exact < summed:  # the large trial's EER, the lower float, ranked it first
        small, large = (0, "lstm30", exact, 495_302), (1, "lstm44", summed, 728_861)
    study = optuna.create_study()
    for _, head, eer, params in (small, large):
        attrs = {"head": head, "dev_eer": eer, "params_total": params}
        study.add_trial(optuna.trial.create_trial(value=0.46875, user_attrs=attrs))
    console.Progress(2, "tied")(study, study.trials[-1])
    assert "(#0 lstm30)" in capsys.readouterr().out
    keys = [
        runs_table.ranking_key({"dev_acer": 0.46875, "dev_eer": e, "params_total": p})
        for _, _, e, p in (small, large)
    ]
    assert keys[0] < keys[1]
    runs = pd.DataFrame(
        {
            "run_id": ["a", "b"],
            "status": ["FINISHED", "FINISHED"],
            "tags.optuna.trial_number": ["0", "1"],
            "params.head": ["lstm30", "lstm44"],
            "params.family": ["lstm", "lstm"],
            "params.output": ["softmax", "sigmoid"],
            "metrics.dev_acer": [0.46875, 0.46875],
            "metrics.dev_eer": [small[2], large[2]],
            "metrics.params_total": [small[3], large[3]],
            "metrics.params_head": [small[3], large[3]],
        }
    )
    assert list(runs_table.trial_table(runs)["head"]) == ["lstm30", "lstm44"]
    errors = [0.5 + small[2] - exact, 0.5 + large[2] - exact]  # an ACER summed otherwise, too
    assert list(tables.pareto_mask([small[3], large[3]], errors)) == [True, False]
    # one point of the front, however its trials' floats differ (review); a rate on a rounding
    # boundary (k/1024) ties with its neighbour float; a missing figure ranks last
    same = pd.DataFrame({"trial": [3, 5], "head": ["x", "y"], "params_total": [10, 10]})
    assert list(tables.front(same.assign(dev_acer=[large[2], small[2]]))["trial"]) == [3]
    half = 1 / 1024
    assert runs_table.ranked("dev_acer", half) == runs_table.ranked("dev_acer", half + 2**-62)
    near = 333_333 / 1_000_000  # another fraction of clip counts, however close: its own place
    assert runs_table.ranked("dev_acer", 1 / 3) != runs_table.ranked("dev_acer", near)
    assert runs_table.ranked("dev_eer", float("nan")) == runs_table.ranked("dev_eer", None) > 1


def test_an_attack_no_head_caught_is_said_plainly():
    table = pd.DataFrame(
        {
            "head": ["dense8", "lstm30"],
            "test_apcer_photo": [1.0, 0.625],
            "test_apcer_print": [0.0, 0.75],
            "test_apcer_photo_std": [0.0, 0.1],
        }
    )
    lines = tables.missed_species(table)
    assert lines == [
        "no compared head stops most photo attacks: at best 62.5% of them pass (test APCER)"
    ]
    table.loc[1, "test_apcer_photo"] = 0.25
    assert tables.missed_species(table) == []


def test_a_new_study_says_which_write_up_heads_its_trials_run() -> None:
    """'--trials 2' said '2 trials, the 5 write-up heads first': only the first 2 run."""
    assert (
        console.study_line("s", 0, 12, 0, 5) == "new study s: 12 trials, the 5 write-up heads first"
    )
    assert (
        console.study_line("s", 0, 2, 0, 5)
        == "new study s: 2 trials, the first 2 of the 5 write-up heads"
    )
    assert (
        console.study_line("s", 0, 1, 0, 5)
        == "new study s: 1 trial, the first of the 5 write-up heads"
    )
    assert console.study_line("s", 0, 3, 0, 0) == "new study s: 3 trials"


def test_the_start_line_of_a_joined_resumed_or_finished_study() -> None:
    """A second worker on a study made a moment ago read 'resuming study s: 0 of 3 trials
    done'; a rerun asking for fewer trials than done read '3 of 1 trials done'."""
    assert console.study_line("s", 0, 3, 1, 5, running=1) == (
        "joining study s (worker 2): 1 running, 0 of 3 done"
    )
    assert console.study_line("s", 0, 3, 1, 5) == "resuming study s: 0 of 3 trials done"  # killed
    assert console.study_line("s", 0, 3, 1, 5, starting=True) == (  # its maker still loading
        "joining study s (worker 2): none running yet, 0 of 3 done"
    )
    assert console.study_line("s", 2, 3, 1, 5) == "resuming study s: 2 of 3 trials done"
    assert console.study_line("s", 2, 3, 1, 5, running=1) == (
        "joining study s (worker 2): 1 running, 2 of 3 done"
    )
    assert console.study_line("s", 3, 3, 1, 5) == "study s: 3 of 3 trials done, nothing left to run"
    assert console.study_line("s", 3, 1, 1, 5) == (
        "study s: 3 trials done, --trials 1: nothing left to run"
    )


def test_a_threshold_just_below_1_is_not_shown_as_1() -> None:
    """To 4 significant digits 0.999985 and 0.9999999999997 both read '1', which is a threshold
    that rejects everything; the distance to 1 is what tells them apart."""
    assert tables.format_value("dev_threshold", 0.999985) == "1 - 1.5e-05"
    assert tables.format_value("dev_bpcer20_threshold", 0.9999999999997) == "1 - 3e-13"
    assert tables.format_value("dev_threshold", 0.5) == "0.5"
    assert tables.format_value("dev_threshold", 1.0) == "1"
    assert tables.format_value("dev_threshold", 0.12345678) == "0.1235"


@pytest.mark.parametrize(
    ("k", "n"),
    [
        (9, 16),
        (5, 16),
        (1, 16),
        (13, 16),
        (3, 16),
        (1, 80),
        (7, 40),
        (23, 80),
        (41, 80),
        (1, 3),
        (0, 1),
    ],
)
def test_rates_are_rounded_half_up_as_papers_round(k: int, n: int) -> None:
    """k/16 and k/32 rates are common (16 bona fide dev clips, 8 a species): 9/16 read 56.2%,
    3/16 18.8% (Python's format rounds the binary value half to even), in one table; and
    100 * 23/80 is 28.749999999999996 in binary, which a first fix rounded down (the review)."""
    tenths = math.floor(Fraction(1000 * k, n) + Fraction(1, 2))  # half up, on the exact rate
    expected = f"{tenths // 10}.{tenths % 10}%"
    assert tables.format_value("test_acer", k / n) == expected
    assert console.percent(k / n) == expected
    row = {"test_hter": k / n, "test_hter_std": k / n}
    assert console.spread(row, "test_hter") == f"{expected[:-1]}±{expected}"


def test_the_worst_species_of_several_settings_carries_its_own_mean_apcer() -> None:
    """OULU-NPU's APCER over folds is the mean of each fold's worst species' APCER; the worst
    species column named the species of highest mean APCER beside that figure, as if it were
    that species' (a user read 'APCER 37.5% ... worst display', display's mean being 25%)."""
    folds = [
        {"test_apcer": 0.25, "test_apcer_print": 0.25, "test_apcer_display": 0.0},
        {"test_apcer": 0.5, "test_apcer_print": 0.0, "test_apcer_display": 0.5},
    ]
    summary = pd.DataFrame([summarise(folds)])
    summary["worst_species"], summary["worst_species_apcer"] = runs_table.worst_species(summary)
    row = summary.iloc[0]
    assert row["test_apcer"] == 0.375 and row["worst_species"] == "display"
    assert row["worst_species_apcer"] == 0.25
    assert tables.worst_cell(row) == "display 25.0%"
    one = pd.DataFrame([folds[0]])
    one["worst_species"], one["worst_species_apcer"] = runs_table.worst_species(one)
    assert tables.worst_cell(one.iloc[0]) == "print"  # one setting: its APCER is the column's
    tie = pd.Series({"worst_species": "a/b/c", "worst_species_apcer": 0.1, "test_apcer": 0.2})
    assert tables.worst_cell(tie, short=True) == "a +2 10.0%"
    assert tables.worst_cell(pd.Series({"worst_species": "", "test_apcer": 0.0})) == "none"


def test_the_eta_leaves_out_one_off_setup(capsys, monkeypatch) -> None:
    """A fine-tuned study's first trial computed the frozen bottom for minutes, and the first
    ETA counted it as every trial's: 100 s of it and 10 s of trial read 'ETA 3m40s', not 20s."""
    study = optuna.create_study()
    study.add_trial(
        optuna.trial.create_trial(value=0.1, params={}, distributions={}, user_attrs={"head": "x"})
    )
    clock = iter([0.0, 110.0])
    monkeypatch.setattr(console.time, "monotonic", lambda: next(clock))
    progress = console.Progress(3, "s", setup=lambda: 100.0)
    progress(study, study.trials[0])
    assert capsys.readouterr().out.strip() == (
        "[1/3] best dev ACER 10.0% (#0 x), 1m50s so far, ETA 20s"
    )


def test_the_family_best_tag_moves_with_the_familys_best(tmp_path, monkeypatch, request) -> None:
    """The 'Best of each head family' view finds the runs tagged family_best: a trial that is
    no longer its family's best loses the tag, the new best gets it (a real MLflow store)."""
    monkeypatch.chdir(tmp_path)
    request.addfinalizer(partial(mlflow.set_tracking_uri, mlflow.get_tracking_uri()))
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment_id = tracking.use_experiment("moving")
    client = MlflowClient()
    runs = []
    for number in range(3):
        tags = {tracking.STUDY_TAG: "moving", tracking.ROLE_TAG: "trial"}
        tags[tracking.TRIAL_TAG] = str(number)
        runs.append(client.create_run(experiment_id, tags=tags).info.run_id)
    other = client.create_run(tracking.use_experiment("other"), tags={}).info.run_id

    def marked() -> set[str]:
        return {
            run_id
            for run_id in [*runs, other]
            if client.get_run(run_id).data.tags.get(tracking.FAMILY_BEST_TAG) == "true"
        }

    tracking.mark_family_bests("moving", [runs[0], runs[1]])
    assert marked() == {runs[0], runs[1]}
    tracking.mark_family_bests("moving", [runs[2], runs[1]])
    assert marked() == {runs[1], runs[2]}
    tracking.mark_family_bests("nothing-here", [other])  # a study without an experiment
    assert marked() == {runs[1], runs[2]}


def test_compare_on_a_study_still_running_says_so(store, capsys) -> None:
    """compare.py during a study printed its table as if it were done (15 complete trials of a
    study that finished with 33; a user probe)."""
    _, experiment_id, _, table = store["demo"]
    uri = f"sqlite:///{store['root']}/mlflow.db"
    complete = len(runs_table.trial_table(tracking.study_runs(experiment_id, "demo")))
    assert compare.main(["--study", "demo", "--tracking-uri", uri]) == 0
    assert f"\n{complete} complete trials; best per" in capsys.readouterr().out
    client = MlflowClient()
    tags = {tracking.STUDY_TAG: "demo", tracking.ROLE_TAG: "trial", tracking.TRIAL_TAG: "99"}
    running = client.create_run(experiment_id, tags=tags).info.run_id  # a trial in flight
    try:
        assert compare.main(["--study", "demo", "--tracking-uri", uri]) == 0
        said = (
            f"\n{complete} complete trials so far; 1 trial run still RUNNING (in flight, or a "
            "lost worker's not closed yet): the table may change; best"
        )
        assert said in capsys.readouterr().out
    finally:
        client.delete_run(running)


def test_compare_says_the_parent_run_it_closes(store, capsys) -> None:
    """compare.py closed a worker's parent run that died between trials without a word, where
    a worker that does it says "a parent run closed: ..." (probe CC)."""
    import socket

    _, experiment_id, _, _ = store["demo"]
    uri = f"sqlite:///{store['root']}/mlflow.db"
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # a process of this machine that no longer exists
    worker = f"{socket.gethostname()}:{ended.pid}"
    client = MlflowClient(uri)
    tags = {tracking.STUDY_TAG: "demo", tracking.ROLE_TAG: "study", tracking.WORKER_TAG: worker}
    parent = client.create_run(experiment_id, tags=tags).info.run_id
    try:
        assert compare.main(["--study", "demo", "--tracking-uri", uri]) == 0
        said = (
            f"a parent run closed: worker {worker} ended between trials, its run left open "
            "(its process is gone)"
        )
        assert said in capsys.readouterr().err.splitlines()
        assert client.get_run(parent).info.status == "FAILED"
    finally:  # the module's store, as the other tests read it
        client.delete_run(parent)


def test_cross_on_a_store_without_a_cross_study_is_a_one_line_error(store, capsys, tmp_path):
    """It exited 0 where compare on a store without the study asked for exits 2."""
    uri = f"sqlite:///{store['root']}/mlflow.db"
    assert compare.main(["--cross", "--out", str(tmp_path / "t"), "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: no cross-domain or cross-dataset (--test-data) study with a finished trial in "
        f"{uri} yet; --cross --study NAME ... tabulates intra-dataset studies too"
    ]
    assert not (tmp_path / "t").exists()
    # a study named, without a finished trial: said of it (review)
    client = MlflowClient(uri)
    made = client.create_experiment("unfinished", tags={tracking.STUDY_TAG: "unfinished"})
    try:
        assert compare.main(["--cross", "--study", "unfinished", "--tracking-uri", uri]) == 2
        assert capsys.readouterr().err.strip() == "error: no finished trial in unfinished yet"
    finally:  # the module's store, as the other tests read it
        client.delete_experiment(made)


def test_a_study_asked_of_an_empty_store_says_the_store_holds_none(capsys, tmp_path):
    """It said "compare.py --list names them", and --list then said there was no study (probe Z):
    a store without any study is said to hold none, for compare, --cross and predict alike."""
    uri = f"sqlite:///{tmp_path}/empty.db"
    MlflowClient(uri).search_experiments()  # made, with MLflow's Default experiment only
    capsys.readouterr()  # MLflow's lines as it made the tables
    for cross in ([], ["--cross"]):
        assert compare.main([*cross, "--study", "nope", "--tracking-uri", uri]) == 2
        said = capsys.readouterr().err.strip()
        hint = "is --tracking-uri the sweep's?"
        assert said == f"error: no study 'nope' in {uri}, which holds no study ({hint})"
    with pytest.MonkeyPatch.context() as patch:  # the store named where the command found it
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        assert compare.main(["--study", "nope"]) == 2
    hint = "is MLFLOW_TRACKING_URI the sweep's?"
    assert capsys.readouterr().err.strip().endswith(f", which holds no study ({hint})")


def test_importances_are_drawn_over_the_parameters_that_varied() -> None:
    """Optuna's default evaluator (fANOVA) gave parameters that never changed a share of the
    importance: a 3-trial study whose learning rate stayed 0.001 drew it as the most important
    (probe). The chart covers the parameters that took two values or more, and is not drawn
    where fewer than two did."""
    from experiments.results.report import optuna_figures

    space = {
        "learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True),
        "epochs": optuna.distributions.IntDistribution(5, 50),
        "head": optuna.distributions.CategoricalDistribution(["conv", "dense", "lstm"]),
    }
    study = optuna.create_study()
    for head, value in (("conv", 0.4), ("dense", 0.3), ("lstm", 0.41)):
        params = {"learning_rate": 1e-3, "epochs": 30, "head": head}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=space, value=value))
    assert optuna.importance.get_param_importances(study)["learning_rate"] > 0  # what was drawn
    drawn = optuna_figures(study)["optuna_importance"]
    said = "Hyperparameter importances: not drawn (only head varied over the 3 finished trials)"
    assert drawn.layout.title.text == said and not drawn.data
    assert drawn.layout.xaxis.visible is False  # no empty axes (probe)
    assert optuna_figures(study)["optuna_history"].layout.xaxis.dtick == 1  # not trial 0.5
    params = {"learning_rate": 1e-3, "epochs": 10, "head": "conv"}  # the rate stays 0.001
    study.add_trial(optuna.trial.create_trial(params=params, distributions=space, value=0.2))
    drawn = optuna_figures(study)["optuna_importance"]
    assert sorted(drawn.data[0].y) == ["epochs", "head"]


def test_the_study_list_and_notes_tell_backends_and_precisions_apart(store, capsys) -> None:
    """Two studies of the demo set under JAX and TensorFlow, of other extraction precisions,
    with other winners, were told apart only by their names' digests (probe)."""
    uri = f"sqlite:///{store['root']}/mlflow.db"
    assert compare.main(["--list", "--tracking-uri", uri]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split()[-4:] == ["setting", "backend", "extraction", "experiment"]
    rows = {line.split()[0]: line.split()[-3:-1] for line in lines}
    assert rows["demo"] == ["jax", "float32"] and rows["real"] == ["tensorflow", "float32"]
    assert header.split()[1:5] == ["complete", "trials", "pruned/stopped", "failed"]
    ends = [spec[-1] for spec in DEMO_TRIALS]  # 'trial runs' had counted the failed one too
    counts = next(line.split()[1:4] for line in lines if line.split()[0] == "demo")
    assert counts == [str(ends.count(end)) for end in ("complete", "pruned", "failed")]
    assert compare.main(["--study", "demo", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "- Keras backend: jax\n" in out and "- extraction precision: float32\n" in out


def test_a_report_whose_runs_lost_their_scores_leaves_their_curves_out_and_says_so(
    tmp_path, monkeypatch, caplog
) -> None:
    """The artifacts folder moved away (probe: the closing stopped with "the tracking store did
    not answer", status 3, and a rerun of the finished study printed no report at all)."""
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    try:
        study, experiment_id, _, _ = build_study(tmp_path, "moved", REAL_TRIALS[:3], demo=True)
        runs = trial_runs(experiment_id)
        lost = runs["run_id"].iloc[0]
        (Path(urlparse(runs["artifact_uri"].iloc[0]).path) / "scores.csv").unlink()
        with tracking.run("study moved", "study", {tracking.STUDY_TAG: "moved"}) as parent:
            table = parent_run.log_comparison(study, experiment_id, "moved")
        page = artifact(parent.info.run_id, parent_run.REPORT, tmp_path / "out").read_text()
    finally:
        mlflow.set_tracking_uri(before)
    assert len(table) >= 3  # every trial compared
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [m for m in said if m.startswith("report: test ROC curves left out for 1 trial run ")]
    assert f"({lost}) whose scores.csv its artifact store no longer holds" in page
