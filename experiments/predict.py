"""Score videos or frame folders with a trial's head, on the backbone its study used.

    python experiments/predict.py --run RUN_ID CLIP [CLIP ...]
    python experiments/predict.py --study NAME --best [--head-family F] CLIP [CLIP ...]
        [--tracking-uri URI] [--weights PATH] [--face-detector mtcnn|haar] [--per-frame]

The head is rebuilt from the trial run's parameters and its logged ``head.weights.h5``; the
backbone is the one the study used (the weights file whose fingerprint the run names, or the
seeded random demo backbone), with the study's frames per clip, face crop, preprocessing and
precision (:mod:`experiments.scoring`). Prints one tab-separated line per clip: its path, the
probability that it is bona fide, and the decision at the trial's dev EER threshold (a score at
or above it is bona fide); frame heads average their frames' scores, sequence heads read the
clip's frames in order, exactly as the sweep scored its dev and test clips.

Exit status: 0 every clip scored; 2 bad input (one line on stderr): an unknown run or study, a
run without head weights, a weights file that is not the study's, or a clip that cannot be read
(each such clip is named and skipped, the others still scored).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from experiments.quiet import quiet_backend  # noqa: E402

quiet_backend(verbose=bool({"-v", "--verbose"} & set(sys.argv[1:])))  # TensorFlow's start-up lines

import mlflow  # noqa: E402

from core.backbone.matconvnet import PortError  # noqa: E402
from core.data.clips import DataError  # noqa: E402
from core.features.faces import HAAR, MTCNN  # noqa: E402
from experiments import scoring  # noqa: E402
from experiments.scoring import ScoringError  # noqa: E402

DECISIONS = {True: "bona fide", False: "attack"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python experiments/predict.py",
        description="Score clips with a trial's head on the backbone its study used.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="MLflow run id of a finished trial")
    which.add_argument("--study", help="a study name: with --best, its best trial")
    parser.add_argument(
        "--best",
        action="store_true",
        help="the study's best trial by dev ACER (ties: dev EER, fewer parameters, earlier)",
    )
    parser.add_argument("--head-family", help="with --best: the best trial of this head family")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLflow's own)")
    parser.add_argument(
        "--weights",
        type=Path,
        help="VGG-Face weights (.mat or .weights.h5), checked against the run's fingerprint; "
        "default: the random demo backbone for a run on it, else the file the run names, else "
        "the sweep's default file ($VGGFACE_WEIGHTS or the cache's vgg_face.weights.h5)",
    )
    parser.add_argument(
        "--face-detector",
        choices=(MTCNN, HAAR),
        help="crop with this detector (needed when the study used its database's own boxes)",
    )
    parser.add_argument(
        "--per-frame", action="store_true", help="frame heads: print each frame's score too"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="libraries' INFO lines too")
    parser.add_argument("clips", nargs="+", type=Path, metavar="CLIP", help="video or frame folder")
    args = parser.parse_args(argv)
    if args.study and not args.best:
        parser.error("--study needs --best (or name a trial with --run RUN_ID)")
    if args.best and not args.study:
        parser.error("--best needs --study NAME")
    if args.head_family and not args.best:
        parser.error("--head-family goes with --study NAME --best")
    return args


def load_scorer(args: argparse.Namespace) -> scoring.Scorer:
    """The run's head on its backbone; ScoringError (one line) for any bad input."""
    run_id = args.run or scoring.best_trial_run(args.study, args.head_family)
    model = scoring.trial_model(run_id)
    weights = scoring.backbone_weights(model, args.weights)  # checked before anything is built
    detector = scoring.crop_detector(model.face_crop, args.face_detector)
    with tempfile.TemporaryDirectory() as folder:
        head_weights = scoring.fetch_head_weights(model, Path(folder))
        top_weights = scoring.fetch_top_weights(model, Path(folder))
        print(model.describe(), file=sys.stderr)
        return scoring.Scorer(model, head_weights, weights, detector, top_weights)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mlflow").setLevel(level)
    if args.tracking_uri:
        mlflow.set_tracking_uri(args.tracking_uri)
    try:
        scorer = load_scorer(args)
    except (ScoringError, PortError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    skipped = 0
    print("clip\tbonafide_probability\tdecision" + ("\tframe_scores" if args.per_frame else ""))
    for path in args.clips:
        try:
            result = scorer.score_clip(path)
        except DataError as err:
            print(f"skipped: {err}", file=sys.stderr)
            skipped += 1
            continue
        line = f"{path}\t{result.score:.6f}\t{DECISIONS[result.bonafide]}"
        if args.per_frame:  # empty for a sequence head, which scores the clip as a whole
            frames = result.frame_scores if result.frame_scores is not None else []
            line += "\t" + ",".join(f"{s:.6f}" for s in frames)
        print(line, flush=True)
    if skipped:
        print(
            f"error: {skipped} of {len(args.clips)} clips could not be read (named above)",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
