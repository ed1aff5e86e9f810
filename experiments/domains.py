"""Cross-domain face PAD as the field benchmarks it: which databases train, which one is tested.

The "OCIM" leave-one-out benchmark (Shao et al., CVPR 2019, MADDG; then SSDG, SSAN, FLIP, SAFAS):
four databases, O = OULU-NPU, C = CASIA-FASD, I = Idiap Replay-Attack, M = MSU-MFSD; train on
three, test on the fourth. The limited-source settings train on M and I only. A study may also
name any sources and target itself (``--sources casia,msu --target replay-attack``).

Databases are named by their layout (``core.data.layouts``: ``oulu``, ``casia``,
``replay-attack``, ``msu``, ``replay-mobile``, or any name for a generic folder), each with its
path and, optionally, the protocol whose train and dev splits a source contributes (default: the
database's first protocol, e.g. ``oulu-p1``; MSU-MFSD's ``msu`` makes its dev split from train
subjects). They are given once, in a TOML file (``--databases FILE``)::

    oulu = "/data/OULU-NPU"
    casia = "/data/CASIA-FASD"
    replay-attack = "/data/REPLAY-ATTACK"
    msu = { path = "/data/MSU-MFSD", protocol = "msu" }

or as flags (``--db msu=/data/MSU-MFSD``, repeated). Nothing here imports a backend.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.data.clips import DataError
from core.data.layouts import (
    AUTO,
    folds,
    get_protocol,
    layout_names,
    protocol_names,
    whole_protocols,
)
from core.data.layouts.registry import get_layout

if TYPE_CHECKING:
    from core.data.dataset import Dataset
    from core.features import FeatureOptions, FeatureSet
    from experiments.config import EvaluationOptions

LETTERS = {"O": "oulu", "C": "casia", "I": "replay-attack", "M": "msu"}
NAMES = {name: letter for letter, name in LETTERS.items()}
# the names the databases ship under (Idiap's replayattack folder, OULU-NPU): as a database's
# name they made a setting of their own, headed half in letters, without a word (probe FF)
SHIPPED = {"oulunpu": "oulu", "casiafasd": "casia", "replayattack": "replay-attack"}
SHIPPED |= {"msumfsd": "msu", "replaymobile": "replay-mobile"}
TARGET_CLIPS = ("test", "all")  # the target's test split (whole when it has none), or every clip
# a source's train split, or every clip but its dev split (SSDG's real_label/fake_label files)
SOURCE_CLIPS = ("train", "all")
# layouts whose dev set is one of the database's own (devel/, Dev_files/): SSDG's "all" target
# clips leave it out (its generate_label.py); CASIA-FASD's and MSU-MFSD's dev here is carved from
# their training lists, and "all" has it
OWN_DEV = ("oulu", "replay-attack", "replay-mobile")
ALL_BUT_DEV = "all but its own dev"  # the target_clips tag of "all" on one of those
# a target's every clip: the protocol that keeps them all where the database's first does not
WHOLE = {"oulu": "oulu-all"}


@dataclass(frozen=True)
class Database:
    """One database of a study: its name (a layout's, or the user's), where it is, its protocol."""

    name: str
    path: Path
    protocol: str = AUTO

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):  # "" and "msu " were
            raise ValueError(  # taken, said unquoted (probe FF)
                f"database {self.name!r}: a name is ASCII letters, digits, '-', '_' and '.', "
                "beginning with a letter or digit (it names the database in --sources, "
                "--target, study names and metrics)"
            )
        # the protocols a database can be taken by: whole ones (no folds), its own when named
        named = self.name in layout_names() and self.name != "generic"
        own = get_layout(self.name) if named else None
        whole = [p for p in protocol_names() if not folds(p)]
        mine = [p for p in whole if own is None or get_protocol(p)[0] is own]
        if self.protocol not in (AUTO, *protocol_names()):
            raise ValueError(
                f"database {self.name}: no protocol {self.protocol!r}; one of {', '.join(mine)}"
            )
        layout = get_protocol(self.protocol)[0].name if self.protocol != AUTO else None
        if layout and named and layout != self.name:  # said now, not as a warning a clip
            raise ValueError(
                f"database {self.name}: protocol {self.protocol} is {layout}'s; {self.name}'s: "
                f"{', '.join(mine)}"
            )
        if folds(self.protocol):  # no flag chooses a fold of a named database
            raise ValueError(
                f"database {self.name}: protocol {self.protocol} has folds, and a cross-domain "
                f"study takes a database's protocol whole: one of "
                f"{', '.join(whole_protocols(self.protocol))}"
            )


@dataclass(frozen=True)
class CrossSetting:
    """Train on ``sources`` (train splits pooled, dev splits pooled: the threshold), test on
    ``target``, which no choice ever looks at."""

    name: str
    sources: tuple[str, ...]
    target: str

    @property
    def label(self) -> str:
        """As papers head their columns: ``O&C&I→M``; names without a letter as they are."""
        letter = lambda name: NAMES.get(name, name)  # noqa: E731
        return "&".join(map(letter, self.sources)) + "→" + letter(self.target)


def _setting(sources: str, target: str) -> CrossSetting:
    name = f"{sources.lower()}-{target.lower()}" if len(sources) < 3 else f"ocim-{target.lower()}"
    return CrossSetting(name, tuple(LETTERS[s] for s in sources), LETTERS[target])


SETTINGS = {
    s.name: s
    for s in (
        _setting("OCI", "M"),
        _setting("OMI", "C"),
        _setting("OCM", "I"),
        _setting("ICM", "O"),
        _setting("MI", "C"),
        _setting("MI", "O"),
    )
}
GROUPS = {"ocim": ("ocim-m", "ocim-c", "ocim-i", "ocim-o"), "limited": ("mi-c", "mi-o")}
CHOICES = (*GROUPS, *SETTINGS)  # what --protocol takes besides a database's protocols


def given_setting(sources: tuple[str, ...], target: str) -> CrossSetting:
    """The setting ``--sources`` and ``--target`` name, whatever the sources' order (the order
    pools the clips, so it would change the figures and the study): a named setting's when it is
    one (``oulu,casia,replay-attack`` to ``msu`` is ``ocim-m``, one study; its sources in the
    order of its papers' name, O&M&I→C), else the sources in the benchmark's order, O, C, I, M,
    then the others by name."""
    if len(set(sources)) == len(sources):
        for setting in SETTINGS.values():
            if set(setting.sources) == set(sources) and setting.target == target:
                return setting
    order = list(LETTERS.values())
    rank = lambda name: (order.index(name) if name in order else len(order), name)  # noqa: E731
    return CrossSetting("", tuple(sorted(sources, key=rank)), target)


def default_name(sources: tuple[str, ...], target: str) -> str:
    """A study name's part for a setting given by its databases: ``c_m-to-i`` (letters where
    the benchmark has them, names otherwise: ``o-to-replay-mobile``)."""
    short = lambda name: NAMES.get(name, name).lower()  # noqa: E731
    return f"{'_'.join(map(short, sources))}-to-{short(target)}"


def other_protocol(protocol: object) -> str | None:
    """``protocol`` when it takes its database by another protocol than the database's first (a
    cut, a subset, a protocol of folds: not the database the benchmark takes); None for a first
    protocol or one not known."""
    if not isinstance(protocol, str) or protocol not in protocol_names():
        return None
    return None if get_protocol(protocol)[0].protocols[0].name == protocol else protocol


def whole_said(protocol: object) -> object:
    """A target's protocol (or a source's, trained whole) as a heading or the console names it:
    none for one that keeps every clip (:data:`WHOLE`), which "every clip" says, whatever the
    database is called (``oulu2``: review)."""
    return None if protocol in WHOLE.values() else protocol


def with_protocol(name: str, protocol: str | None) -> str:
    """A database as a line names it: ``oulu``, or ``oulu (oulu-p2)`` when taken by another
    protocol than its first (:func:`other_protocol`)."""
    other = other_protocol(protocol)
    return f"{name} ({other})" if other else name


def shipped_as(name: str) -> str | None:
    """The benchmark database ``name`` is the shipped name of (``OULU-NPU``, ``msu_mfsd``,
    ``replayattack``), if any."""
    return SHIPPED.get(re.sub(r"[-_ ]", "", name.lower()))


def settings_named(name: str) -> list[CrossSetting]:
    """The settings a ``--protocol`` value names: one, or a group's."""
    return [SETTINGS[n] for n in GROUPS.get(name, (name,))]


