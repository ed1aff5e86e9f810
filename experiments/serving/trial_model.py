"""What serving needs of one trial, read back from what its run recorded.

A trial run (:mod:`experiments.trial.objective`, :mod:`experiments.commands.study`) holds its
:class:`~experiments.config.TrialConfig` as parameters; tags naming the backbone (``weights``,
``weights_fingerprint``), the extraction precision (``extraction_precision``) and the face crop
(:class:`core.features.crop.FaceCrop`'s tags); the ``dev_threshold`` of the head it kept (with
several folds or repeats, the first setting's: the first row of ``settings.csv`` holds it too);
``head.weights.h5`` when its weights were kept and, fine-tuned, ``backbone_top.h5``. Frames per
clip are the parent run's ``frames_per_clip`` parameter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from core.features.crop import FaceCrop
from experiments.config import TrialConfig
from experiments.stores import study_names, tracking
from experiments.stores.runs_table import trial_table

DEFAULT_WEIGHTS = "default"  # the sweep's ``weights`` tag when no --weights was given


class ScoringError(ValueError):
    """A run, study or weights file that cannot score; the message is one line."""


class NoTrialOfFamily(ScoringError):
    """A study with finished trials, none of the family asked for; ``present``: its families."""

    def __init__(self, message: str, present: list[str]) -> None:
        super().__init__(message)
        self.present = present


def families_said(family: str, present: list[str], who: str = "it has") -> str:
    """``; it has conv, dense``: the families ``present``, as a refusal lists them, with the one
    that a head's name (``conv2048``) or another case (``CONV``) meant."""
    meant = family.rstrip("0123456789").lower()
    hint = ""
    if meant != family and meant in present:
        what = "a head of family" if meant != family.lower() else "family"
        hint = f" ({family} is {what} {meant})"
    return f"; {who} {', '.join(present)}{hint}"


