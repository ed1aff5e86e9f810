"""The command-line flags, each defined once, and what they resolve into.

Feature options are the fields of :class:`core.features.FeatureOptions`: :data:`FEATURE_FLAGS`
gives each field its flag (``--<field name with dashes>``), and the flags' defaults are the
fields' own, so ``experiments/extract.py`` and ``experiments/sweep.py`` take the same data flags
and a cache written by one is reused by the other; ``tests/test_options.py`` checks that every
field has a flag. A new feature option is a field there and an entry here. Nothing here imports a
deep-learning backend, Optuna or MLflow: commands check their arguments before those load.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.backbone.matconvnet import check_weights_file
from core.constants import AUTO_PRECISION, PRECISIONS
from core.data.layouts import AUTO, protocol_names
from core.device import supported_backend
from core.features.extract import default_cache_dir
from core.features.faces import DETECTORS
from core.features.request import FeatureOptions
from core.flags import given_path
from core.words import meant
from experiments import domains
from experiments.config import EvaluationOptions, NamedData, check_apart

# FeatureOptions field -> argparse keywords of its flag (the default is the field's).
FEATURE_FLAGS: dict[str, dict[str, Any]] = {
    "data": {
        "type": given_path,
        "help": "dataset root (README: Your data); default: the synthetic set",
    },
    "weights": {
        "type": given_path,
        "help": "vgg_face.mat or a converted .weights.h5 (python -m core.port)",
    },
    "cache_dir": {
        "type": given_path,
        "help": "cache folder; default $VGGFACE_HEADS_CACHE or $XDG_CACHE_HOME/vggface-heads",
    },
    "protocol": {
        "choices": lambda: [AUTO, *protocol_names(), *domains.CHOICES],  # layouts registered now
        "help": "evaluation protocol (default auto: the database is recognised from its files "
        "and its first protocol runs, e.g. oulu-p1); or a cross-domain setting over named "
        "databases (--db, --databases; ocim runs its four)",
    },
    "fold": {
        "type": int,
        "help": "the protocol's fold (oulu-p3, oulu-p4: 1-6; msu-folds: 1-5)",
    },
    "subject_pattern": {
        "help": "regex whose first group that matched (else its whole match) is the subject, "
        "searched in each clip's name, then its folders"
    },
    "split_seed": {"type": int, "help": "seed of the subject split and synthetic set"},
    "frames": {"type": int, "help": "frames per clip"},
    "face_crop": {
        "action": argparse.BooleanOptionalAction,
        "help": "crop frames to the face (default: on for --data, off for the synthetic set)",
    },
    "face_detector": {
        "choices": DETECTORS,
        "help": "auto: MTCNN where it runs, else OpenCV's Haar cascade",
    },
    "database_boxes": {
        "action": argparse.BooleanOptionalAction,
        "help": "crop with the face boxes a database ships (--no-database-boxes: detect in "
        "every clip)",
    },
    "precision": {
        "choices": (AUTO_PRECISION, *PRECISIONS),
        "help": "of extraction: float32, or Keras' mixed bfloat16/float16 (float32 weights and "
        "outputs); auto: bfloat16 on a GPU, or on a CPU with bfloat16 units under TensorFlow (not "
        "JAX: no faster there), else float32; features are cached per precision",
    },
    "batch_size": {"type": int, "help": "frames per forward pass (default: the device's)"},
}
COUNTS = ("frames", "batch_size")  # FeatureOptions fields that count something: at least 1
NOT_FLAGS = ("progress",)  # FeatureOptions fields a command sets itself (extract: --no-progress)


def add_feature_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that choose the clips, the backbone and the frames: one per feature option."""
    group = parser.add_argument_group("data and features")
    defaults = {f.name: f.default for f in dataclasses.fields(FeatureOptions)}
    for name, keywords in FEATURE_FLAGS.items():
        flag = "--" + name.replace("_", "-")
        if callable(keywords.get("choices")):
            keywords = {**keywords, "choices": keywords["choices"]()}
        group.add_argument(flag, dest=name, default=defaults[name], **named_choices(keywords))


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, without breaking a line inside a hyphenated name (replay-attack-highdef), and
    each flag's default where its help does not say it (--trials 12, --storage, --heartbeat 60
    were in README alone: probe V)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        unsaid = default in (None, [], argparse.SUPPRESS) or isinstance(default, bool)
        unsaid = unsaid or "default" in text
        return text if unsaid or not action.option_strings else f"{text} (default: %(default)s)"


