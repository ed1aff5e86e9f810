"""A study's record of what its figures depend on (:mod:`experiments.stores.identity` checks
it): its entries, by the flags that set them, and how two records differ, as a user names it
("--frames 7; this run's 8", "trained on c, m; this run's c, m, r")."""

from __future__ import annotations

from typing import Any

from core.features import random_backend
from experiments.domains import ALL_BUT_DEV, OWN_DEV, WHOLE

# the record's entry for the training features: "cache entry " and their keys' first 12 digits
FEATURES = "features (data files, weights, frames, crop and detector, --precision)"
# where --heads names a part of a family's write-up heads, or none (conv2048, conv): they run first
WRITE_UP = "write-up heads first (--heads)"
TEST_FEATURES = "test features (--test-data or --target: data files, frames, crop, --precision)"
# the record's entry that is no flag but tells one: each features entry's cache key parts (first
# 12 digits: parts), to name what differs where the study's entries are not in this cache
KEY_PARTS = "cache key parts"
# each source's protocol, then the test data's, in order: with DATABASES, a study's setting
PROTOCOLS = "protocols (--protocol, --test-protocol, --db NAME=PATH:PROTOCOL)"
# the folds a study's trials train on ("1,2,3,4,5,6", "2", "none"): said where they differ, not
# the clips' hashes they explain (a study made before it was recorded: its clips are said)
FOLDS = "folds (--fold)"
# with folds of several seeds: each figure's std is over the folds, each fold's seeds averaged
# first (since 2026-12-07; over every setting before): a study of the other kind is refused
SPREAD = "± std of folds and seeds"
SPREAD_OVER_FOLDS = "over the folds, each fold's seeds averaged"

# a study trained on a CASIA-FASD scenario subset: since 2026-12-07 it restricts every split
CASIA_SUBSETS = "casia-* subsets (--protocol)"
CASIA_EVERY_SPLIT = "train, dev and test alike"
# ... and, of a cross-domain study, its databases by name ({"trained on": "msu", "tested on":
# "casia"}): not compared (a name is how a path is called), but said where features differ
DATABASES = "databases"
# the seed of the subject split: not compared (it changes nothing where the data gives its
# splits), but named where the clips differ (their hashes alone had been said: probe Y)
SPLIT_SEED = "--split-seed"
UNCOMPARED = (KEY_PARTS, DATABASES, SPLIT_SEED)
SIDES = {FEATURES: "trained on", TEST_FEATURES: "tested on"}  # the features each side names

# what a study's features were, whose cache key named no backend while this run's names one
SHARED_KEY = "(whose entry every backend shared before 2026-12-07)"
# a feature cache key's parts as a user names them (core.features.extract.cache_key); the
# others (preprocessing, layer) change with the code, not with a flag
PART_NAMES = {
    "data": "the data files",
    "weights": "the weights file",
    "frames_per_clip": "--frames",
    "face_crop": "the face crop (--[no-]face-crop)",
    "detector": "the face detector",
    "face_boxes": "the database's face boxes",
    "precision": "--precision",
    "backend": "the features' KERAS_BACKEND",  # a weights file's under another than TensorFlow
}


def folds_of_seeds(recorded: dict[str, Any]) -> bool:
    """Whether a study's record is of trials that train several folds with several seeds each:
    only such a study made before :data:`SPREAD` was recorded lacks it (a study without folds,
    or of one seed, lacks it too, and was said to spread over every setting: probe)."""
    several = "," in str(recorded[FOLDS]) if FOLDS in recorded else True  # before 2026-12-07
    return several and str(recorded.get("--repeats", "1")) != "1"


def tested_said(own: bool) -> str:
    """A study tested on its own test split (``own``) beside a run tested on ``--test-data``, or
    the reverse, as said."""
    mine, other = "--data's own test split", "--test-data"
    return f"tested on {mine if own else other}; this run's {other if own else mine}"