def read_databases(path: str | Path) -> dict[str, Database]:
    """The databases a TOML file names (``name = "path"`` or ``name = {path, protocol}``; a
    relative path is the file's folder's, as in any file that names others, not the working
    directory's); ValueError (one line, naming the file and the entry) for anything else."""
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # a BOM: Windows' UTF-8
    except OSError as err:
        raise ValueError(f"--databases {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:  # UTF-16, as Windows Notepad saves "Unicode"
        raise ValueError(f"--databases {path}: not UTF-8 text; save it as UTF-8") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"--databases {path}: not TOML ({err})") from None
    found = {}
    for name, value in table.items():
        if isinstance(value, str):
            where, protocol = _with_protocol_suffix(value, path.parent)
            if protocol is not None:  # --db's NAME=PATH:PROTOCOL written in the file
                raise ValueError(
                    f"--databases {path}: entry {name!r}: {value!r} is no folder; a protocol "
                    f'is given as {name} = {{ path = "{where}", protocol = "{protocol}" }}'
                )
            value = {"path": value}
        if not isinstance(value, dict) or not isinstance(value.get("path"), str):
            raise ValueError(
                f"--databases {path}: entry {name!r} must be a path or {{ path = ..., "
                "protocol = ... }"
            )
        unknown = set(value) - {"path", "protocol"}
        if unknown:
            raise ValueError(
                f"--databases {path}: entry {name!r} has unknown keys {sorted(unknown)}"
            )
        try:
            where = path.parent / Path(value["path"]).expanduser()  # an absolute one: itself
            found[name] = Database(name, where, value.get("protocol", AUTO))
        except ValueError as err:
            raise ValueError(f"--databases {path}: {err}") from None
    return found