def named_choices(keywords: dict[str, Any], many: int = 8) -> dict[str, Any]:
    """A flag of ``many`` or more choices shows ``NAME`` in the usage line and lists its choices
    at the end of its help, where the list wraps (argparse puts every choice in the usage)."""
    choices = keywords.get("choices")
    if choices is None or len(choices) < many:
        return keywords
    listed = f"; one of {', '.join(choices)}"
    return {**keywords, "metavar": "NAME", "help": keywords["help"] + listed}


def feature_options(args: argparse.Namespace, progress: bool = True) -> FeatureOptions:
    """The :class:`FeatureOptions` that the flags of :func:`add_feature_arguments` say (a
    cross-domain ``--protocol`` names databases, not ``--data``'s protocol: ``auto`` here).
    ``progress``: a bar while extracting, drawn only where stderr is a terminal (piped into a
    file, its redrawn lines filled it: the plain lines of ``--no-progress`` then)."""
    progress = progress and sys.stderr.isatty()
    supported_backend()
    values = {name: getattr(args, name) for name in FEATURE_FLAGS}
    for name in COUNTS:  # said with the flag's name, before any data is read
        if values[name] is not None and values[name] < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {values[name]}")
    if values["split_seed"] is not None and values["split_seed"] < 0:
        raise ValueError(f"--split-seed must be at least 0, got {values['split_seed']}")
    cache = values["cache_dir"]
    if cache is not None and cache.exists() and not cache.is_dir():
        raise ValueError(f"--cache-dir {cache}: a file, not a folder")
    if cache is None:  # $VGGFACE_HEADS_CACHE, checked with the flags (probe FF)
        default_cache_dir()
    if values["weights"] is not None:  # before the data is read (probe T: said after it)
        check_weights_file(values["weights"])
    if values["protocol"] in domains.CHOICES:
        values["protocol"] = AUTO
    return FeatureOptions(**values, progress=progress)


def add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """``--repeats``, the cross-dataset flags ``--test-data``/``--test-protocol`` and the
    cross-domain ones (``--db``, ``--databases``, ``--sources``, ``--target``,
    ``--target-clips``)."""
    group = parser.add_argument_group("evaluation (README: Reporting like a paper)")
    group.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="train each configuration K times with different seeds; log mean and std",
    )
    group.add_argument(
        "--test-data",
        type=given_path,
        help="cross-dataset: report on this dataset's test split (all of it if it has none); "
        "training and the threshold stay on --data",
    )
    group.add_argument(
        "--test-protocol",
        default=AUTO,
        **named_choices(
            {
                "choices": [AUTO, *protocol_names()],
                "help": "protocol of --test-data (default auto: recognised from its files)",
            }
        ),
    )
    add_database_arguments(parser)


def add_database_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """``--databases FILE``, ``--db NAME=PATH`` and ``--sources``/``--target``: the databases a
    cross-domain study names (the sweep's, and extraction's ahead of it)."""
    cross = parser.add_argument_group("cross-domain (README: Cross-domain (OCIM))")
    cross.add_argument(
        "--databases",
        type=given_path,
        help='TOML file naming the databases: oulu = "/data/OULU-NPU" ... (experiments.domains)',
    )
    cross.add_argument(
        "--db",
        action="append",
        default=[],
        metavar="NAME=PATH[:PROTOCOL]",
        help="a named database (oulu, casia, replay-attack, msu, replay-mobile or your own name); "
        "repeat it",
    )
    cross.add_argument(
        "--sources",
        help="comma-separated databases that train (their dev: the threshold); with --target",
    )
    cross.add_argument("--target", help="the database tested, never seen in training")
    cross.add_argument(  # extraction's too: it extracts, and lists, the clips tested (probe BB)
        "--target-clips",
        choices=domains.TARGET_CLIPS,
        default="test",
        help="the target's test split (default; the whole database when it has none) or every "
        "clip but a dev set of the database's own (Replay's devel, OULU-NPU's Dev_files), as "
        "SSDG tests",
    )
    cross.add_argument(
        "--source-clips",
        choices=domains.SOURCE_CLIPS,
        default="train",
        help="what each source trains on: its train split (default), or every clip but its dev "
        "split (train and test; OULU-NPU's every session), as SSDG's label files train",
    )
    return cross


