"""Extract the fc7 features of a dataset into the cache, or find them there.

    python experiments/extract.py [--data DIR] [--weights W] [--cache-dir D] [--frames 7]
        [--face-crop] [--protocol auto] [--subject-pattern RE] [--split-seed 0] [--batch-size 16]

Without ``--data`` the embedded synthetic PAD set is generated under ``<cache-dir>/synthetic``
(a demonstration set, labelled as such). Without ``--weights`` the converted file at the default
location is used if there is one (see :mod:`core.features.extract`), else a random backbone, loudly.

Prints the dataset summary, the clips skipped while decoding, then clips, frames, frames/s,
whether the cache was reused, and the cache folder. Bad input exits with status 2 and one line
on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys

from experiments.cli import add_feature_arguments, feature_options


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python experiments/extract.py",
        description="Extract (or reuse) the cached VGG-Face fc7 features of a dataset.",
    )
    add_feature_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
    )
    from core.backbone.matconvnet import PortError
    from core.data.clips import DataError
    from core.features import cached_features

    datasets = []

    def announce(dataset) -> None:
        datasets.append(dataset)
        print(dataset.summary(), flush=True)

    try:
        fs = cached_features(feature_options(args, progress=not args.no_progress), announce)
    except (DataError, PortError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # an unwritable cache folder, a full disk
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        return 2

    dataset = datasets[0]
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
