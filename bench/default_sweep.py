"""Wall time of the README's main job, `python experiments/sweep.py`, as on a fresh machine.

Runs the default command in an empty folder with an empty cache (so the synthetic set is
generated and its fc7 features extracted), then once more in another empty folder with the cache
kept (a new study on reused features), and prints both wall times and the per-trial lines, and
the seconds the synthetic set's generation takes alone (a test asserted them once). Then
it reruns the finished study in the first folder, alternately by the full path (its recorded
closing deleted first: MLflow and Optuna imported, both stores queried) and replayed from the
record (:mod:`experiments.commands.replay`), three times each, and checks both print the same.

    python bench/default_sweep.py
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_default(workdir: Path, cache: Path, code: Path = ROOT) -> tuple[float, str]:
    """The README's main job of the checkout ``code`` in ``workdir``, its feature cache at
    ``cache``: wall seconds and what it printed."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, XDG_CACHE_HOME=str(cache), PYTHONUNBUFFERED="1", PYTHONPATH=str(code))
    env.pop("VGGFACE_HEADS_CACHE", None)
    env.pop("VGGFACE_WEIGHTS", None)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(code / "experiments" / "sweep.py")],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"the sweep at {code} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return time.perf_counter() - start, result.stdout


def generation_seconds(folder: Path) -> float:
    """Seconds to write the embedded default set (seed 0) into ``folder``, in a child process."""
    code = (
        "import sys, time; from core.data.synthetic import synthetic_dataset; "
        "t = time.perf_counter(); synthetic_dataset(sys.argv[1], seed=0); "
        "print(time.perf_counter() - t)"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-c", code, str(folder)], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"generating the synthetic set failed:\n{result.stderr[-3000:]}")
    return float(result.stdout.split()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generated = generation_seconds(tmp / "synthetic")
        cache = tmp / "cache"
        (tmp / "cold").mkdir()
        (tmp / "warm").mkdir()
        cold, out = run_default(tmp / "cold", cache)
        warm, _ = run_default(tmp / "warm", cache)
        full, replayed = [], []
        for _ in range(3):  # interleaved: the machine's noise falls on both alike
            shutil.rmtree(cache / "vggface-heads" / "closings", ignore_errors=True)
            seconds, full_out = run_default(tmp / "cold", cache)
            full.append(seconds)
            seconds, replayed_out = run_default(tmp / "cold", cache)
            replayed.append(seconds)
            if replayed_out != full_out:
                sys.exit("the replayed closing differs from the full path's")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print("per-trial lines of the cold run:")
    print("\n".join(line for line in out.splitlines() if line.startswith(("#", "features"))))
    print(f"synthetic set generated alone:               {generated:7.1f} s")
    print(f"cold (generate set, extract fc7, 12 trials): {cold:7.1f} s")
    print(f"warm (cached fc7, new study, 12 trials):     {warm:7.1f} s")
    print(f"warm / cold: {warm / cold:.2f}")
    print("rerun of the finished study, wall seconds of each run:")
    print(f"  full path (stores opened):    {' '.join(f'{t:.2f}' for t in full)}")
    print(f"  replayed (stores unchanged):  {' '.join(f'{t:.2f}' for t in replayed)}")
    print(f"  full / replayed (medians): {sorted(full)[1] / sorted(replayed)[1]:.1f}x")


if __name__ == "__main__":
    main()