def evaluation_options(
    args: argparse.Namespace, features: FeatureOptions | None = None
) -> list[EvaluationOptions]:
    """The :class:`EvaluationOptions` the flags say: one, or one per cross-domain setting of a
    group (``--protocol ocim``). ValueError (one line) when they do not fit together."""
    databases = _databases(args)
    protocol = getattr(args, "protocol", AUTO)
    given = {k: getattr(args, k, None) for k in ("sources", "target", "test_data")}
    repeats, target_clips = getattr(args, "repeats", 1), getattr(args, "target_clips", "test")
    source_clips = getattr(args, "source_clips", "train")
    named = protocol in domains.CHOICES
    _check_crop(features, named or bool(given["sources"]))
    if named and (given["sources"] is not None or given["target"] is not None):
        raise ValueError(
            f"--protocol {protocol} names its sources and target: drop --sources and --target"
        )
    if given["sources"] is not None and protocol != AUTO:  # it was dropped without a word
        raise ValueError(
            f"--protocol {protocol} chooses --data's clips; a cross-domain database's protocol "
            "is its own: --db NAME=PATH:PROTOCOL"
        )
    for flag in ("sources", "target"):  # "--sources ," names nothing: never the synthetic demo
        if given[flag] is not None and not given[flag].replace(",", "").strip():
            raise ValueError(f"--{flag} {given[flag]!r} names no database, e.g. --{flag} casia")
        if given[flag] is not None and "" in (n.strip() for n in given[flag].split(",")):
            # msu,$X,replay-attack with X unset trained on two of three, without a word (probe BB)
            raise ValueError(
                f"--{flag} {given[flag]!r} has an empty name in its list (two commas together, "
                "or one at an end)"
            )
    if (given["sources"] is None) != (given["target"] is None):
        raise ValueError("--sources and --target go together")
    if named:
        settings = domains.settings_named(protocol)
    elif given["sources"]:
        sources = tuple(name.strip() for name in given["sources"].split(","))
        settings = [domains.given_setting(sources, given["target"].strip())]
    else:
        if databases:
            raise ValueError(
                "--db/--databases name databases for a cross-domain study: add --protocol ocim "
                "(its four settings; or limited, ocim-m, mi-c ...) or --sources A,B --target C"
            )
        test_protocol = getattr(args, "test_protocol", AUTO)
        test_data = given["test_data"]
        if test_data is not None and features is not None and features.data is not None:
            if Path(test_data).resolve() == Path(features.data).resolve():
                raise ValueError(
                    f"--test-data {test_data} is --data: a cross-dataset study tests another "
                    "database (--data's own test split needs no --test-data)"
                )
            check_apart(Path(test_data), [Path(features.data)])
            check_apart(Path(features.data), [Path(test_data)])
        return [
            EvaluationOptions(
                repeats=repeats,
                test_data=given["test_data"],
                test_protocol=test_protocol,
                target_clips=target_clips,
                source_clips=source_clips,
            )
        ]
    if features is not None and features.data is not None:
        raise ValueError("a cross-domain study trains on named databases (--db), not --data")
    if features is not None and (features.fold is not None or features.subject_pattern):
        raise ValueError(
            "--fold and --subject-pattern choose --data's split; a cross-domain study takes each "
            "database's own protocol (--db NAME=PATH:PROTOCOL)"
        )
    if given["test_data"] is not None:
        raise ValueError("--test-data goes with --data; a cross-domain study names --target")
    if getattr(args, "test_protocol", AUTO) != AUTO:
        raise ValueError(
            "--test-protocol goes with --test-data; a cross-domain target's protocol is its "
            "database's: --db NAME=PATH:PROTOCOL"
        )
    base = features or FeatureOptions()
    options = []
    names = dict.fromkeys(n for s in settings for n in (*s.sources, s.target))
    missing = [n for n in names if n not in databases]
    if missing:
        study = f"--protocol {protocol}" if named else "the study"
        close = {n: _close(n, databases) for n in missing}  # a typo, or another case
        guesses = "".join(f"; {c} for {n}?" for n, c in close.items() if c)
        given = f" (given: {', '.join(databases)}{guesses})" if databases else ""
        file = getattr(args, "databases", None)  # one that names none was not said (probe FF)
        given = given or (f" (--databases {file} names none)" if file else "")
        more = f"or add {missing[0]} = PATH to {file}" if file else "or --databases FILE"
        raise ValueError(
            f"{study} needs {'databases' if len(missing) > 1 else 'database'} "
            f"{', '.join(missing)}{given}: give --db {missing[0]}=PATH {more}"
        )
    for setting in settings:
        named_data = [_named(databases[n], base) for n in (*setting.sources, setting.target)]
        options.append(
            EvaluationOptions(
                repeats=repeats,
                sources=tuple(named_data[:-1]),
                target=named_data[-1],
                target_clips=target_clips,
                source_clips=source_clips,
                setting=setting.name,
            )
        )
    return options


