"""What the sweep prints: which study, one line per trial, the study's progress, and at the end
the comparison table and the verdict.

Every line fits a 100-column terminal. Error rates are percentages, as papers print them; the
full figures are in MLflow and the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from core.words import counted
from core.words import percent as percent_text
from experiments.metrics import species_rates
from experiments.metrics import worst_species as worst_of
from experiments.results.tables import (
    best_clauses,
    best_per_family,
    demo_banner,
    format_value,
    front,
    front_items,
    missed_species,
    worst_cell,
)
from experiments.stores import retries
from experiments.stores.runs_table import RANKING, STD, ranked


def percent(rate: float) -> str:
    """An error rate as papers print it: ``4.2%`` (rounded half up: :func:`core.words.percent`)."""
    return f"{percent_text(rate)}%"


def millions(count: float) -> str:
    """A parameter count in a few characters: ``8.39M``, ``134.8M``, ``61.5k``."""
    if count >= 1e8:
        return f"{count / 1e6:.1f}M"
    if count >= 1e6:
        return f"{count / 1e6:.2f}M"
    return f"{count / 1e3:.1f}k"


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def study_line(
    name: str,
    done: int,
    target: int,
    joined: int,
    baselines: int,
    running: int = 0,
    starting: bool = False,
) -> str:
    """Says at start whether this is a new study, one other workers are running (``running``
    trials; ``starting``: none done, and the worker that made it not known gone, so it may still be
    loading; another machine's worker never is known gone) or one resumed, and how far it is."""
    if done == 0 and joined == 0:
        heads = "the write-up head" if baselines == 1 else f"the {baselines} write-up heads"
        first = f", {heads} first" if baselines else ""
        if baselines > target:  # fewer trials than baselines: only the first ones run
            first = f", {'the first' if target == 1 else f'the first {target}'} of {heads}"
        trials = "1 trial" if target == 1 else f"{target} trials"
        return f"new study {name}: {trials}{first}"
    if done > target:  # a rerun that asks for fewer than the study has
        return f"study {name}: {done} trials done, --trials {target}: nothing left to run"
    if done == target:
        return f"study {name}: {done} of {target} trials done, nothing left to run"
    if running or starting:  # another worker's: running trials, or made a moment ago
        now = f"{running} running" if running else "none running yet"
        return f"joining study {name} (worker {joined + 1}): {now}, {done} of {target} done"
    return f"resuming study {name}: {done} of {target} trials done"


def evaluation_line(context: dict[str, str]) -> str | None:
    """What the trial lines' dev and test figures are on, for a study tested on other data than
    it trained on (from its runs' tags); None for one database's own splits."""
    clips = context.get("test_clips", "?")
    if context.get("evaluation") == "cross-domain":
        from experiments.domains import ALL_BUT_DEV, whole_said, with_protocol

        whole = context.get("source_clips") == "all"  # every clip: said once, not by protocol

        def named(db: str) -> str:
            protocol = context.get(f"protocol_{db}")
            return with_protocol(db, whole_said(protocol) if whole else protocol)

        sources = ", ".join(map(named, context["sources"].split(",")))
        which = {"all": "every clip", ALL_BUT_DEV: "every clip but its own dev set"}.get(
            context.get("target_clips", ""), "its test split"
        )
        target = context["target"]
        protocol = whole_said(context.get(f"protocol_{target}"))
        trained = "every clip but dev" if whole else "train splits"
        # how many: the data summaries' splits did not say what a source trains on (probe DD)
        trained += f", {context['train_clips']} clips" if "train_clips" in context else ""
        dev = f"{context['dev_clips']} " if "dev_clips" in context else ""
        return (
            f"cross-domain {context['setting']}: heads train on {sources} ({trained}), dev "
            f"ACER and the threshold on their {dev}pooled dev clips; test figures on "
            f"{with_protocol(target, protocol)} ({which}, {clips} clips)"
        )
    if context.get("evaluation") == "cross-dataset":
        return (
            f"cross-dataset: dev ACER and the threshold on {context['data']}'s dev clips; test "
            f"figures on {context['test_data']} ({clips} test clips)"
        )
    return None


# "HTER" and "worst attack" were read as the dev set's (probe Z): both are the test set's. Each
# figure's column holds its widest with a spread, "50.0±12.5%", and a space; 100 columns in all.
TRIAL_HEADER = (
    f"{'trial':<6}{'head':<19}{'output':<7}{'head params':>11}{'dev ACER':>11}{'test ACER':>11}"
    f"{'test HTER':>11} {'worst test attack':<17}{'time':>6}"
)
WORST = 16  # the worst attack's, at most: a space before the time, in a column of 17


def _seconds(seconds: float) -> str:
    """A trial's time in the time column's 6 characters: ``123.4s``, ``16m40s`` from 1000 s."""
    return f"{seconds:>5.1f}s" if seconds < 999.95 else f"{duration(seconds):>6}"


def trial_line(number: int, config: Any, outcome: dict | str, seconds: float) -> None:
    """One line per trial under :data:`TRIAL_HEADER`: head, output, head parameters (the whole
    model adds the backbone's 134.26M to fc7), dev ACER, test ACER and HTER (± std over folds or
    repeats), the attack species whose test APCER is highest, seconds."""
    head = f"#{number:<5}{config.shown:<19}{config.output:<8}"  # convlstm2049+conv5: 18
    if isinstance(outcome, dict):
        m = outcome
        dev, test, hter = (spread(m, key) for key in ("dev_acer", "test_acer", "test_hter"))
        rates = species_rates(m)
        tied = worst_of(rates)
        top = rates[tied[0]] if tied else 0.0
        missed = f"{'/'.join(tied)} {percent(top)}" if top > 0 else "none"
        if len(missed) > WORST:  # a tie of three species pushed the time out of line (probe AA)
            rate = percent(top)
            name = tied[0][: WORST - len(rate) - 2] + "…"  # one long name: cut, not dropped
            missed = f"{len(tied)} species {rate}" if len(tied) > 1 else f"{name} {rate}"
        line = (
            f"{head}{millions(m['params_head']):>10}{dev:>11}{test:>11}{hter:>11} "
            f"{missed:<{WORST + 1}}{_seconds(seconds)}"
        )
    else:  # "pruned", "failed: ...": the time in its column where the outcome leaves room
        room = len(TRIAL_HEADER) - len(head) - 7  # and a space: a long failure's ran into it
        line = f"{head}{outcome:<{room}} {_seconds(seconds)}"
    print(line, flush=True)


def spread(metrics: dict, key: str) -> str:
    """``12.3%``, or ``12.3±4.5%`` (mean ± std over folds or repeats) when ``key_std`` is there."""
    if f"{key}_std" in metrics:
        return f"{percent_text(metrics[key])}±{percent(metrics[f'{key}_std'])}"
    return percent(metrics[key])


class Progress:
    """Optuna callback: after each trial, ``[n/N] best dev ACER ... elapsed ... ETA ...``."""

    def __init__(
        self, target: int, study_name: str, setup: Callable[[], float] = lambda: 0.0
    ) -> None:
        """``setup``: seconds spent so far on one-off work the ETA leaves out (a fine-tuned
        trial's frozen bottom, computed once)."""
        self.target, self.study_name, self.setup = target, study_name, setup
        self.started = time.monotonic()
        self.ran = 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.ran += 1
        trials = study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state.is_finished()]
        done = min(retries.finished_count(trials), self.target)  # as the workers count
        elapsed = time.monotonic() - self.started
        left = max(0, self.target - done)
        per_trial = max(0.0, elapsed - self.setup()) / self.ran
        eta = f"ETA {duration(per_trial * left)}" if left else "done"
        complete = [t for t in finished if t.state == TrialState.COMPLETE and t.values]
        if complete:
            best = min(complete, key=_ranked)
            head = best.user_attrs.get("head", "?")
            best_text = f"best dev ACER {percent(best.values[0])} (#{best.number} {head})"
        else:
            best_text = "no finished trial yet"
        print(f"[{done}/{self.target}] {best_text}, {duration(elapsed)} so far, {eta}", flush=True)


