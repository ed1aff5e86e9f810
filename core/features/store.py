"""An on-disk store of entries, each one float32 ``.npy`` array plus a JSON manifest.

Layout: ``<root>/<key>/features.npy`` and ``<root>/<key>/manifest.json``.

* Written atomically: an entry is built in a folder beside it (``<root>/.tmp-<key>-<pid>-<token>/``
  for :class:`PendingEntry`; ``<root>/.pending-<key>/`` for a resumable extraction,
  :mod:`core.features.resume`), every file and the folder are fsync'ed, then the folder is renamed
  to ``<key>``. A crash leaves at most a building folder, which is never read as an entry; the
  next writer of that key removes a ``.tmp-`` one and resumes a ``.pending-`` one.
* Checksummed: at commit the manifest gets ``checksum``, ``sha256:<hex>`` of the whole
  ``features.npy`` file (header and data) as published, so ``sha256sum features.npy`` checks it
  too. SHA-256: in the standard library, and as fast as any of its content hashes on CPUs with
  SHA extensions (bench/RESULTS.md, "Cache checksums": ~0.5 s for 500 MB).
* Validated on load (:func:`load_entry`): the manifest parses and names this key and format, the
  array's shape and dtype equal the manifest's, the file's size is exactly header + data (a
  truncated or padded file is refused), and the file's SHA-256 equals the manifest's checksum (a
  same-size change is refused); the manifest carries a digest of its other fields
  (``manifest_sha256``), so an edit to it (two clips' rows swapped) is refused too. Nothing is
  unpickled (``allow_pickle=False``). Hashing reads the
  file once; a process remembers each verdict for the file's device, inode, size, mtime and
  ctime, so it does not read an unchanged file again (an entry it committed, or already
  verified); a write to the file changes its mtime and ctime and so brings a new check (one within
  the same tick of the kernel's file clock as the verdict does not: a process trusts its own
  recent reads). An entry written before checksums existed (no ``checksum`` in its manifest) is
  used unverified, as it was then, and said once at INFO.
* Locked for writing (:func:`locked`): ``fcntl.flock`` on ``<root>/<key>.lock``. The kernel drops a
  flock when its process dies, so a crashed writer never leaves a stale lock behind; the lock file
  itself is left in place (deleting it would let two processes lock two different files).
* Rows are written through short-lived memory-mapped windows (:class:`PendingEntry`), so the
  writer's resident memory stays at one window, whatever the size of the array.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import logging
import math
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from core.data.clips import DataError
from core.words import counted

ARRAY_FILE = "features.npy"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 2  # bump when the layout of an entry changes: old entries are then rebuilt
DTYPE = np.dtype(np.float32)
CHECKSUM = "sha256"  # the hash new entries record; load_entry checks only this one
# the manifest's own digest (of its other fields): which clip each row holds is the manifest's
# word alone, and two clips swapped in it by hand read as valid (probe Y)
MANIFEST_DIGEST = "manifest_sha256"

log = logging.getLogger(__name__)

# (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns, checksum) -> None (it matched) or why not
_verdicts: dict[tuple[int, int, int, int, int, str], str | None] = {}
_unchecked: set[Path] = set()  # entries without a checksum already said so


class CacheEntryInvalid(Exception):
    """An entry that exists but must not be used; the message says why."""


@contextmanager
def locked(root: Path, key: str) -> Iterator[None]:
    """Hold the exclusive write lock of ``key`` (blocking; says so, as a warning, when another
    process holds it: an extraction that can take hours, which silence made look hung)."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning(
                "another process is writing cache entry %s (extracting it): waiting for it, then "
                "using what it wrote",
                root / key,
            )
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def load_entry(root: Path, key: str, verify: bool = True) -> tuple[np.memmap, dict[str, Any]]:
    """Open a complete entry read-only: (memory-mapped array, manifest).

    With ``verify`` (the default) the array file's checksum is checked against the manifest's:
    one read of the whole file, unless this process already checked it unchanged.

    Raises FileNotFoundError when there is no entry and :class:`CacheEntryInvalid` when there is
    one that fails validation.
    """
    folder = root / key
    manifest_path, array_path = folder / MANIFEST_FILE, folder / ARRAY_FILE
    if not folder.is_dir():
        raise FileNotFoundError(folder)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CacheEntryInvalid(f"{manifest_path}: unreadable manifest ({err})") from None
    if not isinstance(manifest, dict):
        raise CacheEntryInvalid(f"{manifest_path}: manifest is not a JSON object")
    if manifest.get("format") != FORMAT_VERSION or manifest.get("key") != key:
        raise CacheEntryInvalid(
            f"{manifest_path}: expected format {FORMAT_VERSION} and key {key}, found format "
            f"{manifest.get('format')!r} and key {manifest.get('key')!r}"
        )
    digest = manifest.get(MANIFEST_DIGEST)  # none in entries written before it existed
    if digest is not None and digest != manifest_digest(manifest):
        raise CacheEntryInvalid(
            f"{manifest_path}: changed after it was written (it no longer matches its "
            f"{MANIFEST_DIGEST}: which clip each row holds cannot be trusted)"
        )
    shape = manifest.get("shape")
    if not (isinstance(shape, list) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise CacheEntryInvalid(f"{manifest_path}: shape must be a list of counts, got {shape!r}")
    try:
        array = np.load(array_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:  # EOFError: an empty file
        why = "not a .npy array; never read as a pickle" if "pickle" in str(err) else err
        raise CacheEntryInvalid(f"{array_path}: unreadable array ({why or 'empty'})") from None
    if not isinstance(array, np.memmap) or array.dtype != DTYPE or list(array.shape) != shape:
        raise CacheEntryInvalid(
            f"{array_path}: expected float32 {tuple(shape)} as the manifest says, "
            f"found {array.dtype} {array.shape}"
        )
    size = array_path.stat().st_size
    if size != array.offset + array.nbytes:
        raise CacheEntryInvalid(
            f"{array_path}: expected {array.offset + array.nbytes} bytes, found {size}"
        )
    if verify:
        _verify(array_path, manifest.get("checksum"))
    return array, manifest


def manifest_digest(manifest: dict[str, Any]) -> str:
    """``sha256:<hex>`` of the manifest's fields but its digest, as canonical JSON."""
    rest = {name: value for name, value in manifest.items() if name != MANIFEST_DIGEST}
    # ASCII: a folder name that is not UTF-8 (a lone surrogate) escapes as json.dump wrote it
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"))
    return f"{CHECKSUM}:{hashlib.sha256(text.encode()).hexdigest()}"


def file_checksum(path: Path) -> str:
    """``sha256:<hex>`` of the file's bytes, streamed (one read of the file)."""
    with open(path, "rb") as data:
        return f"{CHECKSUM}:{hashlib.file_digest(data, CHECKSUM).hexdigest()}"


def _verify(path: Path, expected: object) -> None:
    """Raise CacheEntryInvalid unless ``path`` hashes to ``expected`` (once per unchanged file)."""
    if expected is None:
        if path not in _unchecked:
            _unchecked.add(path)
            log.info("%s has no checksum (written before checksums): used unverified", path)
        return
    if not (isinstance(expected, str) and expected.startswith(f"{CHECKSUM}:")):
        raise CacheEntryInvalid(f"{path}: checksum {expected!r} is not {CHECKSUM}:<hex>")
    with open(path, "rb") as data:
        stamp = _stamp(os.fstat(data.fileno()), expected)
        if stamp not in _verdicts:
            found = f"{CHECKSUM}:{hashlib.file_digest(data, CHECKSUM).hexdigest()}"
            _verdicts[stamp] = (
                None
                if found == expected
                else f"{path}: content does not match the manifest's checksum ({expected[:19]}... "
                f"in the manifest, {found[:19]}... on disk): it changed after it was written"
            )
    problem = _verdicts[stamp]
    if problem is not None:
        raise CacheEntryInvalid(problem)


def _stamp(stat: os.stat_result, checksum: str) -> tuple[int, int, int, int, int, str]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, checksum)


def remove_leftovers(root: Path, key: str) -> None:
    """Remove temporary folders and an invalid entry of ``key``. Call it holding the lock.

    A resumable extraction's ``.pending-<key>`` folder is kept (:mod:`core.features.resume`).
    """
    for tmp in [*root.glob(f".tmp-{key}-*"), *root.glob(f".trash-{key}-*")]:
        log.info("removing %s left by an interrupted writer", tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    folder = root / key
    if folder.exists():
        _discard(folder)


class PendingEntry:
    """An entry being written into a building folder; :meth:`commit` publishes it.

    Use as a context manager: leaving the block without a commit (an exception) removes the
    building folder. The array is created full size up front (a sparse file); rows are written
    in order and the array is shrunk at commit when fewer rows were used (skipped clips).

    ``folder`` (default: a new ``.tmp-<key>-<pid>-<token>`` beside the entry) names the building
    folder; when it already holds an array of ``shape`` (a resumed extraction) that array is
    kept and :attr:`reused` is True, else the folder is made anew.
    """

    def __init__(
        self, root: Path, key: str, shape: tuple[int, ...], folder: Path | None = None
    ) -> None:
        self.root, self.key, self.shape = root, key, tuple(shape)
        root.mkdir(parents=True, exist_ok=True)
        self.folder = folder or root / f".tmp-{key}-{os.getpid()}-{secrets.token_hex(4)}"
        self.array_path = self.folder / ARRAY_FILE
        _check_room(root, self.array_path, self.shape)
        offset = _existing_array(self.array_path, self.shape) if folder is not None else None
        self.reused = offset is not None
        if offset is None:
            if self.folder.exists():
                log.warning(
                    "%s: its features array is not the one expected (truncated, damaged or of "
                    "another shape): the clips it held are extracted again",
                    self.folder,
                )
                shutil.rmtree(self.folder)
            self.folder.mkdir()
            header = np.lib.format.open_memmap(
                self.array_path, mode="w+", dtype=DTYPE, shape=self.shape
            )
            offset = header.offset
            del header  # only the header was written; rows go through windows
        self.offset = offset
        self.vector_bytes = self.shape[-1] * DTYPE.itemsize
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * DTYPE.itemsize

    def write(self, start: int, vectors: np.ndarray) -> None:
        """Write ``vectors`` (m, shape[-1]) at position ``start`` of the array seen as a list of
        its last-axis vectors (C order), with ``pwrite``: a disk that fills is a DataError saying
        so (through a mapped window it was SIGBUS, the process dead without a word: probe)."""
        total = int(np.prod(self.shape[:-1], dtype=np.int64))
        if vectors.shape[1:] != self.shape[-1:] or not 0 <= start <= total - len(vectors):
            raise ValueError(
                f"{len(vectors)} vectors of shape {vectors.shape[1:]} at {start} do not fit an "
                f"array of shape {self.shape}"
            )
        data = memoryview(np.ascontiguousarray(vectors, dtype=DTYPE)).cast("B")
        at = self.offset + start * self.vector_bytes
        fd = os.open(self.array_path, os.O_WRONLY)
        try:
            while data:  # a write may take part of it (a disk filling up)
                written = os.pwrite(fd, data, at)
                if not written:  # nothing taken, and nothing said: as full (else: a loop)
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                data, at = data[written:], at + written
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise DataError(
                f"{self.folder}: no space left on the device as the features were written "
                f"({err.strerror}): free space and run the same command again (it resumes after "
                "the last chunk finished)"
            ) from None
        finally:
            os.close(fd)

    def commit(self, manifest: dict[str, Any], rows: int) -> Path:
        """Shrink to ``rows``, checksum the array, write the manifest, fsync everything and
        rename into place. This process then trusts the published array without reading it
        again (:func:`load_entry`)."""
        shape = (rows, *self.shape[1:])
        if rows != self.shape[0]:
            _shrink_npy(self.array_path, shape, self.offset + rows * self.row_bytes)
        checksum = file_checksum(self.array_path)
        manifest = {
            **manifest,
            "format": FORMAT_VERSION,
            "key": self.key,
            "shape": list(shape),
            "checksum": checksum,
        }
        manifest = json.loads(json.dumps(manifest))  # as it will read: tuples as lists
        manifest[MANIFEST_DIGEST] = manifest_digest(manifest)
        manifest_path = self.folder / MANIFEST_FILE
        with open(manifest_path, "w", encoding="utf-8") as out:
            json.dump(manifest, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        fsync_path(self.array_path)
        fsync_path(self.folder)
        final = self.root / self.key
        if final.exists():  # an invalid entry: the caller holds the lock and decided to replace it
            _discard(final)
        os.rename(self.folder, final)
        fsync_path(self.root)
        _verdicts[_stamp((final / ARRAY_FILE).stat(), checksum)] = None
        return final

    def __enter__(self) -> PendingEntry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder, ignore_errors=True)


_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def _check_room(root: Path, array: Path, shape: tuple[int, ...]) -> None:
    """DataError when the disk of ``root`` cannot hold an array of ``shape`` (what a resumed
    ``array`` already holds aside): a huge ``--frames`` made a sparse file of 442 GB that the
    first rows would have filled up, or failed with "Invalid argument" (probe). A file system
    that reports no size (some FUSE mounts) is not checked."""
    needed = math.prod(shape) * DTYPE.itemsize - on_disk(array)
    disk = shutil.disk_usage(root)
    if needed > disk.free and disk.total > 0:
        clips, frames = shape[0], shape[1] if len(shape) > 2 else 1
        raise DataError(
            f"{root}: {counted(clips, 'clip')} x {counted(frames, 'frame')} need "
            f"{size_said(needed)}, and its disk has {size_said(disk.free)} free: lower --frames, "
            "free some room, or give --cache-dir on a larger disk"
        )


def on_disk(path: Path) -> int:
    """Bytes a file takes on its disk (a sparse array: only the rows written); 0 when missing."""
    try:
        return path.stat().st_blocks * 512
    except OSError:
        return 0


def size_said(count: int) -> str:
    """Bytes as ``12.3 GB``, ``456 MB`` or ``78 kB``."""
    for unit, scale, digits in (("GB", 1e9, 1), ("MB", 1e6, 0)):
        if count >= scale:
            return f"{count / scale:,.{digits}f} {unit}"
    return f"{count / 1e3:,.0f} kB"


def _existing_array(path: Path, shape: tuple[int, ...]) -> int | None:
    """The data offset of the complete float32 .npy of ``shape`` at ``path``; None if it is not
    one (missing, another shape, a torn header, a wrong size)."""
    try:
        with open(path, "rb") as npy:
            version = np.lib.format.read_magic(npy)
            read_header = _HEADER_READERS.get(version)
            if read_header is None:
                return None
            found, fortran, dtype = read_header(npy)
            offset = npy.tell()
            size = os.fstat(npy.fileno()).st_size
    except (OSError, ValueError):
        return None
    complete = offset + int(np.prod(shape, dtype=np.int64)) * DTYPE.itemsize
    if tuple(found) != shape or fortran or dtype != DTYPE or size != complete:
        return None
    return offset


def _shrink_npy(path: Path, shape: tuple[int, ...], size: int) -> None:
    """Rewrite a .npy header for fewer rows in place, then cut the file to ``size`` bytes.

    numpy pads headers so that axis 0 can change its number of digits without changing the
    header's length; the check below makes sure of it rather than trusting it.
    """
    header = io.BytesIO()
    descr = np.lib.format.dtype_to_descr(DTYPE)
    np.lib.format.write_array_header_1_0(
        header, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    with open(path, "r+b") as npy:
        np.lib.format.read_magic(npy)
        np.lib.format.read_array_header_1_0(npy)
        if npy.tell() != len(header.getvalue()):
            raise RuntimeError(f"{path}: .npy header would change length; cannot shrink in place")
        npy.seek(0)
        npy.write(header.getvalue())
        npy.truncate(size)


def _discard(folder: Path) -> None:
    trash = folder.with_name(f".trash-{folder.name}-{os.getpid()}-{time.monotonic_ns()}")
    os.rename(folder, trash)  # out of the way at once; deleting a large folder takes a while
    shutil.rmtree(trash, ignore_errors=True)


def fsync_path(path: Path) -> None:
    """fsync a file or a folder by its path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
