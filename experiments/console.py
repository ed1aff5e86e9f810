"""What the sweep prints: which study, one line per trial, the study's progress.

Every line fits a 100-column terminal. Error rates are percentages, as papers print them; the
full figures are in MLflow and the report.
"""

from __future__ import annotations

import time
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from experiments import workers
from experiments.comparison import SPECIES_PREFIX, STD


def percent(rate: float) -> str:
    """An error rate as papers print it: ``4.2%``."""
    return f"{100 * rate:.1f}%"


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


def worst_species(metrics: dict[str, Any], split: str = "test") -> tuple[str, float] | None:
    """The attack species with the highest APCER of ``split`` (``test_apcer_<species>``)."""
    prefix = SPECIES_PREFIX.replace("test", split, 1)
    rates = {
        key.removeprefix(prefix): float(value)
        for key, value in metrics.items()
        if key.startswith(prefix) and not key.endswith((STD, "_ci_low", "_ci_high"))
    }
    if not rates:
        return None
    species = max(sorted(rates), key=lambda name: rates[name])
    return species, rates[species]


def study_line(name: str, done: int, target: int, joined: int, baselines: int) -> str:
    """Says at start whether this is a new study or which one is resumed, and how far it is."""
    if done == 0 and joined == 0:
        first = f", the {baselines} write-up heads first" if baselines else ""
        return f"new study {name}: {target} trials{first}"
    if done >= target:
        return f"study {name}: {done} of {target} trials done, nothing left to run"
    return f"resuming study {name}: {done} of {target} trials done"


TRIAL_HEADER = (
    f"{'trial':<6}{'head':<14}{'output':<8}{'head params':>11}{'dev ACER':>10}{'test ACER':>11}"
    f"{'HTER':>7}  {'worst attack':<16}{'time':>6}"
)


def trial_line(number: int, config: Any, outcome: dict | str, seconds: float) -> None:
    """One line per trial under :data:`TRIAL_HEADER`: head, output, head parameters (the whole
    model adds the backbone's 134.26M to fc7), dev ACER, test ACER and HTER, the attack species
    whose test APCER is highest, seconds."""
    head = f"#{number:<5}{config.head:<14}{config.output:<8}"
    if isinstance(outcome, dict):
        m = outcome
        test = percent(m["test_acer"])
        if "test_acer_std" in m:  # mean ± std over folds or repeats
            test = f"{100 * m['test_acer']:.1f}±{percent(m['test_acer_std'])}"
        worst = worst_species(m)
        missed = "none" if worst is None or worst[1] == 0 else f"{worst[0]} {percent(worst[1])}"
        line = (
            f"{head}{millions(m['params_head']):>11}{percent(m['dev_acer']):>10}"
            f"{test:>11}{percent(m['test_hter']):>7}  "
            f"{missed:<16}{seconds:>5.1f}s"
        )
    else:
        line = f"{head}{outcome:<57}{seconds:>5.1f}s"
    print(line, flush=True)


class Progress:
    """Optuna callback: after each trial, ``[n/N] best dev ACER ... elapsed ... ETA ...``."""

    def __init__(self, target: int, study_name: str) -> None:
        self.target, self.study_name = target, study_name
        self.started = time.monotonic()
        self.ran = 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.ran += 1
        trials = study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state.is_finished()]
        done = min(workers.finished_count(trials), self.target)  # as the workers count
        elapsed = time.monotonic() - self.started
        left = max(0, self.target - done)
        eta = f"ETA {duration(elapsed / self.ran * left)}" if left else "done"
        complete = [t for t in finished if t.state == TrialState.COMPLETE and t.values]
        if complete:
            best = min(complete, key=lambda t: (t.values[0], t.number))
            head = best.user_attrs.get("head", "?")
            best_text = f"best dev ACER {percent(best.values[0])} (#{best.number} {head})"
        else:
            best_text = "no finished trial yet"
        print(f"[{done}/{self.target}] {best_text}, {duration(elapsed)} so far, {eta}", flush=True)
