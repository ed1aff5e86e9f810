"""Cache entry checksums: writing an entry, and loading it with and without verification, on a
500 MB entry, side by side in one run.

    python bench/checksum.py [--mb 500] [--dir DIR] [--repeats 3]

Writes one entry of fc7-shaped rows (clips x 7 frames x 4096 float32) through
:class:`core.features.store.PendingEntry` as extraction does (16 frames a window), then commits
it (fsync, SHA-256, rename). Then loads it, each timed load in a fresh process (a process trusts a
file it has written or checked, so a second load in one process would not hash again):
``load_entry(verify=False)`` (manifest and header checks, a memory map) and ``load_entry()`` (the
same plus one SHA-256 pass over the file), with the file in the page cache (warm) and evicted from
it (cold: ``posix_fadvise(DONTNEED)``), and, for scale, one full read of the array through the
map (what one training pass over every clip reads). Last, the standard library's other hashes
(and xxhash's XXH3 where installed) on the same warm file. Best of ``--repeats``; prints one table
and the ratios.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FRAMES, WIDTH, BATCH = 7, 4096, 16
KEY = "bench"

LOAD = """
import os, sys, time
from pathlib import Path
import numpy as np
from core.features import store

root, how = Path(sys.argv[1]), sys.argv[2]
npy = root / sys.argv[3] / store.ARRAY_FILE
if how.startswith("cold"):
    fd = os.open(npy, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
start = time.perf_counter()
array, manifest = store.load_entry(root, sys.argv[3], verify=how.endswith("verify"))
if how.endswith("read"):
    float(np.sum(array, dtype=np.float64))
print(time.perf_counter() - start)
"""


def write_entry(root: Path, clips: int) -> tuple[float, float]:
    """Seconds writing the rows and committing the entry."""
    from core.features import store

    rng = np.random.default_rng(0)
    rows = rng.standard_normal((BATCH * 64, WIDTH), dtype=np.float32)  # reused, 16 frames a time
    total = clips * FRAMES
    start = time.perf_counter()
    pending = store.PendingEntry(root, KEY, (clips, FRAMES, WIDTH))
    with pending:
        for first in range(0, total, BATCH):
            n = min(BATCH, total - first)
            at = first % (len(rows) - BATCH)
            pending.write(first, rows[at : at + n])
        wrote = time.perf_counter()
        pending.commit({"bench": True}, rows=clips)
    return wrote - start, time.perf_counter() - wrote


def load(root: Path, how: str, repeats: int) -> float:
    """Best seconds of ``repeats`` fresh processes loading the entry ``how``."""
    best = float("inf")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", LOAD, str(root), how, KEY],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        best = min(best, float(out.stdout.strip().splitlines()[-1]))
    return best


def hash_rates(path: Path, repeats: int) -> list[tuple[str, float]]:
    """(hash, best seconds) over the file, 1 MiB reads, for the hashes worth comparing."""
    makers = {
        "sha256": lambda: hashlib.sha256(),
        "sha1": lambda: hashlib.sha1(),
        "blake2b": lambda: hashlib.blake2b(),
        "md5": lambda: hashlib.md5(),
    }
    try:
        import xxhash

        makers["xxh3_128 (xxhash)"] = lambda: xxhash.xxh3_128()
    except ImportError:
        pass

    class Crc32:
        def __init__(self) -> None:
            self.value = 0

        def update(self, data) -> None:
            self.value = zlib.crc32(data, self.value)

    makers["crc32 (zlib)"] = Crc32
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    results = []
    for name, make in makers.items():
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            digest = make()
            with open(path, "rb", buffering=0) as data:
                while size := data.readinto(buffer):
                    digest.update(view[:size])
            best = min(best, time.perf_counter() - start)
        results.append((name, best))
    return results


def cpu() -> str:
    fields = {}
    with open("/proc/cpuinfo") as info:
        for line in info:
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    shown = [f for f in ("sha_ni", "avx2", "avx512f", "vaes", "amx_bf16") if f in flags]
    return f"{fields.get('model name', platform.processor())}, {os.cpu_count()} CPUs, {shown}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=500.0, help="entry size in MB (10^6 bytes)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: temp)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    clips = round(args.mb * 1e6 / (FRAMES * WIDTH * 4))
    root = Path(tempfile.mkdtemp(prefix="vggface-checksum-", dir=args.dir))
    try:
        print(f"cpu: {cpu()}; load average {os.getloadavg()[0]:.1f}")
        writing, committing = write_entry(root, clips)
        npy = root / KEY / "features.npy"
        size = npy.stat().st_size
        from core.features import store

        checksum = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            store.file_checksum(npy)
            checksum = min(checksum, time.perf_counter() - start)
        print(f"entry: {clips} clips x {FRAMES} frames x {WIDTH} float32, {size / 1e6:.1f} MB")
        print()
        print("| step | seconds | MB/s |")
        print("|---|---|---|")
        rows = [
            ("write rows (16-frame windows)", writing),
            ("commit (SHA-256, fsync, rename)", committing),
            ("SHA-256 of the file alone (warm)", checksum),
        ]
        loads = {}
        for how in ("warm", "warm verify", "warm read", "cold", "cold verify", "cold read"):
            loads[how] = load(root, how, args.repeats)
        names = {
            "warm": "load, no verification (warm)",
            "warm verify": "load + verify (warm)",
            "warm read": "load + read every row once (warm)",
            "cold": "load, no verification (cold)",
            "cold verify": "load + verify (cold)",
            "cold read": "load + read every row once (cold)",
        }
        rows += [(names[how], seconds) for how, seconds in loads.items()]
        for name, seconds in rows:
            rate = f"{size / 1e6 / seconds:.0f}" if seconds > 0.01 else ""
            print(f"| {name} | {seconds:.3f} | {rate} |")
        print()
        print("| hash (warm file, 1 MiB reads) | seconds | MB/s |")
        print("|---|---|---|")
        for name, seconds in hash_rates(npy, args.repeats):
            print(f"| {name} | {seconds:.3f} | {size / 1e6 / seconds:.0f} |")
        print()
        verify_warm = loads["warm verify"] - loads["warm"]
        print(
            f"verification adds {verify_warm:.3f} s warm, "
            f"{loads['cold verify'] - loads['cold']:.3f} s cold"
        )
        print(f"load + verify / load, warm: {loads['warm verify'] / loads['warm']:.0f}x")
        print(
            f"load + verify / load + one read of every row, warm: "
            f"{loads['warm verify'] / loads['warm read']:.2f}; cold: "
            f"{loads['cold verify'] / loads['cold read']:.2f}"
        )
        print(f"checksum / (writing + committing): {checksum / (writing + committing):.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
