"""The typed values that the commands resolve once and the rest of ``experiments`` receives.

Every option is checked and resolved at the command line's edge (``experiments.commands``) into one
of these, and recorded as resolved: a trial run's parameters are :meth:`TrialConfig.params`, and
:meth:`TrialConfig.from_params` reads them back typed, so serving rebuilds exactly what trained.
Nothing here imports a deep-learning backend, Optuna or MLflow.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.backbone.spec import FINE_TUNE
from core.constants import PRECISIONS
from core.data.layouts import AUTO, folds, whole_protocols
from core.features.request import FeatureOptions
from experiments.domains import SOURCE_CLIPS, TARGET_CLIPS

HEARTBEAT_SECONDS = 60  # between a trial's heartbeats (Optuna's documented example: a minute)
GRACE_FACTOR = 3  # a trial (or worker) silent for 3 heartbeats is lost (Optuna's default is 2)
# A worker whose study's budget is taken by others looks again this often (or each heartbeat,
# if shorter) at the running trials, without the study lock: it ends, and prints the study's
# summary, within seconds of the last trial, not a heartbeat later. It reads the budget under
# the lock (and writes its liveness tag) once one of them ends, and once a heartbeat.
WAIT_POLL_SECONDS = 3.0


def fine_tune_choices(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"none,fc"`` (or a sequence) as the checked tuple of fine-tune choices, order kept."""
    items = value.split(",") if isinstance(value, str) else list(value)
    choices = tuple(dict.fromkeys(item.strip() for item in items))
    bad = [c for c in choices if c not in FINE_TUNE]
    if not choices or bad:
        raise ValueError(
            f"--fine-tune takes {'|'.join(FINE_TUNE)} or a comma-separated list of them, "
            f"got {value if isinstance(value, str) else ','.join(value)!r}"
        )
    return choices


class KeepWeights(enum.StrEnum):
    """Which trials log their head's weights (``--keep-weights``)."""

    ALL = "all"  # every trial
    BEST = "best"  # a trial that is its family's best so far (the comparison's ranking)
    NONE = "none"


def _as_written(value: float) -> float:
    """``value``'s 12-digit form where it is within a few units of its last place, else itself."""
    written = float(f"{value:.12g}")
    return written if abs(written - value) <= 4 * math.ulp(value) else value


def head_shown(head: str, fine_tune: str) -> str:
    """A head as a person reads it: ``lstm76+fc`` where the backbone's fc layers trained with it
    (a searched --fine-tune showed no sign of which trials did: probe)."""
    return head if fine_tune == "none" else f"{head}+{fine_tune}"


@dataclass(frozen=True)
class TrialConfig:
    """Everything a trial trains with. ``hparams`` go to the head builder."""

    head: str  # display name, e.g. "conv1024"; equals a write-up name for its settings
    family: str
    output: str
    hparams: dict[str, Any] = field(default_factory=dict)
    feature_dropout: float = 0.5
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    batch_size: int = 16
    epochs: int = 30
    standardize: bool = True  # fc7 standardised with train statistics (folded in afterwards)
    training_precision: str = "float32"  # of the head ("bfloat16"/"float16": mixed policies)
    jit_compile: bool | str = "auto"  # passed to model.compile
    fine_tune: str = "none"  # backbone layers trained with the head: none, fc (fc6, fc7), conv5

    def __post_init__(self) -> None:
        if self.training_precision not in PRECISIONS:
            raise ValueError(
                f"training precision must be one of {', '.join(PRECISIONS)}, "
                f"got {self.training_precision!r}"
            )

    @property
    def shown(self) -> str:
        """The head as a person reads it (:func:`head_shown`)."""
        return head_shown(self.head, self.fine_tune)

    @property
    def kind(self) -> str:
        import heads  # Keras: only when a head is about to be built

        return heads.get_spec(self.family).kind

    def params(self) -> dict[str, Any]:
        """Flat parameters to log: head, output and every hyper-parameter, floats as a person
        writes them where that is the same number but for float rounding (a 0.1 step gives
        0.30000000000000004; it is logged as 0.3), else every digit (a sampled learning rate:
        12 digits were logged, not the rate trained with: probe)."""
        flat = asdict(self)
        flat.update(flat.pop("hparams"))
        return {k: _as_written(v) if isinstance(v, float) else v for k, v in flat.items()}

    @classmethod
    def from_params(cls, params: dict[str, str], defaults: dict[str, Any]) -> TrialConfig:
        """The config whose :meth:`params` were logged, typed again.

        ``defaults`` are the family's builder keywords with their defaults (``HeadSpec.defaults``):
        the logged names among them are the head's hyper-parameters, each typed as its default.
        A run logged before the two precisions had their own names logged ``precision``: that
        was the training precision. Raises ValueError (one line) when the parameters are not a
        trial's.
        """
        params = dict(params)
        if "precision" in params and "training_precision" not in params:
            params["training_precision"] = params.pop("precision")
        values: dict[str, Any] = {
            "hparams": {k: _typed(params[k], d) for k, d in defaults.items() if k in params}
        }
        for item in dataclasses.fields(cls):
            if item.name != "hparams" and item.name in params:
                auto_or_bool = item.name == "jit_compile"
                values[item.name] = _typed(params[item.name], item.default, auto_or_bool)
        try:
            return cls(**values)
        except TypeError as err:
            raise ValueError(f"its parameters are not a trial's ({err})") from None


