"""Score videos or frame folders with a trial's head, on the backbone its study used.

    python experiments/predict.py --run RUN_ID CLIP [CLIP ...]
    python experiments/predict.py --best [--study NAME] [--head-family F] CLIP [CLIP ...]
        [--tracking-uri URI] [--weights PATH] [--face-detector mtcnn|haar] [--per-frame]
        [--score-faceless]

The head is rebuilt from the trial run's parameters and its logged ``head.weights.h5``; the
backbone is the one the study used (the weights file whose fingerprint the run names, or the
seeded random demo backbone) in the precision the study extracted in, with the study's frames per
clip, face crop, preprocessing and a fine-tuned trial's own backbone layers
(:mod:`experiments.serving.scorer`). Prints one tab-separated line per clip (a field holding a
tab, a quote or a line break is quoted, as CSV quotes): its path, the probability that it is
bona fide, the decision at the trial's dev EER threshold (a score at or above it is bona fide)
and the frames where no face was found (empty without a crop); frame heads average their frames'
scores, sequence heads read the clip's frames in order, exactly as the sweep scored its clips. A
clip in which no frame has a face is not scored (its decision reads ``no face``) unless
``--score-faceless``; one that cannot be read reads ``not read``, its reason on stderr. A frame
head scores a clip of fewer frames than the study's (or one image) on every frame it has; a
sequence head does not (``too short``). A
folder that holds no frame of its own stands for the clips under it. A study that cropped with its
database's own face boxes crops its own clips with them, as it did, and other clips with its
detector (MTCNN where it runs, else Haar, where it used none: ``--face-detector`` chooses).

Exit status: 0 every clip scored; 2 bad input (one line on stderr): an unknown run or study, a
run without head weights, a weights file that is not the study's, or a clip that cannot be read
or has no face (each such clip is named, the others still scored; of those read before a reader
of the rows that stops early, ``| head``, too), a path under a folder given that cannot be read,
a tracking store that is not there; 3 a tracking server that does not answer, or not as MLflow
does; 130 Ctrl-C, 143 SIGTERM (the rows written so far kept).
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.data.clips import shown_path
from core.flags import given_name, given_path
from core.interrupts import ctrl_c_noticed, stopped_by_ctrl_c, terminate_as_ctrl_c
from core.words import counted
from experiments.commands.quiet import OneLineParser

DECISIONS = {True: "bona fide", False: "attack"}
HEADER = ["clip", "bonafide_probability", "decision", "no_face_frames"]
DETECTORS = ("mtcnn", "haar")  # core.features.faces.MTCNN, HAAR (a test checks they agree)
CROP_CHECK = 16  # dev clips a database-box study's crop check scores, by default


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(
        prog="python experiments/predict.py",
        description="Score clips with a trial's head on the backbone its study used.",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--run", help="MLflow run id of a finished trial")
    which.add_argument(
        "--best",
        action="store_true",
        help="the study's best trial by dev ACER (ties: dev EER, fewer parameters, earlier)",
    )
    parser.add_argument(
        "--study",
        type=given_name,
        help="with --best: the study (default: the last one run that has a finished trial, "
        "of this KERAS_BACKEND's first)",
    )
    parser.add_argument(
        "--head-family", type=given_name, help="with --best: the best trial of this head family"
    )
    parser.add_argument(
        "--tracking-uri", type=given_name, help="MLflow tracking URI (default: MLflow's own)"
    )
    parser.add_argument(
        "--weights",
        type=given_path,
        help="VGG-Face weights (.mat or .weights.h5), checked against the run's fingerprint; "
        "default: the random demo backbone for a run on it, else the file the run names, else "
        "the sweep's default file ($VGGFACE_WEIGHTS or the cache's vgg_face.weights.h5)",
    )
    parser.add_argument(
        "--face-detector",
        choices=DETECTORS,
        help="crop with this detector (needed when the study used its database's own boxes)",
    )
    parser.add_argument(
        "--per-frame", action="store_true", help="frame heads: print each frame's score too"
    )
    parser.add_argument(
        "--score-faceless",
        action="store_true",
        help="score a clip in which no frame has a face too (its frames' centre squares)",
    )
    parser.add_argument(
        "--crop-check",
        type=int,
        metavar="N",
        help="a study cropped with its database's own face boxes: measure on N of its dev clips "
        f"(default {CROP_CHECK}) how the detector's crop changes their scores, once (recorded on "
        "the run); 0: do not",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="libraries' INFO lines too")
    parser.add_argument(
        "clips", nargs="+", type=given_path, metavar="CLIP", help="video or frame folder"
    )
    args = parser.parse_args(argv)
    if args.study and args.run:
        parser.error("--run names the trial itself: drop --study (or --run, for --best)")
    if args.study and not args.best:
        parser.error("--study needs --best (or name a trial with --run RUN_ID)")
    if not (args.run or args.best):
        parser.error("name the trial: --run RUN_ID, or --best [--study NAME]")
    if args.head_family and not args.best:
        parser.error("--head-family goes with --best")
    if args.crop_check is not None and args.crop_check < 0:
        parser.error(f"--crop-check must be 0 or more clips, got {args.crop_check}")
    from core.device import refuse_unsupported_backend

    refuse_unsupported_backend(parser)
    return args


def load_scorer(args: argparse.Namespace):
    """The run's head on its backbone (a :class:`~experiments.serving.scorer.Scorer`);
    ScoringError (one line) for any bad input."""
    from experiments.serving import scorer, trial_model

    if args.run:
        run_id = args.run
    elif args.study is not None:
        run_id = trial_model.best_trial_run(args.study, args.head_family)
    else:
        run_id = _last_best(args.head_family)
    model = trial_model.trial_model(run_id)
    weights = scorer.backbone_weights(model, args.weights)  # checked before anything is built
    if args.crop_check and not model.face_crop.used_database_boxes:  # 0: nothing to refuse
        raise trial_model.ScoringError(
            f"--crop-check {args.crop_check}: the study cropped no clip with its database's own "
            "face boxes, so these clips are cropped as its were: drop --crop-check"
        )
    scorer.check_score_faceless(model.face_crop, args.score_faceless)  # was taken without a word
    # warns: refusals first; a study that cropped every clip with its database's boxes crops
    # new clips with MTCNN where it runs, else Haar, as its registered model does (it refused)
    detector = scorer.crop_detector(model.face_crop, args.face_detector)
    with tempfile.TemporaryDirectory() as folder:
        head_weights = trial_model.fetch_head_weights(model, Path(folder))
        top_weights = trial_model.fetch_top_weights(model, Path(folder))
        other = detector is not None and detector != model.face_crop.detector
        print(
            model.describe() + (f" (clips without database boxes: {detector})" if other else ""),
            file=sys.stderr,
        )
        for said in scorer.drift(model, detector):
            print(f"warning: {said}", file=sys.stderr)
        return scorer.Scorer(model, head_weights, weights, detector, top_weights)


def _last_best(family: str | None) -> str:
    """``--best`` without ``--study``: the best trial (of ``family``) of the last study run (as
    ``compare.py`` orders them) that has a finished one, of this Keras backend's studies first
    (under JAX, a TensorFlow study run since was picked, and its random backbone refused: probe).
    A study stopped before its first trial was picked and had no head, one without the family
    refused it (probe, review)."""
    from core.device import keras_backend
    from experiments.results.studies import studies
    from experiments.serving.trial_model import (
        NoTrialOfFamily,
        ScoringError,
        best_trial_run,
        families_said,
    )
    from experiments.stores import tracking

    listed = studies()
    listed = listed[listed["complete trials"] > 0]
    ours = listed["backend"] == keras_backend()  # a JAX study's random backbone is JAX's own
    present: set[str] = set()
    for study in [*listed.loc[ours, "study"], *listed.loc[~ours, "study"]]:
        try:
            return best_trial_run(study, family)
        except ScoringError as err:  # an earlier study may have one
            present.update(err.present if isinstance(err, NoTrialOfFamily) else ())
    which = f"a finished {family} trial" if family else "a finished trial"
    said = f"--best: no study with {which} in {tracking.store_shown()}"
    if family and present:  # the families the studies have: CONV, conv2048 were not one
        said += families_said(family, sorted(present), "the studies have")
    raise ScoringError(said)


@terminate_as_ctrl_c()  # SIGTERM stops it as Ctrl-C does (it died without a word: probe)
@stopped_by_ctrl_c("interrupted: the clips above are scored, the others not")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from experiments.commands.quiet import console_logging, quiet_backend, reader_gone, say_error

    quiet_backend(args.verbose)  # the backend's start-up lines, before anything imports it
    console_logging(args.verbose)
    logging.getLogger("mlflow").setLevel(logging.INFO if args.verbose else logging.WARNING)

    from core.backbone.matconvnet import PortError
    from experiments.serving.trial_model import ScoringError
    from experiments.stores import disk, reach, tracking

    try:
        reach.check_existing_store(tracking.use_store(args.tracking_uri))
        scorer = load_scorer(args)
    except (ScoringError, PortError, ValueError) as err:
        say_error(str(err))
        return 3 if isinstance(err, reach.StoreUnreachable) else 2
    except Exception as err:  # the tracking store's failure (SQLAlchemy's, MLflow's): one line
        if (failed := tracking.read_failed(err)) is None:
            raise
        say_error(failed[0])
        return failed[1]
    checked = CROP_CHECK if args.crop_check is None else args.crop_check
    if scorer.model.face_crop.used_database_boxes and checked:
        from experiments.serving.crop_check import crop_check

        print(crop_check(scorer.model, scorer, checked), file=sys.stderr)
    if args.per_frame and scorer.kind == "sequence":
        print(
            f"--per-frame: {scorer.model.config.head} is a sequence head, which scores a clip "
            "whole: its frame_scores column stays empty",
            file=sys.stderr,
        )
    clips, unreached = _expanded(args.clips)
    known = {}  # the study's own clips with database boxes: cropped with them, as it cropped them
    if scorer.detector:  # own clips only where the study's tags say boxes cropped some
        from experiments.serving.crop_check import own_clips

        known = own_clips(scorer.model)
        if own := sum(path.resolve() in known for path in clips):
            print(
                f"{own} of these clips {'is' if own == 1 else 'are'} the study's own: cropped "
                "with its database's face boxes, as the study cropped them",
                file=sys.stderr,
            )
    rows = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")  # a tab in a name: quoted
    bad: list[Path] = []  # the clips not scored, as they come
    try:
        rows.writerow(HEADER + (["frame_scores"] if args.per_frame else []))
        with ctrl_c_noticed() as interrupted:  # between clips: one dropped in a finalizer too
            _score_each(args, clips, scorer, rows, interrupted, bad, known)
    except BrokenPipeError:
        reader_gone()
    except OSError as err:  # stdout to a file on a full disk: a traceback, a row cut (probe)
        if err.errno not in disk.FULL:
            raise
        reader_gone()  # nothing more goes there, Python's flush at exit included
        say_error(
            "no space left on the device for the scores (stdout): rows may be missing or the "
            "last cut short; free space and run it again"  # none at all, where it was full
        )
        return 2
    if bad or unreached:  # also of the clips before a reader that stopped early (review)
        said = [f"{len(bad)} of {len(clips)} clips could not be scored"] if bad else []
        if unreached:  # under a folder given: no row of their own (probe)
            said.append(f"{counted(unreached, 'path')} under the folders given could not be read")
        print(f"error: {' and '.join(said)} (named above)", file=sys.stderr)
        return 2
    return 0


def _expanded(paths: list[Path]) -> tuple[list[Path], int]:
    """The clips given: a folder that holds no frame of its own, or holds videos of its own,
    stands for the clips under it (its videos and frame folders, as a database's are found); it
    was refused as a frame folder without frames, and a folder of videos with a thumbnail beside
    them was read as one clip of one frame, its videos left unsaid (probes). With how many paths
    under those folders could not be read (said on stderr: a name not UTF-8 was dropped)."""
    from core.data.clips import READABLE_VIDEO_SUFFIXES, frame_files
    from core.data.dataset import clips_under

    clips, unreached = [], 0
    for path in paths:
        inside, images = [], []
        if path.is_dir():
            images = frame_files(path)
            videos = [  # as the walk finds them: no hidden file, no folder named *.mp4 (review)
                p
                for p in path.iterdir()
                if p.suffix.lower() in READABLE_VIDEO_SUFFIXES
                and not p.name.startswith(".")
                and p.is_file()
            ]
            if videos or not images:
                inside, skipped = clips_under(path, READABLE_VIDEO_SUFFIXES)
                for where, why in skipped:  # dropped without a word (probe)
                    print(f"not read: {shown_path(where)}: {why}", file=sys.stderr)
                unreached += len(skipped)
        if inside:
            print(f"{shown_path(path)}: {counted(len(inside), 'clip')} under it", file=sys.stderr)
        if inside and images:
            print(
                f"{shown_path(path)}: {counted(len(images), 'image')} beside its videos not scored "
                "(a folder of frames holds frames alone: move them to a folder of their own)",
                file=sys.stderr,
            )
        clips += inside or [path]
    return clips, unreached


def _score_each(
    args: argparse.Namespace,
    clips: list[Path],
    scorer: Any,
    rows: Any,
    interrupted: Callable[[], None],
    bad: list[Path],
    known: dict[Path, Any],
) -> None:
    """Write each clip's row under the header, one for every clip (one not read: ``not read``,
    its reason on stderr; a reader of the rows lost such clips without a word: probe); each clip
    not scored is added to ``bad`` before its row is written (a reader gone stops the writing)."""
    from core.data.clips import DataError
    from core.data.frames import TooFewFrames

    empty = [""] * args.per_frame  # a row as wide as the header
    for clip in clips:
        interrupted()
        path = shown_path(clip)  # a name not UTF-8 as \xe9: printed as it is, it raised (probe)
        try:
            result = scorer.score_clip(clip, shorter=True, clip=known.get(clip.resolve()))
        except DataError as err:  # a sequence head's clip too short was read: said so (probe)
            short = isinstance(err, TooFewFrames)
            print(f"{'not scored' if short else 'skipped'}: {err}", file=sys.stderr)
            bad.append(clip)
            rows.writerow([path, "", "too short" if short else "not read", "", *empty])
            sys.stdout.flush()
            continue
        frames = result.frames
        # no face check without a crop: "0/7" claimed one (probe)
        no_face = f"{result.no_face}/{frames}" if scorer.detector else ""
        if result.no_face == frames and scorer.detector and not args.score_faceless:
            print(
                f"not scored: {path}: the detector ({scorer.detector}) found no face in any of "
                f"its {counted(frames, 'frame')} (--score-faceless scores it anyway)",
                file=sys.stderr,
            )
            bad.append(clip)
            rows.writerow([path, "", "no face", no_face, *empty])
            sys.stdout.flush()
            continue
        if frames < scorer.model.frames_per_clip:  # a frame head: every frame there is
            print(
                f"{path}: scored on its {counted(frames, 'frame')}; the study read "
                f"{scorer.model.frames_per_clip} per clip",
                file=sys.stderr,
            )
        # nine significant digits, a float32's round trip: 5.0176e-06 printed as 0.000005
        row = [path, f"{result.score:.9g}", DECISIONS[result.bonafide], no_face]
        if args.per_frame:  # empty for a sequence head, which scores the clip as a whole
            scores = result.frame_scores if result.frame_scores is not None else []
            row.append(",".join(f"{s:.9g}" for s in scores))
        rows.writerow(row)
        sys.stdout.flush()
