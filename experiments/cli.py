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

from core.constants import FRAMES_PER_CLIP  # noqa: E402
from core.data.layouts import AUTO, layout_names  # noqa: E402
from core.features import FeatureOptions  # noqa: E402


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
        choices=[AUTO, *layout_names()],
        help="dataset layout (default: recognised from the files)",
    )
    group.add_argument("--subject-pattern", help="regex whose first group is the subject")
    group.add_argument(
        "--split-seed", type=int, default=0, help="seed of the subject split and synthetic set"
    )
    group.add_argument(
        "--frames", type=int, default=FRAMES_PER_CLIP, help=f"frames per clip ({FRAMES_PER_CLIP})"
    )
    group.add_argument("--face-crop", action="store_true", help="crop to the largest Haar face")
    group.add_argument("--batch-size", type=int, default=16, help="frames per forward pass")


def feature_options(args: argparse.Namespace, progress: bool = True) -> FeatureOptions:
    """The :class:`FeatureOptions` that the flags of :func:`add_feature_arguments` say."""
    return FeatureOptions(
        data=args.data,
        weights=args.weights,
        cache_dir=args.cache_dir,
        protocol=args.protocol,
        subject_pattern=args.subject_pattern,
        split_seed=args.split_seed,
        frames=args.frames,
        face_crop=args.face_crop,
        batch_size=args.batch_size,
        progress=progress,
    )
