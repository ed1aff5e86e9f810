"""Take the README's screenshots of the dashboards again, on a real sweep.

    python docs/screenshots.py [--workdir DIR] [--no-sweep] [-- SWEEP ARGUMENTS]

Runs ``python experiments/sweep.py`` (the default demo, or the arguments after ``--``) in DIR
(default: a new temporary folder, which then holds its ``optuna.db`` and ``mlflow.db``), starts
``mlflow ui`` and ``optuna-dashboard`` on those stores on free loopback ports, and photographs
them with headless Chromium (``/usr/bin/chromium``) at 1280x800 into ``docs/*.png``.
``--no-sweep`` photographs the newest study already in DIR. Needs the ``[test]`` extra (it
drives Chromium with ``tests/test_dashboard.py``'s helper).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mlflow  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from experiments.stores import dashboard, tracking  # noqa: E402

if TYPE_CHECKING:  # the helpers import the test suite, TensorFlow with it: not for --help
    from tests.test_dashboard import Chromium

DOCS = ROOT / "docs"
SIZE = (1280, 800)
SETTLE = 2.0  # seconds for charts to finish drawing once their data is on the page


def newest_study(tracking_uri: str) -> tuple[str, str, str]:
    """(experiment id, study name, parent run id) of the sweep that started last."""
    parents = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.`{tracking.ROLE_TAG}` = 'study'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if parents.empty:
        raise SystemExit(f"no sweep in {tracking_uri}: run it first (drop --no-sweep)")
    row = parents.iloc[0]
    return row["experiment_id"], row[f"tags.{tracking.STUDY_TAG}"], row["run_id"]


def on(url: str, server: str) -> str:
    """A link for `mlflow ui`'s default port, on the port started here."""
    return server + url.removeprefix(f"http://{dashboard.LOCAL_HOST}:{dashboard.LOCAL_PORT}")


def click(browser: Chromium, x: float, y: float) -> None:
    for kind in ("mousePressed", "mouseReleased"):
        browser.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


def box(browser: Chromium, selector_js: str) -> dict:
    found = browser.evaluate(f"JSON.stringify(({selector_js})?.getBoundingClientRect() ?? null)")
    if found in (None, "null"):
        raise RuntimeError(f"not on the page: {selector_js}")
    return json.loads(found)


def click_on(browser: Chromium, selector_js: str) -> None:
    where = box(browser, selector_js)
    click(browser, where["x"] + min(8, where["width"] / 2), where["y"] + where["height"] / 2)
    time.sleep(0.4)


def choose(browser: Chromium, select_index: int, values: list[str]) -> None:
    """Pick ``values`` by their exact names in the compare page's ``select_index``-th select."""
    field = f"document.querySelectorAll('input[role=combobox]')[{select_index}]"
    for value in values:
        click_on(browser, field)
        browser.call("Input.insertText", text=value)
        time.sleep(0.5)
        click_on(
            browser,
            "[...document.querySelectorAll('[class*=select-item-option]')]"
            f".find(e => e.getAttribute('title') === {json.dumps(value)})",
        )
    for kind in ("keyDown", "keyUp"):  # closes the list, which covers the next select
        escape = {"key": "Escape", "code": "Escape", "windowsVirtualKeyCode": 27}
        browser.call("Input.dispatchKeyEvent", type=kind, **escape)
    time.sleep(0.4)


def wait_until(browser: Chromium, condition_js: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not browser.evaluate(condition_js):
        if time.monotonic() > deadline:
            raise RuntimeError(f"still false after {timeout} s: {condition_js}")
        time.sleep(0.25)


def shoot(browser: Chromium, name: str) -> None:
    browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=SIZE[0] - 5, y=SIZE[1] - 5)
    time.sleep(SETTLE)
    path = browser.screenshot(DOCS / name)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB")


