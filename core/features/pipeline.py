"""Clips to fc7 rows: decode in background threads, batch frames across clips, run the backbone.

Clips are decoded and resized in threads while the network runs (OpenCV and numpy release the
GIL); frames wait as uint8 and the mean is subtracted as they enter a batch; each batch's frames
are written to their rows of the pending cache entry as soon as it is computed. A clip that
cannot be decoded is skipped, warned and counted. With a face crop, each clip's frames without a
face are counted (``Run.no_face``). An unchanged clip of the data's earlier entry comes with its
rows (:func:`reusing`), written as they come; the batch runs on the other clips' frames.

Resumable (:mod:`core.features.resume`): wherever a batch ends exactly at the end of a clip, the
clips met since the last such point are committed as one chunk (what became of each clip: its
frames without a face and database boxes, or why it was skipped). A run over an entry that holds
committed chunks starts at the first clip after them, so it computes only the frames missing,
and, with the same batch size, in the same batches as one uninterrupted run: every chunk ends on
a batch boundary counted from the first computed frame (reused clips take no place in a batch),
so the resumed batches are the batches that run would have formed, and the array comes out the
same.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.backbone.spec import preprocess_input
from core.constants import FEATURE_SIZE, INPUT_SHAPE
from core.data.clips import Clip, ClipError
from core.data.frames import prepare_frames, read_clip
from core.features.faces import FaceFinder
from core.features.resume import ResumableEntry
from core.features.skips import SkipWarnings
from core.interrupts import ctrl_c_noticed

log = logging.getLogger(__name__)
PLAIN_PROGRESS_SECONDS = 60.0  # without a bar (--no-progress): a plain line at most this often
REUSED_CHUNK_SECONDS = 5.0  # a run of reused clips commits a chunk at most this often


def ticker(what: str, total: int) -> Callable[[int], None]:
    """``tick(done)``: a line ``<what>: done of total clips, Ns`` at most every
    :data:`PLAIN_PROGRESS_SECONDS`, for a long loop without a bar (fine-tuning's frames and
    bottom outputs took minutes without a line: probe)."""
    started = said = time.perf_counter()

    def tick(done: int) -> None:
        nonlocal said
        now = time.perf_counter()
        if now - said >= PLAIN_PROGRESS_SECONDS:
            said = now
            print(f"{what}: {done} of {total} clips, {now - started:.0f}s", file=sys.stderr)

    return tick


@dataclass
class Decoded:
    """One clip's network input and how its face crop went."""

    frames: np.ndarray | None  # uint8 (frames_per_clip, 224, 224, 3); None: ``features``
    no_face: int = 0  # frames where no face was found (0 without a face crop)
    shipped_boxes: bool = False  # the boxes came from the database's own file
    set_aside: str | None = None  # why the database's boxes were set aside (FaceFinder.boxes)
    # its fc7, taken from the entry of the data's earlier state (an unchanged clip): not run
    features: np.ndarray | None = None


@dataclass
class Run:
    usable: list[Clip]
    skipped: list[tuple[Clip, str]]
    frames_per_clip: int
    seconds: float
    no_face: dict[str, int] = field(default_factory=dict)  # clip_id -> frames without a face
    shipped_boxes: set[str] = field(default_factory=set)  # clip_ids cropped with shipped boxes
    # clip_id -> why its database boxes were set aside for the detector's (FaceFinder.boxes)
    set_aside: dict[str, str] = field(default_factory=dict)
    resumed: int = 0  # clips whose chunks an earlier, interrupted run committed
    reused: int = 0  # clips whose features the entry of the data's earlier state gave


