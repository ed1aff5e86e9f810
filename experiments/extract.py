"""Extract the fc7 features of a dataset into the cache, or find them there.

    python experiments/extract.py [--data DIR] [--weights W] [--cache-dir D] [--frames 7]
                                  [--face-crop] [--protocol auto] [--seed 0]

Without ``--data`` the embedded synthetic PAD set is generated under ``<cache-dir>/synthetic``
(a demonstration set, labelled as such). Without ``--weights`` the converted file at the default
location is used if there is one (see :mod:`core.features`), else a random backbone, loudly.

Prints the dataset summary, the clips skipped while decoding, then clips, frames, frames/s,
whether the cache was reused, and the cache folder. Bad input exits with status 2 and one line
on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

# TensorFlow's C++ INFO/WARNING chatter would bury our output; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python experiments/extract.py",
        description="Extract (or reuse) the cached VGG-Face fc7 features of a dataset.",
    )
    parser.add_argument(
        "--data", type=Path, help="dataset root (SPEC §4 layouts); default: the synthetic set"
    )
    parser.add_argument(
        "--weights", type=Path, help="vgg_face.mat or a converted .weights.h5 (python -m core.port)"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="cache folder; default $VGGFACE_HEADS_CACHE or ~/.cache/vggface-heads",
    )
    parser.add_argument("--frames", type=int, default=7, help="frames per clip (default 7)")
    parser.add_argument("--face-crop", action="store_true", help="crop to the largest Haar face")
    parser.add_argument(
        "--protocol", default="auto", help="auto, generic, casia or oulu (default auto)"
    )
    parser.add_argument("--subject-pattern", help="regex whose first group is the subject")
    parser.add_argument("--seed", type=int, default=0, help="split and synthetic-set seed")
    parser.add_argument("--batch-size", type=int, default=16, help="frames per forward pass")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
    )
    from core.clips import DataError
    from core.datasets import load_dataset
    from core.features import default_cache_dir, extract_features

    try:
        cache_dir = args.cache_dir if args.cache_dir is not None else default_cache_dir()
        if args.data is None:
            from core.synthetic import synthetic_dataset

            root = synthetic_dataset(cache_dir / "synthetic", seed=args.seed)
        else:
            root = args.data
        dataset = load_dataset(
            root, protocol=args.protocol, subject_pattern=args.subject_pattern, seed=args.seed
        )
        print(dataset.summary(), flush=True)
        fs = extract_features(
            dataset,
            weights=args.weights,
            cache_dir=cache_dir,
            frames_per_clip=args.frames,
            face_crop=args.face_crop,
            batch_size=args.batch_size,
            progress=not args.no_progress,
        )
    except ValueError as err:  # DataError and PortError; core.port imported only when needed
        from core.port import PortError

        if not isinstance(err, DataError | PortError):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # an unwritable cache folder, a full disk
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        return 2

    decode_skips = fs.skipped[len(dataset.skipped) :]
    if decode_skips:
        print(f"skipped while decoding: {len(decode_skips)} clips")
        for path, reason in decode_skips:
            print(f"  skipped {path}: {reason}")
    print(f"clips:    {len(fs.clips)} usable, {len(fs.skipped)} skipped")
    print(f"frames:   {fs.frames} ({fs.frames_per_clip} per clip, face crop {fs.face_crop})")
    rate, took = fs.manifest.get("frames_per_second"), fs.manifest.get("extract_seconds")
    if fs.extracted:
        print(f"frames/s: {rate:.2f} (decoding and network, {took:.1f} s)")
        print(f"cache:    extracted in {fs.seconds:.1f} s with loading the backbone")
    else:
        print(f"frames/s: {rate:.2f} when extracted")
        print(f"cache:    reused (extracted {fs.manifest.get('created')}), {fs.seconds:.2f} s")
    print(f"path:     {fs.path}")
    weights = "RANDOM backbone (not VGG-Face)" if fs.random_weights else fs.weights_fingerprint
    print(f"weights:  {weights}")
    if fs.synthetic:
        print("data:     synthetic demonstration set")
    return 0


if __name__ == "__main__":
    sys.exit(main())
