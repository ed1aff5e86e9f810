"""The default study's trial phase at two revisions of the code, side by side in one run.

    python bench/study_ab.py BEFORE [--after REV] [--rounds 2] [--cache DIR]

Checks out ``BEFORE`` (and ``--after``, default: this working tree) into temporary worktrees, fills
one feature cache with a cold run of the README's main job (``python experiments/sweep.py``) at the
after revision (or takes ``--cache``, one that job already filled), then runs the job warm (cached
fc7, a new study in an empty folder, the 12 trials) at each revision in turn, ``--rounds`` times,
alternating, so a noisy machine disturbs both alike. Prints each run's wall time, the sums of the
trials' own times (the "time" column the sweep prints): every trial's, the five write-up baselines'
(never pruned, so the same work at both revisions) and the finished trials', and each trial's dev
and test ACER at both revisions: the trial phase's speed-up, and whether the figures moved.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import tempfile
from pathlib import Path

from default_sweep import run_default  # bench/default_sweep.py

ROOT = Path(__file__).resolve().parents[1]
TRIAL = re.compile(r"^#(\d+)\s+(\S+).*?(\d+\.\d)%\s+(\d+\.\d)%.*?(\d+\.\d)s\s*$")
ANY_TRIAL = re.compile(r"^#(\d+)\s+\S+.*?(\d+\.\d)s\s*$")  # pruned ones too
BASELINES = 5  # trials 0-4: the write-up heads, never pruned (the pruner's startup trials)


def trials(out: str) -> dict[int, tuple[str, float, float, float]]:
    """Trial number: (head, dev ACER %, test ACER %, seconds), from the sweep's trial lines."""
    found = {}
    for line in out.splitlines():
        match = TRIAL.match(line.strip())
        if match:
            number, head, dev, test, seconds = match.groups()
            found[int(number)] = (head, float(dev), float(test), float(seconds))
    return found


def seconds(out: str) -> dict[int, float]:
    """Trial number: its own seconds, for every trial line (finished or pruned)."""
    found = {}
    for line in out.splitlines():
        match = ANY_TRIAL.match(line.strip())
        if match:
            found[int(match.group(1))] = float(match.group(2))
    return found


def checkout(rev: str, into: Path) -> Path:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), rev],
        check=True,
        capture_output=True,
    )
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="the revision to compare with (a commit)")
    parser.add_argument("--after", default=None, help="default: this working tree")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--cache",
        type=lambda path: Path(path).expanduser().resolve(),  # the sweeps run in other folders
        default=None,
        help="a cache folder (XDG_CACHE_HOME) the default job already filled: no cold run",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        codes = {"before": checkout(args.before, tmp / "before")}
        codes["after"] = checkout(args.after, tmp / "after") if args.after else ROOT
        try:
            load = os.getloadavg()[0]
            cache = args.cache or tmp / "cache"
            cold = 0.0 if args.cache else run_default(tmp / "cold", cache, codes["after"])[0]
            runs: dict[str, list[tuple[float, str]]] = {"before": [], "after": []}
            for round_ in range(args.rounds):
                for side in ("before", "after"):
                    runs[side].append(run_default(tmp / f"{side}{round_}", cache, codes[side]))
        finally:
            for side in ("before", "after"):
                if codes[side] != ROOT:
                    subprocess.run(
                        ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(codes[side])],
                        check=False,
                    )
    cpu = platform.processor() or platform.machine()
    print(
        f"machine: {cpu}, {os.cpu_count()} cores, load average {load:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at the end; "
        + (
            f"cache {args.cache} (no cold run)"
            if args.cache
            else f"cold run (fills the cache) {cold:.1f} s"
        )
    )
    print(f"before = {args.before}, after = {args.after or 'working tree'}")
    print(
        "| run | side | wall s | every trial's own s | the 5 write-up baselines' own s "
        "| the finished trials' own s |"
    )
    print("|---|---|---|---|---|---|")
    sums: dict[str, list[tuple[float, float, float]]] = {"before": [], "after": []}
    for round_ in range(args.rounds):
        for side in ("before", "after"):
            wall, out = runs[side][round_]
            every = seconds(out)
            row = (
                sum(every.values()),
                sum(t for n, t in every.items() if n < BASELINES),
                sum(t[3] for t in trials(out).values()),
            )
            sums[side].append(row)
            cells = " | ".join(f"{v:.1f}" for v in row)
            print(f"| {round_ + 1} | {side} | {wall:.1f} | {cells} |")
    for column, what in enumerate(("every trial", "the 5 baselines (like for like)")):
        fastest = [min(r[column] for r in sums[side]) for side in ("before", "after")]
        print(f"{what}, fastest of each: before / after = {fastest[0] / fastest[1]:.2f}x")
    print("(the other trials are TPE's: pruned at one side, finished at the other, they differ)")
    before, after = trials(runs["before"][0][1]), trials(runs["after"][0][1])
    print("| trial | head | dev ACER % before / after | test ACER % before / after |")
    print("|---|---|---|---|")
    for number in sorted(before.keys() | after.keys()):
        b = before.get(number, ("-", float("nan"), float("nan"), 0.0))
        a = after.get(number, ("-", float("nan"), float("nan"), 0.0))
        head = b[0] if b[0] == a[0] else f"{b[0]} / {a[0]}"
        print(f"| {number} | {head} | {b[1]} / {a[1]} | {b[2]} / {a[2]} |")


if __name__ == "__main__":
    main()
