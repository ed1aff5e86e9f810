"""Speed and memory of fc7 extraction, against a plain decode + keras.applications VGG16 script.

    python bench/extract.py [--subjects 24] [--small-subjects 3] [--frames 7] [--quick]
        [--precisions float32,bfloat16]

One run, side by side, each step a fresh process timed from start to exit (imports included):

1. ``small`` and ``large`` generated datasets (a bona fide and an attack clip per subject,
   30 frames of 640x480 Motion-JPEG each);
2. ours, cold: ``python experiments/extract.py`` on an empty cache;
3. baseline: this file's ``--baseline`` mode, the script one would write by hand: read each video
   through with OpenCV, keep the same evenly spaced frames, resize to 224x224, stack them all,
   ``keras.applications.VGG16(weights=None, include_top=True)`` cut at ``fc2`` (the same
   convolutions and FC sizes as VGG-Face to fc7, so the same FLOPs), ``predict`` in batches of
   16, ``np.save``;
4. ours, warm: the same command again, reusing the cache.

On the large set, for each precision (``--precisions``: float32, and Keras' mixed bfloat16 on
both sides: ``--precision bfloat16`` for ours, ``mixed_bfloat16`` as the global policy for the
baseline), ours and the baseline run twice each (ours, baseline, baseline, ours) and the best of
each is compared, since the machine may be shared. Reports ours/baseline per precision (goal
<= 1.00, issue 10), ours in bfloat16 against ours in float32, warm/cold (goal <= 0.10) on the
large set, and each process's peak RSS (``os.wait4``) on both sets: ours should not grow with the
dataset; the baseline holds every frame and does.
Both sides run random weights (no weights file needed). Results: ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT, CLIP_FRAMES = 640, 480, 30
BATCH = 16
LABELS = {
    "cold": "ours, cold",
    "baseline": "baseline",
    "warm": "ours, warm",
    "imports": "import core only",
}
RATIO_GOAL = 1.00  # ours/baseline, issue 10: "keep it <= 1.0x"
MEAN_RGB = (129.1863, 104.7624, 93.5940)  # VGG-Face averageImage, as core.vggface uses


# --- the plain baseline (runs in its own process) --------------------------------------------


def baseline(data: Path, out: Path, frames: int, precision: str = "float32") -> None:
    """Decode, resize, VGG16-to-fc2, np.save: no cache, no threads, everything in memory.

    ``precision`` "bfloat16": Keras' ``mixed_bfloat16`` policy, set before the model is built, as
    the mixed-precision guide says; features saved as float32."""
    import cv2
    import keras

    if precision != "float32":
        keras.mixed_precision.set_global_policy(f"mixed_{precision}")
    clips = sorted(data.rglob("*.avi"))
    images = []
    for clip in clips:
        cap = cv2.VideoCapture(str(clip))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = {((2 * i + 1) * n) // (2 * frames) for i in range(frames)}
        for index in range(n):
            ok, bgr = cap.read()
            if not ok:
                break
            if index in wanted:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                images.append(cv2.resize(rgb, (224, 224), interpolation=cv2.INTER_AREA))
        cap.release()
    x = np.stack(images).astype(np.float32) - np.float32(MEAN_RGB)
    vgg = keras.applications.VGG16(weights=None, include_top=True)
    fc2 = keras.Model(vgg.input, vgg.get_layer("fc2").output)
    features = fc2.predict(x, batch_size=BATCH, verbose=0).astype(np.float32)
    np.save(out, features.reshape(len(clips), frames, -1))


# --- data ------------------------------------------------------------------------------------


def make_dataset(root: Path, subjects: int, seed: int) -> int:
    """``subjects`` x (1 bona fide + 1 attack) videos under train/dev/test (3:1:1 by subject)."""
    import cv2

    rng = np.random.default_rng(seed)
    n_dev = n_test = max(1, subjects // 5)
    splits = ["dev"] * n_dev + ["test"] * n_test
    splits = ["train"] * (subjects - len(splits)) + splits
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    ramp = (xx / WIDTH * 60)[..., None]
    noise = rng.normal(0, 6, (8, HEIGHT, WIDTH, 3)).astype(np.float32)  # cycled: cheap to make
    count = 0
    for s, split in enumerate(splits):
        for label in ("real", "attack"):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"client{s:03d}_{count:03d}.avi"
            fourcc = cv2.VideoWriter_fourcc(*"MJPG")
            writer = cv2.VideoWriter(str(path), fourcc, 15, (WIDTH, HEIGHT))
            base = rng.integers(0, 256, 3).astype(np.float32) * 0.5 + ramp
            for t in range(CLIP_FRAMES):
                # a moving blob over a gradient, plus noise: something for the codec to work on
                cx, cy = WIDTH / 2 + 80 * np.sin(t / 5 + s), HEIGHT / 2 + 40 * np.cos(t / 7)
                blob = np.exp(((xx - cx) ** 2 + (yy - cy) ** 2) * np.float32(-1 / 7200))
                frame = base + 120 * blob[..., None] + noise[(t + count) % len(noise)]
                writer.write(np.clip(frame, 0, 255).astype(np.uint8))
            writer.release()
            count += 1
    return count


# --- measurement -----------------------------------------------------------------------------


def timed(name: str, command: list[str], log_dir: Path) -> dict:
    """Run ``command``: wall seconds and the child's peak RSS (MiB, from wait4).

    The peak includes what the child inherits from this process between fork and exec (~150 MiB
    of numpy and OpenCV), a floor that only shows on tiny runs.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("VGGFACE_WEIGHTS", None)  # both sides run random backbones
    with open(log_dir / f"{name}.out", "w") as out, open(log_dir / f"{name}.err", "w") as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        tail = (log_dir / f"{name}.err").read_text()[-2000:]
        raise SystemExit(f"{name} failed with status {child.returncode}:\n{tail}")
    return {"seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024}


def machine() -> dict:
    cpu = "?"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "load": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=24, help="large set: 2 clips each")
    parser.add_argument("--small-subjects", type=int, default=3, help="small set: 2 clips each")
    parser.add_argument("--frames", type=int, default=7, help="frames per clip")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check that it runs")
    parser.add_argument(
        "--precisions",
        default="float32,bfloat16",
        help="precisions compared on the large set (float32 first: the small set and the warm "
        "run use it)",
    )
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline:
        baseline(args.data, args.out, args.frames, args.precision)
        return 0
    precisions = args.precisions.split(",")
    if precisions[0] != "float32":
        parser.error("--precisions must start with float32")
    if args.quick:
        args.subjects, args.small_subjects, args.frames = 3, 3, 2

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-extract-"))
    work.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(f"machine: {info['nproc']} CPUs, {info['cpu']}, Python {info['python']}")
    print(f"date:    {info['date']}; load average before: {info['load']}")

    results: dict[str, dict] = {}
    sizes = {"small": args.small_subjects, "large": args.subjects}
    for size, subjects in sizes.items():
        clips = make_dataset(work / size / "data", subjects, seed=len(size))
        frames = clips * args.frames
        print(f"{size}: {clips} clips x {args.frames} frames = {frames} frames ({WIDTH}x{HEIGHT})")
        results[size] = {"clips": clips, "frames": frames, "runs": []}

    # whole frames, as the baseline reads them: the face crop is bench/face_detect.py's subject
    ours = [
        sys.executable,
        str(REPO / "experiments" / "extract.py"),
        "--no-progress",
        "--no-face-crop",
    ]
    plain = [sys.executable, str(Path(__file__).resolve()), "--baseline"]

    def run(size: str, kind: str, cache: str = "cache", precision: str = "float32") -> None:
        common = ["--data", str(work / size / "data"), "--frames", str(args.frames)]
        common += ["--precision", precision]
        if kind == "baseline":
            command = [*plain, *common, "--out", str(work / size / "baseline.npy")]
        elif kind == "imports":
            command = [sys.executable, "-c", "import core.features, core.data.dataset"]
        else:
            command = [*ours, *common, "--cache-dir", str(work / size / cache)]
        name = f"{size}-{kind}-{len(results[size]['runs'])}"
        record = {"kind": kind, "precision": precision, **timed(name, command, work)}
        if kind.startswith("warm"):
            out = (work / f"{name}.out").read_text()
            found = re.search(r"^cache: +reused .*, ([\d.]+) s$", out, re.M)
            if found is None:
                raise SystemExit(f"the warm run did not reuse the cache:\n{out}")
            record["in_process_seconds"] = float(found.group(1))
        results[size]["runs"].append(record)

    # small first (it also warms the disk cache for the imports); the large set in the order
    # ours, baseline, baseline, ours so that a drift in the machine's load hits both alike
    run("small", "cold")
    run("small", "baseline")
    for n, precision in enumerate(precisions):
        run("large", "cold", cache=f"cache-{precision}-1", precision=precision)
        run("large", "baseline", precision=precision)
        run("large", "baseline", precision=precision)
        run("large", "cold", cache=f"cache-{precision}-2", precision=precision)
        if n == 0:  # the warm run reuses the float32 cache just written
            run("large", "warm", cache=f"cache-{precision}-2")
    run("large", "imports")

    print()
    print("| set | clips | frames | precision | run | seconds | frames/s | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for size in ("small", "large"):
        r = results[size]
        for record in r["runs"]:
            kind = record["kind"]
            timed_frames = kind in ("cold", "baseline")
            rate = f"{r['frames'] / record['seconds']:.2f}" if timed_frames else ""
            print(
                f"| {size} | {r['clips']} | {r['frames']} | {record['precision']} | "
                f"{LABELS[kind]} | {record['seconds']:.1f} | {rate} | "
                f"{record['peak_rss_mib']:.0f} |"
            )

    def best(size: str, kind: str, key="seconds", pick=min, precision="float32") -> float:
        runs = results[size]["runs"]
        return pick(x[key] for x in runs if x["kind"] == kind and x["precision"] == precision)

    print()
    for precision in precisions:
        cold = best("large", "cold", precision=precision)
        base = best("large", "baseline", precision=precision)
        print(
            f"ours/baseline, {precision:<8} (large, best of 2 each):  {cold / base:.3f}  "
            f"(goal <= {RATIO_GOAL:.2f})"
        )
    cold = best("large", "cold")
    for precision in precisions[1:]:
        faster = cold / best("large", "cold", precision=precision)
        plain_faster = best("large", "baseline") / best("large", "baseline", precision=precision)
        print(
            f"{precision} frames/s / float32 frames/s: ours {faster:.2f}x, baseline "
            f"{plain_faster:.2f}x (whole processes)"
        )
    warm = best("large", "warm")
    print(f"warm/cold (large, float32, best cold):   {warm / cold:.3f}  (goal <= 0.10)")
    print(
        f"  of the warm run, {best('large', 'imports'):.1f} s is importing core.features and "
        f"core.data.dataset (no Keras); finding and opening the cache took "
        f"{best('large', 'warm', 'in_process_seconds')} s"
    )
    extra = results["large"]["frames"] - results["small"]["frames"]
    for kind in ("cold", "baseline"):
        small, large = (best(s, kind, "peak_rss_mib", max) for s in ("small", "large"))
        print(
            f"peak RSS, {LABELS[kind]}: small {small:.0f} MiB, large {large:.0f} MiB "
            f"({large - small:+.0f} MiB for {extra} more frames)"
        )
    print(f"load average after: {os.getloadavg()}")
    (work / "results.json").write_text(json.dumps({"machine": info, "results": results}, indent=1))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
