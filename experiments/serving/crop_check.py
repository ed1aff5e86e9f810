"""How much cropping with a detector, instead of the database's own face boxes, moves a study's
scores: measured once on the study's own dev clips and recorded on the trial's run.

New clips have no database boxes, so a study that cropped with them is served with a detector
(:func:`experiments.serving.scorer.crop_detector`). Whether that matters is a number, not a
guess: the first ``limit`` dev clips that had boxes (in clip order) are scored again through the
serving path (the detector's crop) and compared with the scores the trial logged. The line is
kept as the run's ``crop_check.<detector>`` tag, so later calls with that detector print it
without scoring again (the ``crop_check`` tag of earlier versions counted clips the detector
finds no face in, and is measured again). Where it cannot be measured, nothing is kept.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from core.data.clips import Clip, DataError
from experiments.metrics.report import DATABASE_COLUMN
from experiments.serving.scorer import Scorer
from experiments.serving.trial_model import TrialModel, fetch_artifact
from experiments.stores import tracking

TAG = "crop_check"  # + "." and the detector: one line per detector (review)
REFUSED = "predict.py does not score such a clip without --score-faceless"


def crop_check(model: TrialModel, scorer: Scorer, limit: int) -> str:
    """One line saying how the detector's crop changes the study's dev scores (recorded on the
    run the first time), or why it cannot be measured here."""
    client = MlflowClient()
    run = client.get_run(model.run_id)
    tag = f"{TAG}.{scorer.detector}"
    done = run.data.tags.get(tag)
    if done:
        return done
    crop = model.face_crop
    tags = run.data.tags
    roots = [Path(path) for path in tags.get("data", "").split(",")]  # a pooled study's: several
    whose = "its database's" if len(roots) == 1 else "their databases'"
    head = (
        f"the study cropped {crop.database_boxes} of its {crop.clips} clips with {whose} own "
        f"face boxes; these clips are cropped with {scorer.detector}"
    )
    missing = [str(root) for root in roots if not root.is_dir()]
    if missing:
        gone = ", ".join(missing)
        return f"{head} (the change cannot be measured: the study's data {gone} is not here)"
    try:
        boxed = _boxed_dev_clips(model, tags, roots, limit)
    except DataError as err:
        return f"{head} (the change cannot be measured: {err})"
    if boxed.empty:
        return f"{head} (no dev clip of the study had database boxes: nothing to compare)"
    scored = [scorer.score_clip(path) for path in boxed["path"]]
    # a clip the detector finds no face in is scored on its centre squares, which predict
    # refuses to score: measured with them, the change was the centre squares' (probe)
    seen = np.array([result.no_face < result.frames for result in scored])
    faceless = f"{scorer.detector} finds no face in {(~seen).sum()} of the {len(boxed)} checked"
    if not seen.any():  # not kept: another detector may find faces (review)
        return f"{head} (the change cannot be measured: {faceless}, {REFUSED})"
    now = np.array([result.score for result in scored])[seen]
    before = boxed["score"].to_numpy(dtype=np.float64)[seen]
    change = np.abs(now - before)
    flipped = int(((now >= model.threshold) != (before >= model.threshold)).sum())
    line = (
        f"{head}: on {seen.sum()} of the study's dev clips that changes a clip's score by "
        f"{change.mean():.4f} on average (at most {change.max():.4f}) and {flipped} of "
        f"{seen.sum()} decisions"
    )
    if not seen.all():
        line += f" ({faceless}, left out: {REFUSED})"
    client.set_tag(model.run_id, tag, line)
    return line


def own_clips(model: TrialModel) -> dict[Path, Clip]:
    """The study's own clips that their database's face boxes cropped (its sources' and its
    target's or ``--test-data``'s), by their resolved paths:
    ``predict.py`` crops such a clip with them, as extraction did (it had cropped it with the
    detector, and reversed the study's decision on its own clip: probe); empty where the study's
    data is not here or does not read. A folder is read only where its tags say it had boxes."""
    tags = MlflowClient().get_run(model.run_id).data.tags
    roots = [Path(path) for path in tags.get("data", "").split(",")]
    tested = Path(tags.get("test_data", ""))  # a target's, --test-data's ("same as data": none)
    found: dict[Path, Clip] = {}
    try:
        if model.face_crop.used_database_boxes and all(root.is_dir() for root in roots):
            found |= {clip.path.resolve(): clip for clip in _boxed(tags, roots).values()}
        boxed = _tested_with_boxes(tags, model)
        if boxed and tested.is_absolute() and tested.is_dir() and tested not in roots:
            as_tested = {"protocol": tags.get("test_protocol", "auto")}  # every clip, no fold
            found |= {c.path.resolve(): c for c in _boxed(as_tested, [tested]).values()}
    except (DataError, ValueError):  # a tag this version does not read: the detector crops
        return {}
    return found


def _tested_with_boxes(tags: dict[str, str], model: TrialModel) -> bool:
    """Whether a study's target or ``--test-data`` clips were cropped with their own boxes, as
    its tags say: a target's ``face_boxes_<target>``, a test folder's ``test_face_boxes`` (a
    study whose sources had none was not looked at: review); runs before the tag: as the
    sources' crop."""
    said = tags.get(f"face_boxes_{tags.get('target')}", tags.get("test_face_boxes"))
    if said is None:
        return model.face_crop.used_database_boxes
    return said not in ("none", "same as data")


def _boxed_dev_clips(model: TrialModel, tags: dict[str, str], roots: list[Path], limit: int):
    """The first ``limit`` dev clips (their paths and logged scores) cropped with boxes; a
    cross-domain study's from each of its sources (scores.csv names each clip's database)."""
    paths = {key: clip.path for key, clip in _boxed(tags, roots).items()}
    pooled = tags.get("evaluation") == "cross-domain"
    with tempfile.TemporaryDirectory() as folder:
        scores = fetch_artifact(model.run_id, tracking.SCORES_CSV, Path(folder))
        frame = pd.read_csv(scores, keep_default_na=False, float_precision="round_trip")
    database = frame[DATABASE_COLUMN] if pooled else pd.Series("", index=frame.index)
    frame = frame.assign(key=list(zip(database, frame["clip"], strict=True)))
    dev = frame[(frame["split"] == "dev") & frame["key"].isin(paths)]
    if "fold" in dev.columns:  # the kept head's setting
        dev = dev[(dev["fold"] == dev["fold"].iloc[0]) & (dev["repeat"] == 0)] if len(dev) else dev
    dev = dev.sort_values("clip").head(limit)
    return dev.assign(path=[paths[key] for key in dev["key"]])


def _boxed(tags: dict[str, str], roots: list[Path]) -> dict[tuple[str, str], Clip]:
    """The study's clips with database boxes, by (database, clip id): a cross-domain study's
    from each of its sources, read as the study read them. DataError: they do not read."""
    from core.data.dataset import load_dataset

    fold = tags.get("fold", "none")
    pattern = tags.get("subject_pattern", "none")
    pooled = tags.get("evaluation") == "cross-domain"
    names = tags.get("sources", "").split(",") if pooled else [""]
    protocols = tags.get("protocol", "auto").split(",")
    if len(protocols) != len(roots):  # a pooled study tagged with its first source's alone
        protocols = ["auto"] * len(roots)
    if len(names) != len(roots):  # a path with a comma in it: the data tag cannot be split
        raise DataError(f"the study's data tag names {len(roots)} folders for {len(names)}")
    # a trial of every fold is tagged "all" (each fold's clips: read every fold); int("all")
    # ended predict in a traceback (review)
    listed = tags.get("folds", "").split(",") if fold == "all" else [fold]
    chosen = [None if f in ("none", "") else int(f) for f in listed if f.strip()] or [None]
    found = {}
    for name, root, protocol in zip(names, roots, protocols, strict=True):
        for one in chosen:
            dataset = load_dataset(
                root,
                protocol=protocol,
                fold=one,
                subject_pattern=None if pattern == "none" else pattern,
            )
            boxed = (c for c in dataset.source_clips if c.face_boxes is not None)
            found |= {(name, c.clip_id): c for c in boxed}
    return found