def _ranked(trial: FrozenTrial) -> tuple[float, ...]:
    """A finished trial's place as the comparison ranks it (:data:`RANKING`, then its number):
    the progress line names the trial the closing will."""
    later = (ranked(name, trial.user_attrs.get(name)) for name in RANKING[1:])
    return (ranked(RANKING[0], trial.values[0]), *later, trial.number)


# --------------------------------------------------------------------------- the comparison

CONSOLE_WIDTH = 100
_CONSOLE_RATES = (  # (figure, the header's two lines): which split a figure is of, above it
    ("dev_acer", ("dev", "ACER")),
    ("test_apcer", ("test", "APCER")),
    ("test_bpcer", ("test", "BPCER")),
    ("test_acer", ("test", "ACER")),
    ("test_hter", ("test", "HTER")),
)


def _console_rate(table: pd.DataFrame, row: pd.Series, column: str, spread: bool) -> str:
    value, std = row[column], row.get(f"{column}{STD}") if spread else None
    if pd.isna(value):
        return ""
    text = percent_text(value)
    return f"{text}±{percent(std)}" if std is not None and pd.notna(std) else f"{text}%"


def _render(table: pd.DataFrame, output: bool, spreads: tuple[str, ...]) -> list[str]:
    """The console table's lines: a header of two lines (what a column is of above its name:
    ``dev`` or ``test`` above a rate), then a row per line; text columns left, numbers right, two
    spaces apart."""
    columns: list[tuple[tuple[str, str], list[str], bool]] = [
        (("", ""), [_short_group(g) for g in table["group"]], False),
        (("", "head"), [str(h) for h in table["head"]], False),
    ]
    if output:
        columns.append((("", "output"), [str(o) for o in table["output"]], False))
    params = [format_value("params_head", v) for v in table["params_head"]]
    columns.append((("head", "params"), params, True))
    for column, names in _CONSOLE_RATES:
        cells = [_console_rate(table, r, column, column in spreads) for _, r in table.iterrows()]
        columns.append((names, cells, True))
    columns.append(
        (("", "worst"), [worst_cell(row, short=True) for _, row in table.iterrows()], False)
    )
    widths = [max([*map(len, names), *map(len, cells)]) for names, cells, _ in columns]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, (_, _, right) in zip(cells, widths, columns, strict=True)
        ]
        return "  ".join(padded).rstrip()

    lines = [line([names[at] for names, _, _ in columns]) for at in (0, 1)]
    lines += [line([cells[i] for _, cells, _ in columns]) for i in range(len(table))]
    return lines