def part_differences(theirs: dict[str, Any], parts: dict[str, Any]) -> dict[str, str]:
    """Cache key parts that differ between an entry's (``theirs``) and ``parts``, as said."""
    named = [*parts, *(["backend"] if "backend" in theirs and "backend" not in parts else [])]
    differ = [part for part in named if theirs.get(part) != parts.get(part)]
    if "face_crop" in differ:  # its detector and boxes: said by the crop
        differ = [part for part in differ if part not in ("detector", "face_boxes")]
    return {p: _difference(p, theirs.get(p), parts.get(p)) for p in differ}


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two records of what a study's figures depend on (another study's
    ``recorded``, this run's ``current``), as a user names it: "--frames 7; this run's 8",
    "--repeats 1; this run's 3". Features are said by their cache key parts where both records
    have one entry each; hashed entries (clips) only when no features differ, which would
    explain them (beside "--repeats 2; this run's 1", test clips chosen by another --target-clips
    went unsaid: probe). Cross-domain studies of other databases say them ("trained on casia,
    msu; this run's ..."), not the features, clips and protocols that follow from them (the
    data files had been said to differ, with advice on copying them: probe)."""
    away = moved(recorded, current)  # the sides whose databases moved
    said, hashed, features, folds = list(away.values()), [], False, False
    # a study of other databases (Replay-Attack's beside OULU-NPU's): their files and boxes
    # differ as databases do, said by the protocols, not with advice on copying (probe)
    theirs, ours = _databases(recorded), _databases(current)
    elsewhere = {  # each side on its own: a shared test database is no reason (review)
        side: None not in (theirs[at], ours[at]) and theirs[at] != ours[at]
        for side, at in ((FEATURES, 0), (TEST_FEATURES, -1))
    }
    # clips taken by another --source-clips/--target-clips: said by the flag, not by the
    # protocols that taking OULU-NPU whole changes (review)
    taken = any(taken_clips(what, recorded, current) for what in current)
    for what, value in current.items():
        if what == PROTOCOLS and taken and whole_only(recorded, current):
            continue
        # made before it was recorded (a study of no folds of seeds has no spread to: probe)
        older = what == WRITE_UP or (what == SPREAD and folds_of_seeds(recorded))
        if older and what not in recorded:
            was = "over every setting" if what == SPREAD else "not recorded"  # refused: review
            said.append(f"{what} {was}; this run's {value}")
        if what in UNCOMPARED or what not in recorded or recorded[what] == value:
            continue
        side = SIDES.get(what) or next((s for p, s in _FOLLOW if what.startswith(p)), None)
        if side in away and what not in SIDES:
            continue
        if away and what.startswith("protocols"):  # the databases' moved: said by them
            was, now = (str(r[what]).split(",")[0] for r in (recorded, current))
            if DATABASES not in recorded and DATABASES not in current and was != now:
                said.append(f"--protocol {was}; this run's {now}")  # --test-data's aside
            continue
        found = sides_differ(what, recorded, current)
        if side in away or elsewhere.get(what):  # other databases: their files, as said;
            # other options said still
            found = {k: v for k, v in (found or {}).items() if k not in OWN}
            if not found:
                continue
        if found is not None:  # the same parts: another entry that explains nothing (review)
            said += found.values()
            features |= bool(found)  # the hashed entries are said only where none differ
        elif lines := [  # both where both differ: either alone resumes nothing (review)
            line
            for line in (split_seeds(what, recorded, current), taken_clips(what, recorded, current))
            if line
        ]:
            said += lines
            # the seed explains the hashed clips (test clips too) it drew
            features |= lines[0].startswith(SPLIT_SEED)
        elif what.startswith(("clips", "test clips")) or what in SIDES:
            hashed.append(f"{what} differ")
        else:
            said.append(f"{what} {shown(recorded[what])}; this run's {shown(value)}")
        folds |= what == FOLDS
    return list(dict.fromkeys(said)) + ([] if features or folds else hashed)


# the flags that take a study's clips by a suffix of their entry ("t1:all"): the default of
# an entry without one (None: none, a record made before the suffix)
TAKEN = (("test clips", "--target-clips", None), ("clips", "--source-clips", "train"))
DEV_TOO = "all, its own dev set too (before 2026-12-06)"  # what such a target's "all" tested


def taken_clips(what: str, recorded: dict[str, Any], current: dict[str, Any]) -> str | None:
    """The line "--target-clips test; this run's all" (or --source-clips) where the clips
    (``what``) were taken by another value of the flag ("test clips ... differ" had been said:
    probe BB), else None. Said by the flag's values (``all``, not the record's "all but its own
    dev"), whatever the clips' hashes, which the flag changes where it takes OULU-NPU whole; a
    target of before 2026-12-06 whose "all" tested its own dev set too, so."""
    flag, default = next(((f, d) for p, f, d in TAKEN if what.startswith(p)), (None, None))
    if flag is None or what not in recorded or what not in current:
        return None
    sides = []
    for side in (recorded, current):
        parts = [part.rpartition(":") for part in str(side[what]).split(",")]
        if default is None and not all(sep for _, sep, _ in parts):
            return None
        sides.append([tail if sep else str(default) for _, sep, tail in parts])
    was, now = sides
    if len(was) != len(now) or was == now:
        return None
    # a target with a dev set of its own now records "all but its own dev": "all", its dev set
    # too, was made before 2026-12-06, whatever this run takes (review)
    own_dev = _databases(recorded)[-1] in OWN_DEV
    shown = [",".join(dict.fromkeys("all" if t == ALL_BUT_DEV else t for t in s)) for s in sides]
    if flag == "--target-clips" and "all" in was and (own_dev or ALL_BUT_DEV in now):
        return f"{flag} {DEV_TOO}; this run's {shown[1]}"
    return None if shown[0] == shown[1] else f"{flag} {shown[0]}; this run's {shown[1]}"


def whole_only(recorded: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether the records' protocols differ only where one takes a database whole and the
    other by its first protocol (OULU-NPU's oulu-all for oulu-p1, as --source-clips or
    --target-clips all take it, not a protocol of the user's: review): said by the flag."""
    from core.data.layouts.registry import get_layout

    swaps = {frozenset((w, get_layout(layout).protocols[0].name)) for layout, w in WHOLE.items()}
    was, now = (str(r.get(PROTOCOLS, "")).split(",") for r in (recorded, current))
    return len(was) == len(now) and all(
        a == b or frozenset((a, b)) in swaps for a, b in zip(was, now, strict=True)
    )


