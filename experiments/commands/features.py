"""The sweep's features, loaded as the console shows them: the data summary before anything is
extracted, the clips that did not decode after, the cache entry and the face crop. It imports
neither MLflow nor Optuna, so a finished study's closing can be replayed after it
(:mod:`experiments.commands.replay`)."""

from __future__ import annotations

import errno
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.data.dataset import Dataset
from core.data.layouts.registry import get_layout
from core.features import FeatureOptions, FeatureSet, cached_features
from core.stdout import stdout_failed, stdout_said
from core.words import counted
from experiments.commands.quiet import quiet_backend


def load_features(
    options: FeatureOptions,
    verbose: bool = False,
    before_extract: Callable[[str, dict[str, Any]], None] | None = None,
    brief: bool = False,
    on_dataset: Callable[[Dataset], None] | None = None,
) -> FeatureSet:
    """The clips (the user's or the synthetic set), split by subject, as cached fc7 features.

    The data summary (clips per split, label and species; skips) is printed before anything is
    extracted, so a wrong split shows before hours of work; clips that then do not decode are
    counted after, once. The backend is imported (quietly, unless ``verbose``) only when a cache
    entry is missing, after ``before_extract`` with the entry's key and parts (the sweep checks
    its stores and a named study there: a store of the wrong kind, or a study run on other
    features, is said before hours of extraction, and a cached rerun reads neither). ``brief``:
    the splits' counts in one line, nothing more (a protocol's fold after the first: the same
    clips and features). ``on_dataset``: called with the clips read, after their summary.
    """

    def extracting(key: str, parts: dict[str, Any]) -> None:
        if before_extract is not None:
            before_extract(key, parts)
        quiet_backend(verbose)

    found: list[Dataset] = []

    def announce(dataset: Dataset) -> None:
        found.append(dataset)
        print(dataset.split_line() if brief else dataset.summary(), flush=True)
        for line in [] if brief else species_missing(dataset):
            print(line, flush=True)
        if on_dataset is not None:
            on_dataset(dataset)

    try:
        features = cached_features(options, on_dataset=announce, before_extract=extracting)
    except OSError as err:  # an unwritable or missing cache folder, a full disk
        raise ValueError(os_error_line(err, options.cache_root)) from err
    kept = {clip.clip_id for clip in features.clips}
    undecoded = Counter(
        f"{clip.split} {clip.label}" for clip in found[0].clips if clip.clip_id not in kept
    )
    if undecoded:  # the summary above counted them: say where they are missing
        where = ", ".join(f"{group} {n}" for group, n in sorted(undecoded.items()))
        print(
            f"left out: {counted(undecoded.total(), 'clip')} that did not decode ({where}; named "
            "in the warnings above): the counts above include them"
        )
        for line in species_lost(found[0].clips, kept):
            print(line)
    if brief:
        return features
    # the entry holds every fold's and protocol's clips of the data (those that did not decode
    # too): "55 clips" was said of an extraction of 90 (probe)
    manifest = features.manifest
    entry = len(manifest.get("clips", ())) + len(manifest.get("skipped", ()))
    state = "reused" if not features.extracted else f"extracted in {features.seconds:.1f}s"
    aside = []  # the rate of decoding and the network, as extract.py says it (probe)
    if (rate := manifest.get("frames_per_second")) and features.extracted:
        aside.append(f"{rate:.1f} frames/s, decoding and network")
    if kept := features.extracted and manifest.get("resumed_clips"):  # not in that time
        aside.append(f"{kept} of the entry's {entry} clips kept from interrupted runs")
    if reused := features.extracted and manifest.get("reused_clips"):  # the data's earlier entry
        aside.append(f"the features of {counted(reused, 'unchanged clip')} reused")
    state += f" ({'; '.join(aside)})" if aside else ""
    read = len(manifest.get("clips", ()))  # those that decoded: the protocol's of them
    of = f" of the entry's {read}" if read > len(features.clips) else ""
    print(
        f"features: {counted(len(features.clips), 'clip')}{of} x "
        f"{counted(features.frames_per_clip, 'frame')}, "
        f"{state}, cache {features.path}"
    )
    print(features.face_summary())
    if warning := features.face_warning():
        print(warning)
    return features


def species_missing(dataset: Dataset) -> list[str]:
    """A warning for each dev or test split of the user's own data without a species of the
    data's (:func:`species_lost`); a database's protocol that tests some species only is meant."""
    if get_layout(dataset.layout).fixed_splits:
        return []
    return species_lost(dataset.clips, {clip.clip_id for clip in dataset.clips}, "has no")


def species_lost(clips, kept: set[str], how: str = "lost every") -> list[str]:
    """A warning for each split that lost every clip of a species to decoding: a dev or test
    split's figures (the worst species' APCER, the ACER) are then over the other species only,
    which no figure says (probe: a CASIA target's only "cut" attack clip did not decode); the
    heads train without a species the train split lost. With ``how`` "has no" (every clip
    ``kept``): each dev or test split of the user's own data without a species of the data's
    (of two subjects or more; probe: a test split without its replay attacks was said only by a
    count in the summary)."""
    had: dict[str, set[str]] = {}
    has: dict[str, set[str]] = {}
    for clip in clips:
        if clip.split is None:
            continue
        had.setdefault(str(clip.split), set()).add(clip.attack_type)
        if clip.clip_id in kept:
            has.setdefault(str(clip.split), set()).add(clip.attack_type)
    if how == "has no":  # the species of the whole data in dev and test, not of the split; of
        # two subjects or more (one person's species is in one split only, by the subject rule)
        subjects: dict[str, set[str]] = {}
        for clip in clips:
            subjects.setdefault(clip.attack_type, set()).add(clip.subject)
        every = {kind for kind, people in subjects.items() if len(people) > 1}
        had = {split: every for split in had if split != "train"}
    cause = " to decoding" if how == "lost every" else ""
    effect = {"train": "the heads train without it"}  # dev and test: their figures
    return [
        f"warning: the {split} split {how} {', '.join(sorted(lost))} clip{cause}: "
        + effect.get(split, "its figures are over the other species only")
        for split, species in had.items()
        if (lost := species - has.get(split, set()))
    ]


def os_error_line(err: OSError, cache: Path | None = None) -> str:
    """An operating system's error in one line: the file it names, then what happened; a file
    of the ``cache`` folder that may not be written, with the fix (a read-only shared cache was
    "Operation not permitted" alone: probe); stdout's, as such (it was "No space left on
    device" alone, under a redirect on a full disk: probe)."""
    if stdout_failed(err):
        return stdout_said(err)
    where = f"{err.filename}: " if err.filename else ""
    said = f"{where}{err.strerror or err}"
    denied = err.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
    if denied and cache is not None and err.filename and _within(Path(err.filename), cache):
        said += f"; the feature cache {cache} must be writable: give --cache-dir one that is"
    return said


def _within(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())