def _short_group(group: str) -> str:
    """ "best conv" stays; "write-up conv4096" becomes "write-up" (the head column names it)."""
    return "write-up" if str(group).startswith("write-up ") else str(group)


def console_table(table: pd.DataFrame, width: int = CONSOLE_WIDTH) -> str:
    """The comparison for a terminal: every line at most ``width`` characters.

    One row per family's best (and each searched --fine-tune choice's) and per write-up
    baseline: head, output, head params, dev ACER, test APCER/BPCER/ACER/HTER in % and the worst
    species; ``dev`` or ``test`` above each rate's
    name (a test ACER headed ``ACER`` beside the dev one read as another dev figure). The run
    ids are in the report and in MLflow. To fit, the output column goes first, then (with folds or
    repeats) the std columns but the ACERs' and HTER's (OULU-NPU's: the ACERs', APCER's and
    BPCER's, the figures its papers print; HTER's had been kept over them: probe), then those,
    then the ACERs' (the title says so); a cell that still does not fit is cut.
    """
    if table.empty:
        return "no finished trial: nothing to compare"
    acers = ("dev_acer", "test_acer")
    headline = (*acers, "test_hter")  # HTER: what cross-domain papers head their tables with
    evaluation = table.attrs.get("evaluation", "intra-dataset")
    if evaluation == "intra-dataset" and str(table.attrs.get("protocol")).startswith("oulu"):
        headline = (*acers, "test_apcer", "test_bpcer")  # OULU-NPU's tables: APCER, BPCER, ACER
    every = tuple(c for c, _ in _CONSOLE_RATES)
    layouts = [(True, every), (False, every), (False, headline), (False, acers), (False, ())]
    for output, spreads in layouts:
        spreads = tuple(c for c in spreads if f"{c}{STD}" in table.columns)
        lines = _render(table, output, spreads)
        if max(map(len, lines)) <= width:
            break
    # with repeats or folds APCER is each setting's worst averaged, above the worst species'
    spread = any(f"{c}{STD}" in table.columns for c in every)  # own mean: said (probe)
    worst = "highest mean APCER" if spread else "highest-APCER species"
    titles = [f"rates in %, test at the dev EER threshold; worst: {worst}"]
    if [c for c in every if f"{c}{STD}" in table.columns and c not in spreads]:
        titles.append("other ± std in the report" if spreads else "± std in the report")
    # what was dropped to fit is said whole, on a line of its own if need be
    title = "; ".join(titles)
    lines = [*([title] if len(title) <= width else titles), *lines]
    return "\n".join(text if len(text) <= width else text[: width - 1] + "…" for text in lines)