def split_seeds(what: str, recorded: dict[str, Any], current: dict[str, Any]) -> str | None:
    """The line "--split-seed 0; this run's 1" where the training clips differ (``what``) and
    so do the records' split seeds, else None."""
    was, now = recorded.get(SPLIT_SEED), current.get(SPLIT_SEED)
    if not what.startswith("clips") or None in (was, now) or was == now:
        return None
    return f"{SPLIT_SEED} {was}; this run's {now}"


def _databases(record: dict[str, Any]) -> tuple[str | None, str | None]:
    """The databases (layouts) of a record's training and test data, from its protocols (the
    training data's first, the test data's last; an intra-dataset study's one: both); None where
    not known."""
    from core.data.layouts.registry import get_protocol, protocol_names

    key = next((k for k in record if k.startswith("protocols")), None)
    named = str(record.get(key, "")).split(",") if key else [""]
    layout = lambda p: get_protocol(p)[0].name if p in protocol_names() else None  # noqa: E731
    return layout(named[0]), layout(named[-1])


# the identity entries a cross-domain study's databases decide, by side (SIDES' values)
_FOLLOW = (("test clips", "tested on"), ("clips", "trained on"))


def moved(recorded: dict[str, Any], current: dict[str, Any]) -> dict[str, str]:
    """The sides (:data:`SIDES`' values) whose databases two cross-domain records name
    otherwise, as said: ``{"trained on": "trained on casia, msu; this run's ..."}``; both, as
    one line, where one record is a cross-domain study's and the other a study of ``--data``
    tested on its own test split (its training and test features one entry)."""
    was, now = (r.get(DATABASES) for r in (recorded, current))
    own = [r.get(FEATURES) == r.get(TEST_FEATURES) for r in (recorded, current)]
    if (isinstance(was, dict) and own[1]) or (isinstance(now, dict) and own[0]):
        cross = was if isinstance(was, dict) else now
        named = ", ".join(f"{side} {cross.get(side)}" for side in SIDES.values())
        said = f"a cross-domain study ({named})"
        mine = "--data tested on its own test split"
        line = f"{said}; this run's {mine}" if was is cross else f"{mine}; this run's {said}"
        return dict.fromkeys(SIDES.values(), line)
    both = all(TEST_FEATURES in r for r in (recorded, current))
    if both and own[0] != own[1] and was is None and now is None:  # one tested on --test-data
        return {SIDES[TEST_FEATURES]: tested_said(own[0])}  # data files that differ: probe
    if not isinstance(was, dict) or not isinstance(now, dict):
        return {}
    return {
        side: f"{side} {was[side]}; this run's {now[side]}"
        for side in SIDES.values()
        if side in was and side in now and _named(was[side]) != _named(now[side])
    }


