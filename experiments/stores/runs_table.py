"""A study's trial runs as one table, ranked as everything that chooses a trial ranks them.

One row per finished trial run (every invocation and worker of the study): head, family, output,
the write-up baseline it is, every logged figure, the worst species and whether it was a
demonstration. :data:`RANKING` is the one order "best" means here: the comparison, the weights a
study keeps (``--keep-weights best``), the registered models and ``predict.py --best`` all use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from functools import partial

import numpy as np
import pandas as pd

from experiments.config import head_shown
from experiments.metrics import REPORT_KEYS, is_species_figure, species_rates
from experiments.metrics import worst_species as worst_of

PARAMS = ("params_total", "params_head")
TRAINABLE = "params_trainable"  # logged by fine-tuned trials: the head and the layers trained
WORST = "worst_species"  # the species with the highest test APCER ("a/b" on a tie)
# ... and that APCER: with several settings its mean, which may be below test_apcer (the mean of
# each setting's worst species' APCER, whichever species that was)
WORST_RATE = "worst_species_apcer"
DEMO = ("synthetic", "random_weights")  # trial run tags, "true" on a demonstration
STD = "_std"
# Best first: the objective, then the EER, then the smaller model, then the earlier trial.
RANKING = ("dev_acer", "dev_eer", "params_total")
# a rate is a fraction of clip counts: compared as the nearest fraction of a denominator up to
# this, two trials' dev EER of 41/96 summed from other rates tie (they differed in the last bit,
# and the later, larger head ranked first: probe HH); rounding to decimals split k/1024
RATE_DENOMINATOR = 10**7


def ranked(name: str, value: float | None) -> float:
    """``value`` of the figure ``name`` as :data:`RANKING` compares it, and as every place that
    ranks or keeps a front reads it; a missing one (None, NaN) ranks last."""
    if value is None or not np.isfinite(value):
        return np.inf
    if name == "params_total":
        return float(value)
    return float(Fraction(float(value)).limit_denominator(RATE_DENOMINATOR))


def ranked_column(column: pd.Series) -> pd.Series:
    """A table's column (named as its figure) as :func:`ranked` reads each value."""
    return column.map(partial(ranked, str(column.name))) if column.name in RANKING else column


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """The figures to compare: the fixed ones, each species' APCER, then every ``_std``."""
    logged = [c.removeprefix("metrics.") for c in runs.columns if c.startswith("metrics.")]
    # a fine-tuned study's: the head's and the backbone layers trained (not in its comparison
    # files, though each run logged it: probe AA); a frozen trial's is its head's, not repeated
    none = pd.Series(np.nan, index=runs.index)
    tuned = runs.get(f"metrics.{TRAINABLE}", none)
    heads = runs.get("metrics.params_head", none)
    trained = [TRAINABLE] if (tuned.notna() & (tuned != heads)).any() else []
    figures = [*PARAMS, *trained, *REPORT_KEYS, *species_columns(logged)]
    spreads = [f"{name}{STD}" for name in figures if f"{name}{STD}" in logged]
    return figures + spreads + (["settings"] if "settings" in logged else [])


def species_columns(columns: Sequence[str]) -> list[str]:
    """The per-species APCER columns (``test_apcer_<species>``) among ``columns``, sorted."""
    return sorted(name for name in columns if is_species_figure(name))


def worst_species(table: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per row, the worst species by :func:`experiments.metrics.worst_species` ("print/replay"
    on a tie; "" when no attack was accepted or no species was logged), and its APCER."""
    names, rates = [], []
    for _, row in table.iterrows():
        found = species_rates(row.to_dict())
        tied = worst_of(found) if found and max(found.values()) > 0 else []
        names.append("/".join(tied))
        rates.append(found[tied[0]] if tied else (0.0 if found else np.nan))
    return pd.Series(names, table.index, dtype=object), pd.Series(rates, table.index, dtype=float)


IDENTITY = ("trial", "head", "family", "output", "baseline", "run_id")


def figure_columns(trials: pd.DataFrame) -> list[str]:
    """The figures of a :func:`trial_table`, in its order (every column but who the trial is,
    its worst species and the demonstration flags)."""
    return [c for c in trials.columns if c not in (*IDENTITY, WORST, WORST_RATE, *DEMO)]


def trial_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per finished trial run, best first (:data:`RANKING`): trial, head, family, output,
    baseline name, run id, every metric, the worst species and the demonstration flags."""
    done = runs[runs["status"] == "FINISHED"] if not runs.empty else runs
    metrics = metric_columns(runs)
    if done.empty:
        empty = pd.DataFrame(columns=[*IDENTITY, *metrics, WORST, WORST_RATE, *DEMO])
        empty.attrs.update(runs.attrs)
        return empty
    table = pd.DataFrame(
        {
            "trial": done["tags.optuna.trial_number"].astype(int),
            "head": [
                head_shown(head, tuned)
                for head, tuned in zip(done["params.head"], _fine_tune(done), strict=True)
            ],
            "family": done["params.family"],
            "output": done["params.output"],
            "baseline": done.get("tags.vggface_heads.baseline", pd.Series(index=done.index)),
            "run_id": done["run_id"],
        }
    )
    for metric in metrics:  # runs logged before a figure existed show it empty
        column = done.get(f"metrics.{metric}", pd.Series(np.nan, index=done.index))
        table[metric] = pd.to_numeric(column)
    table[WORST], table[WORST_RATE] = worst_species(table)
    for tag in DEMO:
        table[tag] = done.get(f"tags.{tag}", pd.Series(index=done.index)).eq("true")
    table = table.sort_values([*RANKING, "trial"], ignore_index=True, key=ranked_column)
    table.attrs.update(runs.attrs)  # when they were read (tracking.study_runs)
    for tag in ("evaluation", "protocol"):  # which figures a table heads with (console_table)
        values = done.get(f"tags.{tag}", pd.Series(dtype=object)).dropna()
        if len(values):
            table.attrs[tag] = str(values.iloc[0])
    return table


def _fine_tune(runs: pd.DataFrame) -> pd.Series:
    """Each run's ``fine_tune`` parameter, ``none`` for runs logged before it was."""
    return runs.get("params.fine_tune", pd.Series("none", index=runs.index)).fillna("none")


def ranking_key(figures: dict[str, float]) -> tuple[float, ...]:
    """A trial's place in :data:`RANKING` from its figures (a missing one ranks last)."""
    return tuple(ranked(name, figures.get(name)) for name in RANKING)


def family_bests(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison's rows of each family's best ("best lstm"; not "best lstm+fc", the best of
    one of the family's --fine-tune choices): what is registered and marked."""
    return table[table["group"].astype(str) == "best " + table["family"].astype(str)]