def verdict(table: pd.DataFrame, study: optuna.Study, report_uri: str | None) -> list[str]:
    """The sweep's closing lines: the best head by dev ACER (head params, dev and test ACER, test
    HTER), the Pareto front of dev ACER vs parameters, where the HTML report is, and the
    demonstration warning when the trials ran on synthetic data or a random backbone."""
    best = best_per_family(table) if not table.empty else table
    if best.empty:
        return ["no finished trial: nothing to compare"]
    clauses = best_clauses(best)  # each kept whole when a line is wrapped
    trials = _study_trials(study)
    untracked = []
    if "trials" in table.attrs:  # the tables' trials: a run deleted in MLflow is not ranked
        read_at = table.attrs.get("read_at")  # not another worker's trial, ended since
        before = trials if read_at is None else trials[trials["complete"] < read_at]
        untracked = sorted(set(before["trial"]) - set(table.attrs["trials"]))
        trials = trials[~trials["trial"].isin(untracked)]
    if trials["params_total"].isna().all():  # a study whose trials carry no sizes: the table's
        trials = best[["trial", "head", "params_total", "dev_acer"]]
    items = front_items(front(trials))
    items = [f"{item};" for item in items[:-1]] + items[-1:]
    lines = [_wrap(clauses), _wrap(["Pareto front (dev ACER vs parameters):", *items])]
    lines += [[line] for line in missed_species(table)]
    if untracked:
        numbers = ", ".join(f"#{n}" for n in untracked)
        lines.append(
            _wrap(
                [
                    f"left out: {counted(len(untracked), 'complete trial')} of the study",
                    f"({numbers}) without a finished run in this tracking store",
                    "(deleted, or tracked in another store)",
                ]
            )
        )
    if report_uri:
        lines.append([f"report: {report_uri}"])  # a path or URL stays whole, to be copied
    banner = demo_banner(table)
    if banner:
        lines.append([banner])
    return [line for wrapped in lines for line in wrapped]


def _wrap(clauses: Sequence[str], width: int = CONSOLE_WIDTH) -> list[str]:
    """``clauses`` joined by spaces into lines of at most ``width`` characters (a clause longer
    than that has a line of its own), continuation lines indented."""
    lines: list[str] = []
    for clause in clauses:
        if lines and len(lines[-1]) + 1 + len(clause) <= width:
            lines[-1] += " " + clause
        else:
            lines.append(clause if not lines else "  " + clause)
    return lines


def _study_trials(study: optuna.Study) -> pd.DataFrame:
    """The study's complete trials: number, head, params_total, dev ACER (first objective) and
    when it completed."""
    rows = [
        {
            "trial": t.number,
            "head": t.user_attrs.get("head", t.params.get("head", "?")),
            "params_total": t.user_attrs.get("params_total", np.nan),
            "dev_acer": t.values[0],
            "complete": t.datetime_complete,
        }
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.values
    ]
    return pd.DataFrame(rows, columns=["trial", "head", "params_total", "dev_acer", "complete"])
