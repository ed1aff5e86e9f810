"""``experiments/`` is rooms with one job each, and the arrows between them go one way.

Read from the source (every import, at module level or inside a function): the rooms' allowed
imports, no module over 500 lines, and the light paths kept light (a table imports no
deep-learning backend; loading a registered model imports neither Optuna nor plotly).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
BOTTOM = {"experiments.config", "experiments.domains", "experiments.metrics"}
# room -> the rooms (and bottom modules) it may import; commands may import every room
ALLOWED = {
    "bottom": {"bottom"},
    "stores": {"stores", "bottom"},
    "trial": {"trial", "stores", "bottom"},
    "results": {"results", "stores", "bottom"},
    "serving": {"serving", "stores", "bottom"},
    "commands": {"commands", "trial", "stores", "results", "serving", "bottom"},
    "entry": {"commands", "serving"},  # experiments/sweep.py ...; scoring.py (old models)
}
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = path.relative_to(EXPERIMENTS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(name: str) -> str:
    if any(name == bottom or name.startswith(bottom + ".") for bottom in BOTTOM):
        return "bottom"
    parts = name.split(".")
    if len(parts) >= 3 or (len(parts) == 2 and (EXPERIMENTS / parts[1]).is_dir()):
        return parts[1]
    return "entry"


def imported(path: Path) -> set[str]:
    """Every ``experiments...`` module ``path`` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    known = {module_name(p) for p in EXPERIMENTS.rglob("*.py")}
    return {name for name in found if name in known and name != "experiments"}


MODULES = sorted(EXPERIMENTS.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_go_one_way_between_rooms(path: Path) -> None:
    own = room(module_name(path))
    wrong = sorted(name for name in imported(path) if room(name) not in ALLOWED[own])
    assert not wrong, f"{module_name(path)} ({own}) imports {wrong}"


def test_serving_and_results_never_import_training() -> None:
    for path in MODULES:
        if room(module_name(path)) in ("serving", "results"):
            assert not {n for n in imported(path) if n.startswith("experiments.trial")}, path


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_module_is_over_500_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES


def imports_after(code: str) -> set[str]:
    """The heavy libraries a fresh interpreter has loaded after running ``code``."""
    heavy = ("keras", "tensorflow", "jax", "optuna", "plotly", "mlflow")
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_a_table_imports_no_backend_and_flags_import_nothing_heavy() -> None:
    # nothing heavy before main: a Ctrl-C in MLflow's import is main's one line, not a traceback;
    # and a refused flag is refused before MLflow is imported
    assert imports_after("import experiments.commands.compare") == set()
    refused = "from experiments.commands import compare\ntry: compare.main(['--list', '--all'])\n"
    assert imports_after(refused + "except SystemExit: pass") == set()
    parse = "from experiments.commands import sweep, predict, extract; sweep.parse_args([])"
    assert imports_after(parse) == set()  # arguments are checked before any heavy import