def _with_protocol_suffix(text: str, base: Path) -> tuple[str, str | None]:
    """``PATH:PROTOCOL`` as (path, protocol); (text, None) for a path, one whose last part holds a
    ':' too where that folder is there (relative to ``base``)."""
    if ":" not in Path(text).name or (base / Path(text).expanduser()).exists():
        return text, None
    path, _, protocol = text.rpartition(":")
    return path, protocol


def protocol_given(text: str) -> bool:
    """Whether ``--db`` text names its protocol (``NAME=PATH:PROTOCOL``; ``:auto`` too, which
    overrides a databases file's protocol for that name)."""
    return _with_protocol_suffix(text.partition("=")[2], Path())[1] is not None


def parse_database(text: str) -> Database:
    """``--db NAME=PATH`` or ``NAME=PATH:PROTOCOL`` as a :class:`Database`."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise ValueError(f"--db {text!r}: expected NAME=PATH (e.g. msu=/data/MSU-MFSD)")
    path, protocol = _with_protocol_suffix(rest, Path())
    if protocol == "":
        raise ValueError(f"--db {text!r}: no protocol after its ':' (NAME=PATH:PROTOCOL)")
    try:
        return Database(name, Path(path).expanduser(), protocol or AUTO)
    except ValueError as err:
        raise ValueError(f"--db {text}: {err}") from None


def target_clips_tested(target: FeatureSet | Dataset, clips: str) -> str:
    """What ``--target-clips`` ``clips`` tests of ``target``: "test", "all" (asked, or it has no
    test split of its own), or :data:`~experiments.domains.ALL_BUT_DEV`: asked, of a database
    with a dev set of its own, which SSDG leaves out."""
    if not tested_whole(target, clips):
        return "test"
    return ALL_BUT_DEV if clips == "all" and target.layout in OWN_DEV else "all"


def tested_whole(other: FeatureSet | Dataset, clips: str = "test") -> bool:
    """Whether a test set (its features, or the database as read) is tested on every clip:
    asked (``clips`` "all"), or it has no test split of its own (one the loader carved does not
    count)."""
    own = other.test_split_given and any(clip.split == "test" for clip in other.clips)
    return clips == "all" or not own


def tested_clip(split: str, tested: str) -> bool:
    """Whether a target's clip of ``split`` is tested where :func:`target_clips_tested` says
    ``tested``."""
    if tested == "test":
        return split == "test"
    return not (tested == ALL_BUT_DEV and split == "dev")  # its own dev: not tested


def whole_options(options: FeatureOptions, layout: str, clips: str) -> FeatureOptions:
    """A database's options where every clip of it is taken (``clips`` "all", as
    ``--target-clips`` or ``--source-clips`` say): :data:`WHOLE`'s protocol where its first
    leaves clips out (OULU-NPU's oulu-p1 holds sessions 1-2 of its train and dev users, session 3
    of its test users), unless a protocol was given for it."""
    whole = WHOLE.get(layout)
    if clips != "all" or options.protocol != AUTO or whole is None:
        return options
    return dataclasses.replace(options, protocol=whole)


def taken_options(evaluation: EvaluationOptions, layouts: Sequence[str]) -> list[FeatureOptions]:
    """Each database's options as ``evaluation``'s setting takes it, its sources then its target
    (``layouts``: theirs, as read): whole (:func:`whole_options`) where ``--source-clips`` or
    ``--target-clips`` is ``all``; one rule for the sweep and extraction. A source given a
    protocol that keeps part of a database :data:`WHOLE` takes otherwise is a DataError (one
    line): trained on Protocol 1's train and test, it was said to be trained whole (review)."""
    taken = [(d, evaluation.source_clips) for d in evaluation.sources]
    taken.append((evaluation.target, evaluation.target_clips))
    options = []
    for index, ((data, clips), layout) in enumerate(zip(taken, layouts, strict=True)):
        whole, given = WHOLE.get(layout), data.options.protocol
        if (
            index < len(evaluation.sources)
            and clips == "all"
            and whole
            and given not in (AUTO, whole)
        ):
            raise DataError(
                f"database {data.name}: --source-clips all trains on every clip but its dev "
                f"split, and protocol {given} keeps part of it: drop the protocol (or give {whole})"
            )
        options.append(whole_options(data.options, layout, clips))
    return options


def trained_role(split: str, clips: str) -> str:
    """What a source's clip of ``split`` is to a study whose ``--source-clips`` is ``clips``:
    train, dev (the threshold), or unused."""
    if split == "dev":
        return "dev"
    return "train" if split == "train" or clips == "all" else "unused"