def mlflow_pages(browser: Chromium, ui: str, experiment_id: str, study: str, parent: str) -> None:
    from tests.test_dashboard import quiet_mlflow_ui

    lines = dashboard.closing_lines(experiment_id, study)  # the views, as the sweep shares them
    print("\n".join(lines))
    finished = dashboard.finished_trial_runs(experiment_id, study)
    quiet_mlflow_ui(browser, ui)
    browser.open(on(dashboard.runs_url(experiment_id), ui))
    browser.wait_for("Compare heads", "test_hter")
    click_on(browser, "document.querySelector('button[aria-label=\"Toggle sidebar\"]')")
    shoot(browser, "mlflow-runs.png")

    browser.open(on(dashboard.runs_url(experiment_id, dashboard.CHARTS_KEY, charts=True), ui))
    browser.wait_for("Comparing heads", "params_total", "test_acer")
    points = len(finished) * 2  # two scatter plots
    wait_until(browser, f"document.querySelectorAll('.scatterlayer path.point').length >= {points}")
    shoot(browser, "mlflow-charts.png")

    browser.open(on(dashboard.runs_url(experiment_id, dashboard.FAMILY_KEY), ui))
    browser.wait_for(dashboard.FAMILY_VIEW, "test_hter")
    shoot(browser, "mlflow-grouped.png")

    compare = dashboard.compare_url(experiment_id, finished) + "&workflowType=machine_learning"
    browser.open(on(compare, ui))
    browser.wait_for(f"Comparing {len(finished)} Runs", "Clear All")
    click_on(
        browser,
        "[...document.querySelectorAll('button')].find(e => e.innerText.trim() === 'Clear All')",
    )
    parameters, metrics = dashboard.PARALLEL
    choose(browser, 0, list(parameters))
    choose(browser, 1, list(metrics))
    wait_until(browser, "document.querySelectorAll('.parcoords .axis-title').length >= 6")
    shoot(browser, "mlflow-compare-parallel.png")

    browser.open(on(dashboard.report_url(experiment_id, parent), ui))
    browser.wait_for("report.html")
    # a sandboxed frame, closed to scripts: time for its plots to draw
    wait_until(browser, "document.querySelector('iframe') !== null")
    time.sleep(8)
    shoot(browser, "mlflow-report.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python docs/screenshots.py", description=__doc__)
    parser.add_argument("--workdir", type=Path, help="where the sweep runs (default: new temp)")
    parser.add_argument("--no-sweep", action="store_true", help="photograph DIR's newest study")
    parser.add_argument("sweep", nargs="*", help="arguments for experiments/sweep.py, after --")
    args = parser.parse_args(argv)
    from tests.test_dashboard import Chromium, mlflow_ui, optuna_dashboard

    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="vggface-screenshots-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    tracking_uri, storage = f"sqlite:///{workdir}/mlflow.db", f"sqlite:///{workdir}/optuna.db"
    if not args.no_sweep:
        command = [sys.executable, str(ROOT / "experiments" / "sweep.py"), *args.sweep]
        command += ["--storage", storage, "--tracking-uri", tracking_uri]
        print(f"in {workdir}: {' '.join(command)}")
        subprocess.run(command, cwd=workdir, check=True)
    mlflow.set_tracking_uri(tracking_uri)
    experiment_id, study, parent = newest_study(tracking_uri)
    MlflowClient().get_experiment(experiment_id)  # the store answers before servers start
    servers = [mlflow_ui(tracking_uri, workdir), optuna_dashboard(storage, workdir)]
    browser = Chromium(*SIZE)
    try:
        mlflow_pages(browser, servers[0].wait(), experiment_id, study, parent)
        board = servers[1].wait()
        browser.open(f"{board}/dashboard")
        browser.wait_for(study)
        studies = json.loads(browser.evaluate(f"fetch('{board}/api/studies').then(r => r.text())"))
        number = next(s["study_id"] for s in studies["study_summaries"] if s["study_name"] == study)
        browser.open(f"{board}/dashboard/studies/{number}")
        browser.wait_for("History", "Hyperparameter Importance")
        shoot(browser, "optuna-dashboard.png")
    finally:
        browser.close()
        for server in servers:
            server.terminate()
        for server in servers:
            server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
