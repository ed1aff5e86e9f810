"""Splits: respect the ones a dataset gives, carve the missing ones from train, or split by subject.

No subject is in two splits; a seeded split is stratified by which classes each subject has; a
split without both classes is a :class:`~core.data.clips.DataError`.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from core.constants import SPLITS
from core.data.clips import Clip, DataError
from core.words import counted

log = logging.getLogger(__name__)

DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or min(values) < 0 or values[0] <= 0 or abs(sum(values) - 1) > 1e-6:
        raise DataError(
            f"fractions must be three numbers (train, dev, test) >= 0 with train > 0 summing "
            f"to 1, got {tuple(fractions)}"
        )
    return values  # type: ignore[return-value]


def missing_splits(clips: list[Clip]) -> tuple[str, ...]:
    """The splits the data does not give (all three when it gives none): the ones
    :func:`assign_splits` draws by subject."""
    given = {c.split for c in clips}
    return tuple(s for s in SPLITS if s not in given)


def assign_splits(
    clips: list[Clip], protocol: str, seed: int, fractions: tuple[float, float, float]
) -> list[Clip]:
    """Respect given splits, carve missing dev/test from train, or split every subject."""
    given = {c.split for c in clips if c.split is not None}
    if not given:
        return _subject_split(clips, seed, fractions, SPLITS)
    by_subject: dict[str, set[str]] = defaultdict(set)
    for clip in clips:
        by_subject[clip.subject].add(clip.split)  # type: ignore[arg-type]
    for subject, splits in sorted(by_subject.items()):
        if len(splits) > 1:
            example = next(c.path for c in clips if c.subject == subject)
            raise DataError(
                f"subject {subject!r} is in splits {', '.join(sorted(splits))} (e.g. {example}); "
                "a subject must stay in one split (check the subject pattern)"
            )
    missing = missing_splits(clips)
    if not missing:
        return clips
    if "train" in missing:
        raise DataError(
            f"split folders {', '.join(sorted(given))} given but no train folder to learn from"
        )
    train = [c for c in clips if c.split == "train"]
    rest = [c for c in clips if c.split != "train"]
    # e.g. CASIA-FASD: dev comes out of train, by subject, in the train:dev proportion asked for
    shares = {"train": fractions[0]} | {s: fractions[SPLITS.index(s)] for s in missing}
    total = sum(shares.values())
    names = tuple(shares)
    carved = _subject_split(train, seed, tuple(shares[n] / total for n in names), names)
    log.info("%s split carved from train by subject (protocol %s)", "/".join(missing), protocol)
    return carved + rest


def _subject_split(
    clips: list[Clip], seed: int, fractions: Sequence[float], names: Sequence[str]
) -> list[Clip]:
    """Seeded subject-disjoint split, stratified by which classes each subject has."""
    classes: dict[str, set[str]] = defaultdict(set)
    for clip in clips:
        classes[clip.subject].add(clip.label)
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for subject in sorted(classes):
        groups[tuple(sorted(classes[subject]))].append(subject)
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for key in sorted(groups):
        subjects = groups[key]
        rng.shuffle(subjects)
        counts = _allocate(len(subjects), fractions)
        start = 0
        for name, count in zip(names, counts, strict=True):
            for subject in subjects[start : start + count]:
                assignment[subject] = name
            start += count
    return [replace(c, split=assignment[c.subject]) for c in clips]


def _allocate(n: int, fractions: Sequence[float]) -> list[int]:
    """Split n subjects: held-out splits get their rounded share (at least one), train the rest."""
    counts = [0] + [int(n * f + 0.5) for f in fractions[1:]]
    counts[0] = n - sum(counts)
    wanted = [i for i, f in enumerate(fractions) if f > 0]
    if n >= len(wanted):
        for i in wanted:
            while counts[i] < 1:
                donor = max(range(len(counts)), key=lambda j: counts[j])
                counts[donor] -= 1
                counts[i] += 1
    while counts[0] < min(n, 1):  # a tiny group goes to train first
        donor = max(range(1, len(counts)), key=lambda j: counts[j])
        counts[donor] -= 1
        counts[0] += 1
    return counts


def check_splits(clips: list[Clip], carved: Sequence[str] = ()) -> None:
    """A DataError when a split lacks a class, with the remedy that can work: for a split the
    data gives (its own folder), clips of the missing class there; for one drawn by subject
    (``carved``), more subjects. Never another ``--split-seed``: the draw divides each group of
    subjects with the same classes between the splits in counts the seed does not change."""
    for split in SPLITS:
        counts = Counter(c.label for c in clips if c.split == split)
        if counts["bonafide"] and counts["attack"]:
            continue
        has = f"split {split!r} has {counts['bonafide']} bona fide and {counts['attack']} attack"
        has += " clips"
        if split not in carved:
            names = {"bonafide": "bona fide", "attack": "attack"}
            missing = " and ".join(name for key, name in names.items() if not counts[key])
            raise DataError(
                f"{has}, in the data's own {split} split; every split needs both classes: add "
                f"{missing} clips there"
            )
        pool = [s for s in SPLITS if s in carved or s == "train"]  # dev is carved from train
        with_class = {
            label: len({c.subject for c in clips if c.split in pool and c.label == label})
            for label in ("bonafide", "attack")
        }
        if not all(with_class.values()):  # no split of it can help (probe)
            none = "bona fide" if not with_class["bonafide"] else "attack"
            raise DataError(f"the data has no {none} clip; every split needs both classes")
        raise DataError(
            f"{has}: {', '.join(pool)} are drawn by subject (no person in two), and "
            f"bona fide clips come from {counted(with_class['bonafide'], 'subject')}, attack "
            f"clips from {with_class['attack']}: too few to give each of them both classes; add "
            "clips of other subjects, or give the data its own train, dev and test folders"
        )