def _close(name: str, names: Sequence[str]) -> str | None:
    """The one of ``names`` a user most likely meant by ``name`` (``MSU``, ``msuu``,
    ``oulu-npu``, ``msu_mfsd`` for ``oulu``, ``msu``), if any."""
    shipped = [given for given in names if domains.shipped_as(given) == name]
    return next(iter(shipped or meant(name, names, n=1)), None)


def _check_crop(features: FeatureOptions | None, other_data: bool) -> None:
    """A ValueError when ``--face-detector`` names a detector and no frame is cropped (it was
    ignored): ``--no-face-crop``, or the synthetic set, which is not cropped by default, nor is
    ``--test-data`` tested on it (``other_data``: named databases, cropped by default)."""
    if features is None or features.face_detector == AUTO:
        return
    cropped = features.face_crop
    if cropped is None:  # the default: on for the user's data, off for the synthetic set
        cropped = other_data or features.data is not None
    if not cropped:
        why = "--no-face-crop" if features.face_crop is False else "the synthetic set's default"
        raise ValueError(
            f"--face-detector {features.face_detector} finds faces to crop, and no frame is "
            f"cropped ({why}): add --face-crop, or drop --face-detector"
        )


def _databases(args: argparse.Namespace) -> dict[str, domains.Database]:
    found = domains.read_databases(args.databases) if args.databases else {}
    flagged = set()
    for text in args.db:
        database = domains.parse_database(text)
        if database.name in flagged:
            raise ValueError(f"--db {database.name} is given twice: name each database once")
        flagged.add(database.name)
        if not domains.protocol_given(text) and database.name in found:  # a copy: the same one
            database = dataclasses.replace(database, protocol=found[database.name].protocol)
        found[database.name] = database  # a flag overrides the file's path (and protocol)
    return found


def _named(database: domains.Database, base: FeatureOptions) -> NamedData:
    """A named database with the study's feature options (backbone, frames, crop, precision)."""
    options = dataclasses.replace(
        base, data=database.path, protocol=database.protocol, fold=None, subject_pattern=None
    )
    return NamedData(database.name, options)


def verbose_requested(argv: list[str] | None) -> bool:
    """Whether ``-v``/``--verbose`` is among the arguments (read before parsing: the libraries'
    start-up lines are silenced, or not, before anything else imports them)."""
    import sys

    return bool({"-v", "--verbose"} & set(sys.argv[1:] if argv is None else argv))
