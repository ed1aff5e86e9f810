"""Peak memory of a long study against a short one: does a sweep's process grow with its trials?

    python bench/rss.py [--short 10] [--long 50] [--heads '*']

Generates the tiny set of ``tests.test_sweep`` (16 clips of 3 frames), extracts its fc7 features
once (a one-trial study, not measured), then runs ``python experiments/sweep.py`` as a user
would, each study a fresh process with its own Optuna and MLflow stores: ``--short`` trials,
then ``--long`` trials, on the default study's heads (``--heads``) over the cached features.
Each process's peak RSS is its own (``os.wait4``: ``ru_maxrss``); while it runs, its resident
memory is read from ``/proc`` at every trial line it prints (now and the peak so far), so growth
per trial shows, and whether the peak came in the trials or in the closing comparison. This
process never imports Keras or TensorFlow, so the children inherit nothing large.

Goal (issue 10): peak RSS of the long study < 1.1x the short one's. Results: bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "experiments" / "sweep.py"
FRAMES = 3  # tests.test_sweep.FRAMES, without importing the tests (and Keras) here


def write_tiny_set(root: Path) -> None:
    """tests.test_sweep.write_tiny_set in a child process, so this one stays small."""
    code = (
        "import sys; from pathlib import Path; from tests.test_sweep import write_tiny_set; "
        "write_tiny_set(Path(sys.argv[1]))"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", code, str(root)], cwd=ROOT, env=env, check=True)


def memory_mib(pid: int) -> tuple[float, float] | None:
    """(resident now, peak resident so far) of process ``pid``, MiB, from /proc."""
    found = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    found[line[:5]] = int(line.split()[1]) / 1024
    except OSError:
        return None
    return (found["VmRSS"], found["VmHWM"]) if len(found) == 2 else None


def sweep(work: Path, trials: int, heads: str, name: str) -> dict:
    """One study in a fresh process: seconds, peak RSS, RSS and peak so far after each trial
    line, and the widest head a trial trained (the head names its width: dense3987)."""
    folder = work / name
    folder.mkdir()
    command = [sys.executable, str(SWEEP)]
    command += ["--data", str(work / "data"), "--cache-dir", str(work / "cache")]
    command += ["--frames", str(FRAMES), "--heads", heads, "--trials", str(trials)]
    command += ["--study", name, "--storage", f"sqlite:///{folder}/optuna.db"]
    command += ["--tracking-uri", f"sqlite:///{folder}/mlflow.db"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    after: list[float] = []  # RSS MiB when each trial's line was printed
    high: list[float] = []  # the peak RSS so far, then
    widest = ("", 0)
    peak_at = ""  # the trial line after which the peak last rose
    start = time.perf_counter()
    with open(folder / "stderr.log", "w") as err, open(folder / "stdout.log", "w") as log:
        child = subprocess.Popen(
            command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=err, text=True
        )
        for line in child.stdout:
            log.write(line)
            if line.startswith("#"):  # one line per finished, pruned or failed trial
                memory = memory_mib(child.pid)
                if memory is not None:
                    if high and memory[1] > high[-1] + 1:
                        peak_at = " ".join(line.split()[:2])
                    after.append(memory[0])
                    high.append(memory[1])
                head = re.match(r"#\d+\s+(\D+)(\d+)\s", line)  # "#12   dense3987  softmax ..."
                if head and int(head.group(2)) > widest[1]:
                    widest = (head.group(1), int(head.group(2)))
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if child.returncode != 0:
        tail = (folder / "stderr.log").read_text()[-3000:]
        sys.exit(f"{name} failed ({child.returncode}):\n{tail}")
    return {
        "trials": trials,
        "seconds": seconds,
        "peak": usage.ru_maxrss / 1024,
        "after": after,
        "high": high,
        "widest": f"{widest[0]}{widest[1]}",
        "peak_at": peak_at,
    }


def growth(after: list[float], first: int) -> float:
    """Least-squares slope of RSS (MiB per trial) from trial ``first`` on."""
    points = list(enumerate(after))[first:]
    if len(points) < 2:
        return float("nan")
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=10, help="trials of the short study")
    parser.add_argument("--long", type=int, default=50, help="trials of the long study")
    parser.add_argument("--heads", default="*", help="fnmatch pattern over head names")
    parser.add_argument("--work", type=Path, help="working folder, kept (default: temporary)")
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()[0]
    begun = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-rss-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        write_tiny_set(work / "data")
        sweep(work, 1, "lstm30", "extract")  # fills the feature cache; not measured
        rows = [sweep(work, n, args.heads, f"study-{n}") for n in (args.short, args.long)]
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    print(
        f"\nbench/rss.py, {started}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at "
        f"the end; --heads '{args.heads}', {FRAMES} frames x 16 clips, cached features; "
        f"{time.perf_counter() - begun:.0f} s in all\n"
    )
    print(
        "| trials | seconds | widest head trained | peak RSS MiB | peak by the "
        "last trial | peak last rose in | RSS after trial 1 | after trial 10 | after the last "
        "| growth MiB/trial (from trial 10) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        after = row["after"]
        tenth = f"{after[9]:.0f}" if len(after) >= 10 else ""
        print(
            f"| {row['trials']} | {row['seconds']:.0f} | {row['widest']} | {row['peak']:.0f} "
            f"| {row['high'][-1]:.0f} | {row['peak_at']} | {after[0]:.0f} | {tenth} "
            f"| {after[-1]:.0f} "
            f"| {growth(after, 9):.2f} |"
        )
    short, long = rows
    print(
        f"\npeak RSS, {long['trials']} trials / {short['trials']} trials: "
        f"{long['peak'] / short['peak']:.3f} (goal < 1.1); RSS after the last trial: "
        f"{long['after'][-1] / short['after'][-1]:.3f}"
    )


if __name__ == "__main__":
    main()