def _named(databases: Any) -> list[str]:
    """A side's databases in no order (pooled in another order: said by the protocols)."""
    return sorted(str(databases).split(", "))


# the key parts each database has of its own (its files): other databases differ in them
OWN = ("data", "face_boxes")


def sides_differ(
    what: str, recorded: dict[str, Any], current: dict[str, Any]
) -> dict[str, str] | None:
    """The cache key parts by which the features ``what`` (a :data:`SIDES` entry) of two records
    differ, as said; None where they are no features, a record names no parts of its entries,
    or their numbers of entries differ (other databases) and no shared option does."""
    found = [_key_parts(record, what) for record in (recorded, current)]
    if what not in SIDES or found[0] is None or found[1] is None:
        return None
    (theirs, count), (ours, now) = found
    if count != now:  # other databases: their data and boxes are no copy of one another's
        theirs, ours = ({k: v for k, v in p.items() if k not in OWN} for p in (theirs, ours))
        return part_differences(theirs, ours) or None
    return part_differences(theirs, ours)


def _key_parts(record: dict[str, Any], what: str) -> tuple[dict[str, Any], int] | None:
    """The cache key parts of ``record``'s entries of ``what`` (its features), if recorded, and
    how many entries: of several (a cross-domain study's sources), the parts they share, and
    their data files together, in no order (one pooled in another order is said by
    :func:`_other`)."""
    keys = str(record.get(what, "")).removeprefix("cache entry ").split(",")
    parts = record.get(KEY_PARTS)
    found = [parts.get(key) for key in keys] if isinstance(parts, dict) else [None]
    if not all(isinstance(entry, dict) for entry in found):
        return None
    first, *others = found
    shared = {k: v for k, v in first.items() if all(e.get(k, v) == v for e in others)}
    if others:
        shared["data"] = ",".join(sorted(str(entry.get("data")) for entry in found))
    return shared, len(found)


def _difference(part: str, before: Any, value: Any) -> str:
    what = PART_NAMES.get(part, part)
    if part == "backend":  # none named: TensorFlow's key, every backend's before 2026-12-07
        was = before or f"tensorflow {SHARED_KEY}"
        return f"{what} {was}; this run's {value or 'tensorflow'}"
    if part == "weights":  # random backbones: each backend draws its own
        drawn = [random_backend(str(v)) for v in (before, value)]
        if None not in drawn and drawn[0] != drawn[1]:
            return (
                f"the random backbone drawn by KERAS_BACKEND={drawn[0]}; this run's by {drawn[1]}"
            )
    if part in ("data", "weights", "face_boxes"):  # fingerprints: say which, not the digits
        if before and value:  # the data: a copy that did not keep the files' times is other
            if part == "data":
                copies = "names, sizes or times: cp -p, rsync -t keep times"
                return f"{what} differ ({copies}; the demo set's: --split-seed draws it)"
            return f"{what} differ" if what.endswith("s") else f"{what} differs"
        # none: turned off, or no box file there (a copy without them: probe)
        before, value = ("used" if v else "none used" for v in (before, value))
    return f"{what} {shown(before)}; this run's {shown(value)}"


def shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return "none" if value is None else str(value)