def run_backbone(
    model: Any,
    average: np.ndarray | None,
    clips: list[Clip],
    decode: Callable[[Clip], Decoded],
    pending: ResumableEntry,
    batch_size: int,
    progress: bool,
    workers: int,
) -> Run:
    """Run the backbone over the clips not yet in ``pending``'s committed chunks, writing
    features into it as batches finish and committing a chunk wherever a batch ends at a clip's
    end; the Run returned covers every clip, those of earlier chunks included.

    Clips are decoded and resized in background threads while the network runs; the mean is
    subtracted as their frames enter the batch. A batch holds ``batch_size`` frames, across clip
    boundaries; usable clips fill rows in order, and each batch's frames are written to their
    rows as soon as it is computed. A clip that ``decode`` gives with its features (an unchanged
    clip of the data's earlier entry: :func:`reusing`) has its rows written at once, the batch
    going on around it. A chunk is committed where the batch is empty at a clip's end (after
    reused clips, at most every :data:`REUSED_CHUNK_SECONDS`). A KeyboardInterrupt propagates,
    leaving the committed chunks in ``pending``; one that a finalizer swallowed is raised at the
    next clip (:mod:`core.interrupts`).
    """
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    started = said = time.perf_counter()
    frames_per_clip = pending.shape[1]
    say_skip = SkipWarnings(log)
    run, earlier = _resumed(pending, clips, frames_per_clip, say_skip)
    first_clip = pending.clips_done
    batch = np.empty((batch_size, *INPUT_SHAPE), dtype=np.float32)
    fill = 0  # frames waiting in ``batch``
    segments: list[tuple[int, int]] = []  # where the batch's frames go: (first row, count)
    written = pending.frames_done  # rows given to clips: in the file, or waiting in the batch
    computed = 0  # frames run through the network by this call
    committed = time.perf_counter()
    outcomes: list[dict[str, Any]] = []  # what became of each clip since the last chunk
    bar = tqdm(
        total=len(clips) * frames_per_clip,
        initial=first_clip * frames_per_clip,
        unit="frame",
        desc="fc7 features",
        disable=not progress,
        dynamic_ncols=True,
    )

    def flush() -> None:
        nonlocal fill, computed
        out = np.asarray(model.predict_on_batch(batch[:fill]), dtype=np.float32)
        out = out.reshape(fill, FEATURE_SIZE)
        done = 0
        for row, count in segments:  # one run of rows, unless reused clips came between
            pending.write(row, out[done : done + count])
            done += count
        segments.clear()
        computed += fill
        bar.update(fill)
        fill = 0

    def plain_progress(done: int) -> None:
        """Without a bar, a line at most every PLAIN_PROGRESS_SECONDS (a job's log saw nothing
        for the whole extraction)."""
        nonlocal said
        if progress or time.perf_counter() - said < PLAIN_PROGRESS_SECONDS:
            return
        said = time.perf_counter()
        rate = computed / (said - started)
        print(f"fc7 features: {done} of {len(clips)} clips, {rate:.2f} frames/s", file=sys.stderr)

    # enough decoded clips in flight to fill the next batch while the current one runs
    depth = max(4, 2 * -(-batch_size // frames_per_clip))
    # with a bar, skip warnings print above it rather than through it
    with (
        bar,
        logging_redirect_tqdm() if progress else contextlib.nullcontext(),
        ctrl_c_noticed() as interrupted,
    ):
        todo = clips[first_clip:]
        for position, (clip, future) in enumerate(
            _prefetch(decode, todo, depth, workers), start=first_clip
        ):
            interrupted()  # a Ctrl-C dropped in a finalizer still stops here
            try:
                decoded = future.result()
            except ClipError as err:
                reason = _reason(err, clip.path)
                say_skip(clip.path, reason)
                run.skipped.append((clip, reason))
                outcomes.append({"id": clip.clip_id, "skipped": reason})
                bar.update(frames_per_clip)
                plain_progress(position + 1)  # a run of clips that do not decode: said too
                continue
            run.usable.append(clip)
            run.no_face[clip.clip_id] = decoded.no_face
            if decoded.shipped_boxes:
                run.shipped_boxes.add(clip.clip_id)
            outcome: dict[str, Any] = {
                "id": clip.clip_id,
                "no_face": decoded.no_face,
                "boxes": decoded.shipped_boxes,
            }
            if decoded.set_aside:
                run.set_aside[clip.clip_id] = outcome["set_aside"] = decoded.set_aside
            outcomes.append(outcome)
            row, written = written, written + frames_per_clip
            if decoded.features is not None:  # an unchanged clip's fc7: its rows, at once
                pending.write(row, decoded.features.reshape(frames_per_clip, FEATURE_SIZE))
                bar.update(frames_per_clip)
                outcome["reused"] = True
                run.reused += 1
            frames = decoded.frames
            first = 0 if decoded.features is None else frames_per_clip  # reused: none to run
            while first < frames_per_clip:
                count = min(frames_per_clip - first, batch_size - fill)
                chunk = frames[first : first + count]
                batch[fill : fill + count] = preprocess_input(chunk, average)
                segments.append((row + first, count))
                fill += count
                first += count
                if fill == batch_size:
                    flush()
            plain_progress(position + 1)
            # reused clips: a chunk now and then, not an fsync each (review)
            due = time.perf_counter() - committed >= REUSED_CHUNK_SECONDS
            if fill == 0 and (decoded.features is None or due):  # every row given is written
                committed = time.perf_counter()
                seconds = earlier + time.perf_counter() - started
                pending.commit_chunk(
                    {
                        "start": pending.clips_done,
                        "end": position + 1,
                        "frames": written,
                        "seconds": round(seconds, 3),
                        "clips": outcomes,
                    }
                )
                outcomes = []
        if fill:
            flush()
        interrupted()
    run.seconds = earlier + time.perf_counter() - started
    return run


def _resumed(
    pending: ResumableEntry,
    clips: list[Clip],
    frames_per_clip: int,
    say_skip: Callable[[Path, str], None],
) -> tuple[Run, float]:
    """The Run of the clips in ``pending``'s committed chunks and the seconds they took; the
    chunks are forgotten (and every clip extracted) when they do not describe ``clips``."""
    run = Run([], [], frames_per_clip, 0.0)
    if not pending.chunks:
        return run, 0.0
    try:
        for chunk in pending.chunks:
            outcomes = chunk["clips"]
            if len(outcomes) != chunk["end"] - chunk["start"]:
                raise ValueError(f"{len(outcomes)} clips for {chunk['start']}..{chunk['end']}")
            for clip, outcome in zip(clips[chunk["start"] : chunk["end"]], outcomes, strict=True):
                if outcome["id"] != clip.clip_id:
                    raise ValueError(f"clip {outcome['id']!r} where {clip.clip_id!r} is")
                if "skipped" in outcome:
                    run.skipped.append((clip, str(outcome["skipped"])))
                    continue
                run.usable.append(clip)
                run.no_face[clip.clip_id] = int(outcome["no_face"])
                run.reused += bool(outcome.get("reused"))  # the manifest's count: all of them
                if outcome["boxes"]:
                    run.shipped_boxes.add(clip.clip_id)
                if outcome.get("set_aside"):
                    run.set_aside[clip.clip_id] = str(outcome["set_aside"])
        if len(run.usable) * frames_per_clip != pending.frames_done:
            raise ValueError(f"{len(run.usable)} clips for {pending.frames_done} frames")
        earlier = float(pending.chunks[-1]["seconds"])
    except (KeyError, TypeError, ValueError) as err:
        log.warning(
            "%s: its committed chunks do not describe these clips (%s); extracting every clip",
            pending.folder,
            err,
        )
        pending.restart()
        return Run([], [], frames_per_clip, 0.0), 0.0
    run.resumed = pending.clips_done
    log.warning(  # said without --verbose: a run that resumes must not look like a fresh one
        "resuming extraction: %d of %d clips already done in %s",
        pending.clips_done,
        len(clips),
        pending.folder,
    )
    for clip, reason in run.skipped:  # as a run from the start would have said
        say_skip(clip.path, reason)
    return run, earlier


def reusing(
    decode: Callable[[Clip], Decoded], reused: dict[str, tuple[np.ndarray, dict[str, Any]]]
) -> Callable[[Clip], Decoded]:
    """``decode``, but a clip of ``reused`` (:func:`core.features.changed.reusable`) comes with
    its features and its faces as the earlier entry recorded them, undecoded."""

    def decode_or_reuse(clip: Clip) -> Decoded:
        if clip.clip_id not in reused:
            return decode(clip)
        rows, record = reused[clip.clip_id]
        return Decoded(
            None,
            int(record.get("no_face", 0)),
            bool(record.get("database_boxes")),
            record.get("boxes_set_aside"),
            np.asarray(rows, dtype=np.float32),
        )

    return decode_or_reuse


def decoder(frames_per_clip: int, faces: FaceFinder | None) -> Callable[[Clip], Decoded]:
    """clip -> its uint8 RGB (frames_per_clip, 224, 224, 3) frames, cropped to the face that
    ``faces`` finds (whole frames when None); raises ClipError.

    uint8, a quarter of the float32 input: the frames waiting in the prefetch window are small.
    """

    def decode(clip: Clip) -> Decoded:
        raw, indices = read_clip(clip.path, frames_per_clip)
        if faces is None:
            decoded = Decoded(prepare_frames(raw))
        else:
            found = faces.boxes(clip, raw, indices)
            no_face = sum(box is None for box in found.boxes)
            decoded = Decoded(
                prepare_frames(raw, found.boxes), no_face, found.shipped, found.disagreement
            )
        if decoded.frames.shape != (frames_per_clip, *INPUT_SHAPE):
            raise ClipError(
                f"{clip.path}: expected {frames_per_clip} frames of {INPUT_SHAPE}, "
                f"got {decoded.frames.shape}"
            )
        return decoded

    return decode


def _prefetch(
    fn: Callable[[Clip], Decoded], clips: Iterable[Clip], depth: int, workers: int
) -> Iterator[tuple[Clip, Future[Decoded]]]:
    """(clip, future of fn(clip)) in order, keeping ``depth`` clips decoding ahead in threads.

    OpenCV and numpy release the GIL, so decoding overlaps the network's forward pass; the
    bounded window caps memory at ``depth`` decoded clips.
    """
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        window: deque[tuple[Clip, Future[Decoded]]] = deque()
        try:
            for clip in clips:
                window.append((clip, pool.submit(fn, clip)))
                if len(window) > depth:
                    yield window.popleft()
            while window:
                yield window.popleft()
        finally:
            for _, future in window:  # an error or an early stop: do not decode the rest
                future.cancel()


def _reason(err: Exception, path: Path) -> str:
    """The error's message without the leading path that ClipError messages carry."""
    text = str(err)
    prefix = f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text
