"""How often each face detector finds the face, per attack species, on the synthetic set and the
test fixtures.

    python bench/face_detect.py [--frames 7] [--seed 0] [--work DIR]

For every clip the frames extraction uses (``frames`` evenly spaced, :func:`read_clip`), each
detector of :mod:`core.features.faces` (Haar always; MTCNN where it can run) looks for the face.
Prints one markdown table: set, species, clips, frames, then per detector the share of frames
with a face and the milliseconds per frame. The synthetic set's clips all show a (drawn) face, so
a miss is the detector's; the test fixtures (noise, bit blocks) show none, so a "face" there is a
false detection. A detector that misses more on one species than on bona fide gives a head a
shortcut: compare the rows. Results: ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.constants import FRAMES_PER_CLIP  # noqa: E402
from core.data.clips import ClipError  # noqa: E402
from core.data.dataset import load_dataset  # noqa: E402
from core.data.frames import read_clip  # noqa: E402
from core.features import faces  # noqa: E402


def fixture_sets(work: Path) -> dict[str, Path]:
    """The test suite's own fixtures: noise clips of 3 frames (test_features, all 3 used) and
    bit-block videos (test_frames)."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_features import write_dataset
    from test_frames import write_video

    noise = write_dataset(work / "noise")
    blocks = work / "blocks"
    for i, split in enumerate(("train", "dev", "test")):
        for label in ("real", "attack"):
            write_video(blocks / split / label / f"client{i:03d}_{label}.avi", range(30))
    return {"fixtures (noise)": noise, "fixtures (blocks)": blocks}


def measure(root: Path, frames: int, detectors: list[str]) -> dict[str, dict[str, list[float]]]:
    """species -> detector -> [clips, frames, found, seconds]."""
    table: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0] * 4))
    for clip in load_dataset(root).source_clips:
        try:
            raw, _ = read_clip(clip.path, frames)
        except ClipError:  # a short fixture clip: all of its frames
            raw, _ = read_clip(clip.path, 3)
        for name in detectors:
            start = time.perf_counter()
            boxes = faces.detect_faces(raw, name)
            row = table[clip.attack_type][name]
            row[0] += 1
            row[1] += len(boxes)
            row[2] += sum(box is not None for box in boxes)
            row[3] += time.perf_counter() - start
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=FRAMES_PER_CLIP, help="frames per clip")
    parser.add_argument("--seed", type=int, default=0, help="synthetic set seed")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    args = parser.parse_args(argv)

    detectors = [faces.HAAR]
    reason = faces.mtcnn_unavailable()
    if reason is None:
        detectors.append(faces.MTCNN)
        start = time.perf_counter()
        faces.FaceFinder(faces.MTCNN).load()
        print(f"MTCNN loaded in {time.perf_counter() - start:.1f} s")
    else:
        print(f"MTCNN not measured: {reason}")

    from core.data.synthetic import synthetic_dataset

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        sets = {"synthetic": synthetic_dataset(work / "synthetic", seed=args.seed)}
        sets.update(fixture_sets(work))
        header = ["set", "species", "clips", "frames"]
        for name in detectors:
            header += [f"{name} found", f"{name} ms/frame"]
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for label, root in sets.items():
            table = measure(root, args.frames, detectors)
            for species in sorted(table, key=lambda s: (s != "bonafide", s)):
                rows = table[species]
                clips, frames = rows[detectors[0]][:2]
                cells = [label, species, str(clips), str(frames)]
                for name in detectors:
                    _, n, found, seconds = rows[name]
                    cells += [f"{found}/{n} ({100 * found / n:.0f}%)", f"{1000 * seconds / n:.1f}"]
                print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