@dataclass(frozen=True)
class TrialModel:
    """What scoring with one trial's head needs, all of it JSON-able (a pyfunc model's config)."""

    run_id: str
    study: str
    trial: int
    config: TrialConfig
    frames_per_clip: int
    threshold: float  # the dev EER threshold: a score at or above it is bona fide
    weights_fingerprint: str  # of the backbone weights: sha256:..., or random:<init>:<seed>
    # the run's ``weights`` tag: the file its features were made with; "default" for the random
    # backbone (and, in runs before 2026-12, for the file found in the default place)
    weights: str
    face_crop: FaceCrop
    extraction_precision: str = "float32"  # the backbone's, as the study extracted its features
    keras_backend: str = ""  # what trained the head ("" for runs that did not record it)
    # the face detector's version and the frames' preprocessing version the study's features
    # were made with ("mtcnn 1.0.0", "2"; "" for runs that did not record them)
    face_detector_version: str = ""
    preprocessing: str = ""
    # each weights artifact's SHA-256 as its trial logged it (none: runs logged before)
    checksums: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def fine_tune(self) -> str:
        """The backbone layers the trial trained with its head: none, fc or conv5."""
        return self.config.fine_tune

    @property
    def random_backbone(self) -> bool:
        return self.weights_fingerprint.startswith("random:")

    def describe(self) -> str:
        backbone = "random backbone (a demo)" if self.random_backbone else self.weights_fingerprint
        tuned = "" if self.fine_tune == "none" else f", fine-tuned {self.fine_tune}"
        return (
            f"run {self.run_id}: study {self.study}, trial {self.trial}, {self.config.head} "
            f"({self.config.output}{tuned}), dev threshold {self.threshold:.9g}, {backbone} in "
            f"{self.extraction_precision}, face crop {self.face_crop.method}, "
            f"{self.frames_per_clip} frames per clip"
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrialModel:
        """Read back :meth:`to_dict`, and the dicts that models registered by earlier versions
        hold: there ``face_crop`` was a line of text and the config's ``precision`` was the
        head's, which those versions also built the backbone in (so they still score as they
        did)."""
        values = dict(values)
        config = dict(values.pop("config"))
        if "precision" in config:
            config["training_precision"] = config.pop("precision")
            values.setdefault("extraction_precision", config["training_precision"])
        known = {item.name for item in dataclasses.fields(TrialConfig)}
        config = {k: v for k, v in config.items() if k in known}  # fields of newer versions
        config["hparams"] = dict(config.get("hparams") or {})
        crop = values.pop("face_crop")
        if not isinstance(crop, dict):  # an earlier version's line of text
            crop = dataclasses.asdict(FaceCrop.from_tags({"face_crop": crop}))
        return cls(config=TrialConfig(**config), face_crop=FaceCrop(**crop), **values)


def trial_model(run_id: str, client: MlflowClient | None = None) -> TrialModel:
    """The :class:`TrialModel` of trial run ``run_id`` in the current tracking store."""
    client = client or MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ScoringError(
            f"run {run_id!r}: no such MLflow run in {tracking.store_shown()} (--tracking-uri?)"
        ) from None
    tags, params = run.data.tags, run.data.params
    if run.info.lifecycle_stage == "deleted":  # compare and --best leave it out; it was scored
        raise ScoringError(
            f"run {run_id} is deleted in MLflow: restore it first (mlflow runs restore --run-id "
            f"{run_id}), or score with another"
        )
    if tags.get(tracking.ROLE_TAG) != "trial":
        role = tags.get(tracking.ROLE_TAG)
        what = f"a {role} run" if role else "not a run of the sweep"
        raise ScoringError(f"run {run_id}: not a trial run of a study ({what})")
    trial = int(tags.get(tracking.TRIAL_TAG, -1))
    if run.info.status != "FINISHED":
        raise ScoringError(
            f"run {run_id} (trial {trial}) ended {run.info.status}: only a finished trial has a "
            "trained head"
        )
    missing = [tag for tag in ("weights_fingerprint", "face_crop") if tag not in tags]
    if missing:
        raise ScoringError(
            f"run {run_id}: lacks {'tags' if len(missing) > 1 else 'tag'} {', '.join(missing)} "
            "(an older sweep?)"
        )
    # Before the two precisions had their own names, the tag ``precision`` was extraction's.
    extraction = tags.get("extraction_precision", tags.get("precision", "float32"))
    return TrialModel(
        run_id=run_id,
        study=tags.get(tracking.STUDY_TAG, ""),
        trial=trial,
        config=config_from_params(params, run_id),
        frames_per_clip=_frames_per_clip(run, client),
        threshold=_dev_threshold(run),
        weights_fingerprint=tags["weights_fingerprint"],
        weights=tags.get("weights", DEFAULT_WEIGHTS),
        face_crop=FaceCrop.from_tags(tags),
        extraction_precision=extraction,
        keras_backend=tags.get("keras_backend", ""),
        face_detector_version=tags.get("face_detector_version", ""),
        preprocessing=tags.get("preprocessing", ""),
        checksums={name: tags[tag] for name, tag in tracking.CHECKSUM_TAGS.items() if tag in tags},
    )


def config_from_params(params: dict[str, str], run_id: str = "") -> TrialConfig:
    """The :class:`TrialConfig` a trial run's parameters record (``TrialConfig.from_params``)."""
    import heads  # the family's builder keywords type its hyper-parameters

    try:
        spec = heads.get_spec(params["family"])
    except KeyError as err:  # no family logged, or one no longer registered
        raise ScoringError(f"run {run_id}: {err.args[0] if err.args else err}") from None
    try:
        return TrialConfig.from_params(params, spec.defaults)
    except ValueError as err:
        raise ScoringError(f"run {run_id}: {err}") from None


def _frames_per_clip(run, client: MlflowClient) -> int:
    """A ``frames_per_clip`` tag on the run, else its parent run's parameter."""
    value = run.data.tags.get("frames_per_clip")
    parent = run.data.tags.get(tracking.PARENT_TAG)
    if value is None and parent:
        value = client.get_run(parent).data.params.get("frames_per_clip")
    if value is None:
        raise ScoringError(f"run {run.info.run_id}: frames per clip not logged on it or its parent")
    return int(value)


def _dev_threshold(run) -> float:
    """The dev EER threshold of the head the trial kept: its first setting's (runs of earlier
    versions logged the mean over settings as ``dev_threshold``; ``settings.csv`` has each)."""
    kept = kept_setting(run)
    if kept is not None:
        return float(kept["dev_threshold"])
    if "dev_threshold" not in run.data.metrics:
        raise ScoringError(f"run {run.info.run_id}: no dev_threshold metric")
    return float(run.data.metrics["dev_threshold"])


def kept_setting(run) -> dict[str, Any] | None:
    """Of a trial run of several settings (folds, repeats), whose figures are their means, the
    first row of its ``settings.csv``: the setting whose head the trial kept, with that head's
    own figures; None for a run of one setting."""
    if int(run.data.metrics.get("settings", 1)) == 1:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = fetch_artifact(run.info.run_id, tracking.SETTINGS_CSV, Path(folder))
        table = pd.read_csv(path, float_precision="round_trip")
    return table.iloc[0].to_dict()


def fetch_artifact(run_id: str, name: str, folder: Path) -> Path:
    """A run's artifact copied into ``folder`` (no progress bar); ScoringError if it is absent."""
    try:
        return Path(tracking.fetch_artifact(run_id, name, folder))
    except (MlflowException, OSError):
        raise ScoringError(f"run {run_id}: has no artifact {name}") from None


def fetch_head_weights(model: TrialModel, folder: Path) -> Path:
    """The run's ``head.weights.h5`` in ``folder``; a run that kept none is a ScoringError."""
    if not tracking.has_artifact(model.run_id, tracking.HEAD_WEIGHTS):
        _gone(model, tracking.HEAD_WEIGHTS)
        raise ScoringError(
            f"run {model.run_id} (trial {model.trial}, {model.config.head}) has no head weights: "
            "the sweep logged none for it (--keep-weights best keeps only each family's "
            "improvements, none keeps none); a finished study runs nothing again: rerun its "
            "flags as another study, --study NEW, with --keep-weights all"
        )
    return _checked(model, fetch_artifact(model.run_id, tracking.HEAD_WEIGHTS, folder))


def _gone(model: TrialModel, name: str) -> None:
    """A ScoringError if the trial logged ``name`` (its checksum tag is on the run) and its
    artifact store no longer has it: a store copied or moved without its artifacts folder
    (the runs keep the old folder's path), not a trial that kept no weights."""
    if name in model.checksums:
        where = MlflowClient().get_run(model.run_id).info.artifact_uri
        raise ScoringError(
            f"run {model.run_id} (trial {model.trial}): its {name} was logged, but its artifact "
            f"store {where} no longer holds it: the artifacts were moved or deleted (a copied "
            "store keeps the folder they were logged to); put them back there, or point a "
            f"moved store at them: {tracking.move_command(where)}"
        )


def _checked(model: TrialModel, path: Path) -> Path:
    """``path``, a weights artifact of ``model``'s run, if its bytes are those its trial logged;
    ScoringError otherwise (h5 reads a damaged kernel as any other numbers: no error, other
    scores)."""
    expected = model.checksums.get(path.name)
    if expected and hashlib.sha256(path.read_bytes()).hexdigest() != expected:
        raise ScoringError(
            f"run {model.run_id} (trial {model.trial}): its {path.name} is not the file the "
            f"trial logged (its SHA-256 differs from the run's {tracking.CHECKSUM_TAGS[path.name]} "
            "tag): damaged or replaced in the artifact store"
        )
    return path


def fetch_top_weights(model: TrialModel, folder: Path) -> Path | None:
    """A fine-tuned trial's ``backbone_top.h5`` in ``folder``; None for a frozen backbone."""
    if model.fine_tune == "none":
        return None
    if not tracking.has_artifact(model.run_id, tracking.TOP_WEIGHTS):
        _gone(model, tracking.TOP_WEIGHTS)
        raise ScoringError(
            f"run {model.run_id} (trial {model.trial}) fine-tuned its backbone "
            f"({model.fine_tune}) but has no {tracking.TOP_WEIGHTS}: its backbone cannot be rebuilt"
        )
    return _checked(model, fetch_artifact(model.run_id, tracking.TOP_WEIGHTS, folder))


def best_trial_run(study: str, family: str | None = None) -> str:
    """Run id of the study's best finished trial (of ``family``), as every choice ranks them
    (:data:`experiments.stores.runs_table.RANKING`, then the earlier trial)."""
    experiment_id = tracking.study_experiment(study)
    if experiment_id is None:
        raise ScoringError(study_names.not_stored([study]))
    trials = trial_table(tracking.study_runs(experiment_id, study))
    if trials.empty:
        raise ScoringError(f"study {study}: no finished trial yet")
    if family is not None:
        present = sorted(trials["family"].unique())
        trials = trials[trials["family"] == family]
        if trials.empty:
            raise NoTrialOfFamily(
                f"study {study}: no finished trial of head family {family!r}"
                + families_said(family, present),
                present,
            )
    return str(trials["run_id"].iloc[0])
