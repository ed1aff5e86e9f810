"""A cache entry under construction that survives an interruption: its committed chunks of clips.

Folder ``<root>/.pending-<key>/``, one per key, touched only by the holder of the key's lock
(:func:`core.features.store.locked`):

* ``features.npy``: the full-size array, rows written in order as in
  :class:`core.features.store.PendingEntry`;
* ``journal.jsonl``: one JSON line per committed chunk, ``{"start": s, "end": e, "frames": f,
  "sha256": h, ...}``: source clips ``s`` to ``e - 1`` are done, the array's first ``f`` frame
  vectors hold their features, and ``h`` is the SHA-256 of the vectors this chunk added (the
  other fields are the caller's, :mod:`core.features.pipeline`; the first line's also say what
  the extraction is of, its key parts and data folder, which another extraction says of it).

A chunk is committed by fsync'ing the array (its rows are on disk) and then appending its line
with one ``write`` and fsync'ing the journal. Reading the journal keeps its lines while each is
whole (ends in a newline), parses, and starts where the previous one ended; the rest (a line torn
by a crash) is cut off. So a Ctrl-C or a SIGKILL keeps every chunk whose line was written, and a
power cut every chunk whose line was fsync'ed; the next extraction of the key resumes after them,
up to the first chunk whose rows no longer hash as they did (damaged on disk: extracted again,
never published), and :meth:`ResumableEntry.commit` publishes the folder as the entry (journal
removed) as a one-shot extraction would.
Leaving the block with an exception keeps the folder when it holds a committed chunk and
removes it otherwise.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

from core.features import store

PENDING_PREFIX = ".pending-"
JOURNAL_FILE = "journal.jsonl"

log = logging.getLogger(__name__)


def say_others_kept(
    root: Path, key: str, parts: dict[str, Any] | None = None, data: Path | None = None
) -> None:
    """A warning naming the interrupted extractions of other keys kept in ``root``: of the data
    before a file changed, or of other options. Only their own command resumes each, and its
    rows stay on disk till then, which nothing else said (probe: Ctrl-C, a broken clip removed,
    the rerun extracted every clip anew beside them). Beside ``parts`` (this extraction's key
    parts) and ``data`` (its database's folder), each says what it differs by, as its journal's
    first line records it: one of the other Keras backend was "other data or options", to
    delete (probe EE)."""
    mine = f"{PENDING_PREFIX}{key}"
    others = sorted(p for p in root.glob(f"{PENDING_PREFIX}*") if p.name != mine and p.is_dir())
    if not others:
        return
    held = sum(store.on_disk(f) for folder in others for f in folder.iterdir())
    log.warning(
        "%s: %s of interrupted extractions of other data or options (%s: %s) kept; the "
        "command that made each resumes it (under its KERAS_BACKEND), and one of data since "
        "changed never will: delete that one",
        root,
        "rows" if len(others) > 1 else "the rows",
        store.size_said(held),
        ", ".join(p.name + _differs(p, parts, data) for p in others),
    )


def _differs(folder: Path, parts: dict[str, Any] | None, data: Path | None) -> str:
    """What the pending extraction in ``folder`` was made with where it differs from ``parts``
    and ``data``, as ' (of KERAS_BACKEND=tensorflow, precision bfloat16)', ' (of /data/msu)' (a
    database of its own, resumed by its command) or ' (of /data/casia as it was)' (the data
    since changed); empty where not recorded (a folder made before 2026-12-07)."""
    if parts is None:
        return ""
    try:
        with open(folder / JOURNAL_FILE, "rb") as journal:
            first = json.loads(journal.readline())
        theirs, where = first.get("key_parts"), first.get("data_folder")
    except (OSError, ValueError, AttributeError):
        return ""
    if not isinstance(theirs, dict):
        return ""
    (backend, weights), (now, mine) = (_made_by(p) for p in (theirs, parts))
    said = [f"KERAS_BACKEND={backend}"] if backend != now else []
    said += ["other weights"] if weights != mine else []
    if theirs.get("data") != parts.get("data"):
        same = data is not None and where == str(data)
        said.append(f"{where} as it was" if same else (where or "other data"))
    for part in ("frames_per_clip", "detector", "precision"):
        if theirs.get(part) != parts.get(part):
            said.append(f"{part.removesuffix('_per_clip')} {theirs.get(part) or 'none'}")
    return f" (of {', '.join(said)})" if said else ""


def _made_by(parts: dict[str, Any]) -> tuple[str, str]:
    """The Keras backend and the weights (a file's digest, or the random draw's without the
    backend that drew it: ``random:<init>:<seed>[:<backend>]``) of a cache key's parts."""
    from core.features.extract import random_backend  # it imports this module

    weights = str(parts.get("weights"))
    drawn = random_backend(weights)
    backend = str(parts.get("backend") or drawn or "tensorflow")
    return backend, weights.removesuffix(f":{drawn}") if drawn else weights


class ExtractionInterrupted(KeyboardInterrupt):
    """Extraction stopped by Ctrl-C: ``done`` of ``total`` clips are kept in ``path`` (the pending
    folder; removed when ``done`` is 0) for the next extraction of the same key to resume."""

    def __init__(self, done: int, total: int, path: Path, skipped: int = 0) -> None:
        self.done, self.total, self.path, self.skipped = done, total, Path(path), skipped
        if done:
            # "34 of 40 clips kept" counted 2 that did not decode among 32 features (probe)
            aside = f", {skipped} of them skipped as they did not decode" if skipped else ""
            message = (
                f"extraction interrupted: {done} of {total} clips done and kept in {self.path}"
                f"{aside}; rerun the same command to extract the other {total - done}"
            )
        else:
            message = (
                f"extraction interrupted before its first chunk of clips was finished: nothing "
                f"kept; rerun the same command to extract the {total} clips"
            )
        super().__init__(message)

    def __reduce__(self) -> tuple[type, tuple[int, int, Path, int]]:
        return type(self), (self.done, self.total, self.path, self.skipped)


class ResumableEntry(store.PendingEntry):
    """The pending entry of ``key`` in ``<root>/.pending-<key>/``, with the chunks it already
    holds (:attr:`chunks`, in order) when an earlier extraction of the key was interrupted."""

    def __init__(
        self, root: Path, key: str, shape: tuple[int, ...], about: dict[str, Any] | None = None
    ) -> None:
        super().__init__(root, key, shape, folder=root / f"{PENDING_PREFIX}{key}")
        self.about = about or {}  # the key's parts and data folder: in the first chunk's line
        self.journal_path = self.folder / JOURNAL_FILE
        self.chunks: list[dict[str, Any]] = []
        if self.reused:
            self.chunks, length = read_journal(self.journal_path, self.shape)
            rest = self.journal_path.read_bytes()[length:] if self.journal_path.exists() else b""
            if b"\n" in rest:  # a whole line that does not read: damage, not a crash's tear
                log.warning(
                    "%s: a line after clip %d is damaged: the clips from there on are extracted "
                    "again",
                    self.journal_path,
                    self.clips_done,
                )
            elif rest:
                log.info("%s: dropping a chunk line left unfinished", self.journal_path)
            if rest:
                os.truncate(self.journal_path, length)
            self._drop_damaged()
        if not self.journal_path.exists():
            self.journal_path.touch()
            store.fsync_path(self.folder)
            store.fsync_path(self.root)

    @property
    def clips_done(self) -> int:
        """Source clips in committed chunks."""
        return self.chunks[-1]["end"] if self.chunks else 0

    @property
    def frames_done(self) -> int:
        """Frame vectors written by committed chunks."""
        return self.chunks[-1]["frames"] if self.chunks else 0

    def commit_chunk(self, record: dict[str, Any]) -> None:
        """Commit source clips ``record["start"]`` to ``record["end"] - 1``, whose features fill
        the array's first ``record["frames"]`` vectors: fsync the array, then append the record's
        line and fsync the journal."""
        if record["start"] != self.clips_done or record["end"] <= record["start"]:
            raise ValueError(f"chunk {record['start']}..{record['end']} after {self.clips_done}")
        store.fsync_path(self.array_path)
        record = {**record, "sha256": self._digest(self.frames_done, record["frames"])}
        if not self.chunks:  # what another extraction says of it
            record |= self.about
        self._append(record)
        self.chunks.append(record)

    def _append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _digest(self, first: int, end: int) -> str:
        """SHA-256 of frame vectors ``first`` to ``end - 1`` as the array file holds them."""
        digest = hashlib.sha256()
        with open(self.array_path, "rb") as data:
            data.seek(self.offset + first * self.vector_bytes)
            left = (end - first) * self.vector_bytes
            while left and (block := data.read(min(left, 1 << 22))):
                digest.update(block)
                left -= len(block)
        return digest.hexdigest()

    def _drop_damaged(self) -> None:
        """Keep the chunks up to the first whose rows no longer hash as committed; the journal
        is rewritten with them, and extraction resumes after them. A chunk written before
        chunks carried a hash is kept unverified."""
        kept, frames = [], 0
        for chunk in self.chunks:
            expected = chunk.get("sha256")
            if expected is not None and self._digest(frames, chunk["frames"]) != expected:
                log.warning(
                    "%s: the features of clips %d to %d no longer match their checksum "
                    "(damaged on disk): extracting them again",
                    self.array_path,
                    chunk["start"],
                    self.chunks[-1]["end"] - 1,
                )
                break
            kept.append(chunk)
            frames = chunk["frames"]
        if len(kept) < len(self.chunks):
            self.restart()
            for chunk in kept:
                self._append(chunk)
            self.chunks = kept

    def committed(self) -> tuple[int, int]:
        """Source clips committed, and of them those skipped (not decoded: kept as skipped),
        read back from the journal on disk (exact even when an interruption struck while a
        chunk was being committed)."""
        chunks, _ = read_journal(self.journal_path, self.shape)
        skipped = sum("skipped" in outcome for c in chunks for outcome in c.get("clips", []))
        return (chunks[-1]["end"] if chunks else 0), skipped

    def restart(self) -> None:
        """Forget the committed chunks (their rows are overwritten as extraction goes)."""
        os.truncate(self.journal_path, 0)
        store.fsync_path(self.journal_path)
        self.chunks = []

    def discard(self) -> None:
        """Remove the folder: nothing in it is worth resuming."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def commit(self, manifest: dict[str, Any], rows: int) -> Path:
        """Publish the folder as the entry, as :meth:`PendingEntry.commit`, without its journal."""
        self.journal_path.unlink(missing_ok=True)
        return super().commit(manifest, rows)

    def __enter__(self) -> ResumableEntry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.folder.exists() and not self.committed()[0]:
            self.discard()


def read_journal(path: Path, shape: tuple[int, ...]) -> tuple[list[dict[str, Any]], int]:
    """The committed chunks in ``path`` (a journal of an array of ``shape``) and the length in
    bytes of the lines they take; a line that is torn, unparsable or out of sequence ends them."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    chunks: list[dict[str, Any]] = []
    clips, frames, position = 0, 0, 0
    total_frames = math.prod(shape[:-1])
    while (newline := data.find(b"\n", position)) >= 0:
        try:
            record = json.loads(data[position:newline])
        except ValueError:
            break
        if not (
            isinstance(record, dict)
            and isinstance(record.get("start"), int)
            and record["start"] == clips
            and isinstance(record.get("end"), int)
            and clips < record["end"] <= shape[0]
            and isinstance(record.get("frames"), int)
            and frames <= record["frames"] <= total_frames
        ):
            break
        chunks.append(record)
        clips, frames, position = record["end"], record["frames"], newline + 1
    return chunks, position
