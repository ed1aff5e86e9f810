"""Command-line flags shared by the commands that turn data into features, so they agree.

``experiments/extract.py`` and ``experiments/sweep.py`` take the same data flags and hand them to
:func:`core.features.cached_features`: a cache written by one is reused by the other.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# TensorFlow's C++ INFO/WARNING chatter would bury our output; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core.constants import AUTO_PRECISION, FRAMES_PER_CLIP, PRECISIONS  # noqa: E402
from core.data.layouts import AUTO, protocol_names  # noqa: E402
from core.features import FeatureOptions  # noqa: E402
from core.features.faces import AUTO as AUTO_DETECTOR  # noqa: E402
from core.features.faces import DETECTORS  # noqa: E402


def add_feature_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that choose the clips, the backbone and the frames."""
    group = parser.add_argument_group("data and features")
    group.add_argument(
        "--data", type=Path, help="dataset root (README: Your data); default: the synthetic set"
    )
    group.add_argument(
        "--weights", type=Path, help="vgg_face.mat or a converted .weights.h5 (python -m core.port)"
    )
    group.add_argument(
        "--cache-dir",
        type=Path,
        help="cache folder; default $VGGFACE_HEADS_CACHE or $XDG_CACHE_HOME/vggface-heads",
    )
    group.add_argument(
        "--protocol",
        default=AUTO,
        choices=[AUTO, *protocol_names()],
        help="evaluation protocol (default auto: the database is recognised from its files and "
        "its first protocol runs, e.g. oulu-p1)",
    )
    group.add_argument(
        "--fold",
        type=int,
        help="the protocol's fold, for protocols with folds (oulu-p3, oulu-p4: 1-6)",
    )
    group.add_argument("--subject-pattern", help="regex whose first group is the subject")
    group.add_argument(
        "--split-seed", type=int, default=0, help="seed of the subject split and synthetic set"
    )
    group.add_argument(
        "--frames", type=int, default=FRAMES_PER_CLIP, help=f"frames per clip ({FRAMES_PER_CLIP})"
    )
    group.add_argument(
        "--face-crop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="crop frames to the face (default: on for --data, off for the synthetic set)",
    )
    group.add_argument(
        "--face-detector",
        choices=DETECTORS,
        default=AUTO_DETECTOR,
        help="auto: MTCNN where it runs, else OpenCV's Haar cascade",
    )
    group.add_argument(
        "--no-database-boxes",
        dest="database_boxes",
        action="store_false",
        help="detect faces even where the database ships face boxes",
    )
    group.add_argument(
        "--precision",
        choices=(AUTO_PRECISION, *PRECISIONS),
        default=AUTO_PRECISION,
        help="float32, or Keras' mixed bfloat16/float16 (float32 weights, outputs and loss) for "
        "extraction and training; auto (default): bfloat16 extraction where the CPU or GPU has "
        "bfloat16 units, else float32, and float32 training; features are cached per precision",
    )
    group.add_argument(
        "--batch-size",
        type=int,
        help="frames per forward pass (default: the device's, 16 on a CPU)",
    )


def feature_options(args: argparse.Namespace, progress: bool = True) -> FeatureOptions:
    """The :class:`FeatureOptions` that the flags of :func:`add_feature_arguments` say."""
    return FeatureOptions(
        data=args.data,
        weights=args.weights,
        cache_dir=args.cache_dir,
        protocol=args.protocol,
        fold=args.fold,
        subject_pattern=args.subject_pattern,
        split_seed=args.split_seed,
        frames=args.frames,
        face_crop=args.face_crop,
        face_detector=args.face_detector,
        database_boxes=args.database_boxes,
        precision=args.precision,
        batch_size=args.batch_size,
        progress=progress,
    )