def _typed(text: str, default: Any, auto_or_bool: bool = False) -> Any:
    if auto_or_bool or isinstance(default, bool):
        return {"True": True, "False": False}.get(text, text)
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    return text


@dataclass(frozen=True)
class NamedData:
    """A database of a study by name (``oulu``, ``msu``; ``data`` and ``test data`` for the flags)
    with the feature options it is read and extracted with."""

    name: str
    options: FeatureOptions


@dataclass(frozen=True)
class EvaluationOptions:
    """How each trial is evaluated: seeds per configuration, which data trains it and which data
    it is tested on.

    Intra-dataset (the default): ``--data``'s splits. Cross-dataset: ``test_data`` (one database
    tested, ``--data`` trains). Cross-domain: ``sources`` (several databases: their train splits
    pooled, their dev splits pooled, the threshold set there) and ``target``, tested on its test
    split (``target_clips="test"``; the whole database when it has none) or every clip
    (``"all"``, as SSDG tests: but a dev set of the database's own,
    :data:`experiments.domains.OWN_DEV`); ``setting`` names the benchmark setting (``ocim-m``).
    A source trains on its train split (``source_clips="train"``) or, as SSDG's label files
    train, on every clip but its dev split (``"all"``: train and test).
    """

    repeats: int = 1
    test_data: Path | None = None  # None: --data's own test split
    test_protocol: str = AUTO
    sources: tuple[NamedData, ...] = ()  # empty: --data alone
    target: NamedData | None = None
    target_clips: str = "test"
    setting: str = ""
    source_clips: str = "train"

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise ValueError(f"--repeats must be at least 1, got {self.repeats}")
        if self.test_data is None and self.test_protocol != AUTO:
            raise ValueError("--test-protocol needs --test-data: it names the test set's layout")
        if folds(self.test_protocol):  # --fold chooses --data's: it had been asked for, refused
            raise ValueError(
                f"--test-protocol {self.test_protocol} has folds, and a cross-dataset test set "
                f"is taken whole: one of {', '.join(whole_protocols(self.test_protocol))}"
            )
        for flag, value, choices in (
            ("--target-clips", self.target_clips, TARGET_CLIPS),
            ("--source-clips", self.source_clips, SOURCE_CLIPS),
        ):
            if value not in choices:
                raise ValueError(f"{flag} takes {' or '.join(choices)}, got {value!r}")
            if self.target is None and value != choices[0]:
                raise ValueError(
                    f"{flag} goes with a cross-domain study's databases (--protocol ocim..., or "
                    "--sources and --target)"
                )
        if self.sources and self.test_data is not None:
            raise ValueError("--test-data goes with --data; a cross-domain study names --target")
        named = [*self.sources, *([self.target] if self.target else [])]
        if self.target and self.target.name in {d.name for d in self.sources}:
            raise ValueError(
                f"database {self.target.name} is the target and a source: the target is a "
                "database the heads never saw"
            )
        names = [d.name for d in named]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(
                f"database {twice[0]} is given twice (by name): each database trains or is "
                "tested, once"
            )
        at = [(Path(d.options.data).resolve(), d.name) for d in named if d.options.data]
        paths = [path for path, _ in at]
        twice = sorted({path for path in paths if paths.count(path) > 1})
        if twice:  # the names that give it: casia and casia2 (probe: the path alone)
            both = " and ".join(name for path, name in at if path == twice[0])
            raise ValueError(
                f"databases {both} are one folder, {twice[0]}: each database trains or is "
                "tested, once"
            )
        for inner in paths:
            check_apart(inner, [p for p in paths if p != inner])

    @property
    def cross_domain(self) -> bool:
        return bool(self.sources)


def check_apart(path: Path, others: Sequence[Path]) -> None:
    """A ValueError when the database folder ``path`` lies inside one of ``others``: its clips
    would be another database's too, trained on and tested (a source's ``train/`` given as the
    target tested the source's own training clips)."""
    for other in others:
        if path.resolve().is_relative_to(other.resolve()) and path.resolve() != other.resolve():
            raise ValueError(
                f"database {path} is inside database {other}: its clips are that one's too; each "
                "database trains or is tested, once"
            )


def safe_name(name: str) -> str:
    """``name`` with every run of characters other than letters, digits and ``_.-`` made ``_``:
    a study's name, and its artifacts' folder."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
