"""The dashboards on a real sweep, rendered in a real browser.

A small sweep (three ``dense`` trials on the tiny set of ``test_sweep``) is tracked in SQLite;
``mlflow ui`` and ``optuna-dashboard`` serve its stores on free loopback ports, and headless
Chromium (Debian's ``chromium``; ``.ci/run`` installs it) opens the links the sweep prints. The
view state that :mod:`experiments.stores.dashboard` writes is MLflow's internal format: these
tests are what says when a new MLflow reads it differently.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: commands
on fd 3, answers on fd 4, NUL-separated JSON), so no client package is needed.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient

from core.features import FeatureOptions
from experiments.commands.study import run_sweep
from experiments.commands.sweep import SweepConfig
from experiments.stores import dashboard
from tests.servers import CHROMIUM_FLAGS, free_port, stop
from tests.test_sweep import FRAMES, write_tiny_set

CHROMIUM = Path("/usr/bin/chromium")
STUDY = "heads-demo"
FAMILY_BEST = "vggface_heads.family_best"  # the tag, spelled out: the view finds it
TRIALS = 3
PAGE_SECONDS = 90  # a page's data may come slowly while the 2 cores run other tests
SERVER_SECONDS = 180  # `mlflow ui` imports for ~15 s on 2 idle cores


class Chromium:
    """One headless Chromium page, driven over the DevTools protocol on a pipe."""

    def __init__(self, width: int = 1280, height: int = 800) -> None:
        if not CHROMIUM.exists():
            pytest.fail(f"{CHROMIUM} not found: apt-get install chromium (.ci/run does)")
        self.profile = tempfile.mkdtemp(prefix="vggface-chromium-")
        commands, self._commands = os.pipe()  # we write, Chromium reads on its fd 3
        self._answers, answers = os.pipe()  # Chromium writes on its fd 4, we read
        # Out of the way of 3 and 4 (`3<&4 4>&3` would clash); bash, unlike dash, takes fds > 9.
        commands, answers = _above_4(commands), _above_4(answers)
        command = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}"]
        command += ["--remote-debugging-pipe", f"--window-size={width},{height}", "about:blank"]
        self.process = subprocess.Popen(
            ["/bin/bash", "-c", f'exec "$@" 3<&{commands} 4>&{answers}', "bash", *command],
            pass_fds=(commands, answers),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(commands)
        os.close(answers)
        self._buffer, self._id, self.session = b"", 0, None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.call("Page.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, timeout: float = 30, **params) -> dict:
        """Send one command (to the page once attached) and return its result."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buffer:
                ready, _, _ = select.select([self._answers], [], [], deadline - time.monotonic())
                if not ready:
                    raise TimeoutError(f"chromium did not answer {method} within {timeout} s")
                chunk = os.read(self._answers, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium exited during {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._id:  # events (no id) are not needed here
                if "error" in answer:
                    raise RuntimeError(f"chromium {method}: {answer['error']}")
                return answer.get("result", {})

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str):
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        return result.get("result", {}).get("value")

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for(self, *needles: str, timeout: float = PAGE_SECONDS) -> str:
        """The page's text once it shows every needle; else fail, with a screenshot to look at."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            missing = [needle for needle in needles if needle not in text]
            if not missing:
                return text
            if time.monotonic() > deadline:
                shot = Path(tempfile.mkdtemp(prefix="vggface-page-")) / "page.png"
                self.screenshot(shot)
                url = self.evaluate("location.href")
                raise AssertionError(
                    f"{url} does not show {missing} after {timeout} s (screenshot {shot}); "
                    f"it shows: {text[:2000]!r}"
                )
            time.sleep(0.25)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
            self.process.wait(10)
        except (OSError, RuntimeError, TimeoutError, subprocess.TimeoutExpired):
            stop(self.process, signal.SIGKILL)
        os.close(self._commands)
        os.close(self._answers)
        shutil.rmtree(self.profile, ignore_errors=True)


def _above_4(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


def quiet_mlflow_ui(browser: Chromium, base: str) -> None:
    """Keep MLflow's assistant panel closed (it opens itself once on loopback): wider tables."""
    browser.open(base + "/")
    browser.evaluate(
        "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true')"
    )


class Server:
    """A command that serves HTTP on ``127.0.0.1:port``, in its own process group."""

    def __init__(self, command: list[str], port: int, cwd: Path, probe: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = cwd / f"server-{port}.log"
        self.probe = probe
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=log, cwd=cwd, start_new_session=True
            )

    def wait(self) -> str:
        deadline = time.monotonic() + SERVER_SECONDS
        while True:
            try:
                with urllib.request.urlopen(self.url + self.probe, timeout=2) as answer:
                    if answer.status == 200:
                        return self.url
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.url} did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.3)

    def terminate(self) -> None:
        """Ask it to stop, without waiting: servers stop side by side, ~2 s each."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)

    def close(self) -> None:
        stop(self.process, wait=5)


@pytest.fixture(scope="module")
def browser():
    page = Chromium(1920, 1080)  # wide: every column of the runs table is drawn
    try:
        yield page
    finally:
        page.close()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The sweep and its closing lines; ``mlflow ui`` and ``optuna-dashboard`` start on its
    stores meanwhile (2 cores: the servers import while the sweep extracts features)."""
    root = tmp_path_factory.mktemp("dashboard")
    write_tiny_set(root / "data")
    tracking_uri = f"sqlite:///{root}/mlflow.db"
    storage = f"sqlite:///{root}/optuna.db"
    with pytest.MonkeyPatch.context() as patch:
        # MLflow fixes a store's default artifact root (./mlruns) when it first opens it: here
        patch.chdir(root)
        MlflowClient(tracking_uri).search_experiments()  # the tables, before two processes do
    optuna.storages.RDBStorage(storage)
    servers = [mlflow_ui(tracking_uri, root), optuna_dashboard(storage, root)]
    try:
        config = SweepConfig(
            features=FeatureOptions(
                data=root / "data",
                cache_dir=root / "cache",
                frames=FRAMES,
                face_crop=False,
                progress=False,
            ),
            storage=storage,
            tracking_uri=tracking_uri,
            study=STUDY,
            trials=TRIALS,
            heads="dense*",
            jit_compile=False,  # XLA's compilation costs more than three tiny trials
        )
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(root)  # artifacts under ./mlruns, as for a user
            result = run_sweep(config, pruner=optuna.pruners.NopPruner())
        lines = dashboard.closing_lines(result.experiment_id, STUDY)
        experiment = MlflowClient(tracking_uri).get_experiment(result.experiment_id)
        assert experiment.artifact_location == str(root / "mlruns" / result.experiment_id)
        yield SimpleNamespace(
            result=result,
            lines=lines,
            tracking_uri=tracking_uri,
            ui_url=servers[0].wait(),
            dashboard_url=servers[1].wait(),
        )
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.close()


def mlflow_ui(tracking_uri: str, root: Path) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    return Server(command, port, root, "/health")


def optuna_dashboard(storage: str, root: Path) -> Server:
    scripts = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    found = shutil.which("optuna-dashboard", path=scripts)
    if found is None:
        pytest.fail("optuna-dashboard not installed: pip install -e '.[test]' (or '.[dashboard]')")
    port = free_port()
    return Server([found, storage, "--host", "127.0.0.1", "--port", str(port)], port, root, "/")


def on_test_server(url: str, server: str) -> str:
    """A link the sweep printed for ``mlflow ui``'s default port, on the test's port."""
    assert url.startswith("http://127.0.0.1:5000/#/"), url
    return server + url.removeprefix("http://127.0.0.1:5000")


def printed_url(lines: list[str], label: str) -> str:
    (line,) = [line for line in lines if line.lstrip().startswith(label)]
    return line.split()[-1]


def trial_runs(study) -> list[dict]:
    """The trial runs as the REST API lists them."""
    body = json.dumps(
        {
            "experiment_ids": [study.result.experiment_id],
            "filter": "tags.`vggface_heads.role` = 'trial'",
            "max_results": 1000,
        }
    ).encode()
    request = urllib.request.Request(
        study.ui_url + "/api/2.0/mlflow/runs/search",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["runs"]


def run_name(run: dict) -> str:
    return run["info"]["run_name"]


def metric(run: dict, key: str) -> float:
    return {m["key"]: m["value"] for m in run["data"]["metrics"]}[key]


def test_closing_lines_start_the_ui_on_loopback_and_link_both_views(study):
    command = re.search(r"`([^`]+)`", study.lines[0]).group(1)
    assert command.split() == [  # telemetry off, as in the project's commands (probe Y)
        *("MLFLOW_DISABLE_TELEMETRY=true", "mlflow", "ui", "--backend-store-uri"),
        study.tracking_uri,
        *("--host", "127.0.0.1", "--port", "5000"),
    ]
    runs = printed_url(study.lines, "runs,")
    assert runs == dashboard.runs_url(study.result.experiment_id)
    assert "viewStateShareKey=compare-heads" in runs and "workflowType=machine_learning" in runs
    charts = printed_url(study.lines, "charts")
    assert charts == dashboard.runs_url(study.result.experiment_id, "complete-trials", charts=True)
    compare = urllib.parse.urlsplit(printed_url(study.lines, "compare"))
    query = dict(urllib.parse.parse_qsl(compare.fragment.split("?", 1)[1]))
    finished = MlflowClient().search_runs(
        [study.result.experiment_id],
        "tags.`vggface_heads.role` = 'trial' and attributes.status = 'FINISHED'",
    )
    assert sorted(json.loads(query["runs"])) == sorted(run.info.run_id for run in finished)
    assert json.loads(query["experiments"]) == [study.result.experiment_id]
    family = f"its menu '{dashboard.VIEW_NAME}' (top right) > '{dashboard.FAMILY_VIEW}' lists"
    assert any(family in line for line in study.lines)


def test_view_state_is_a_saved_view_of_every_parent_of_the_study(study):
    experiment = MlflowClient().get_experiment(study.result.experiment_id)
    envelope = json.loads(experiment.tags["mlflow.sharedViewState.compare-heads"])
    assert envelope["name"] == "Compare heads" and envelope["updatedAt"] >= envelope["createdAt"]
    tag, client = "mlflow.sharedViewState.compare-heads", MlflowClient()
    time.sleep(0.01)  # a later millisecond
    dashboard.share_view_state(study.result.experiment_id, study.result.study.study_name)
    unchanged = client.get_experiment(study.result.experiment_id).tags[tag]
    assert json.loads(unchanged) == envelope  # the same view: not written again
    stale = dict(envelope, state=json.dumps({"runsExpanded": {}}))  # an older view of the study
    client.set_experiment_tag(study.result.experiment_id, tag, json.dumps(stale))
    dashboard.share_view_state(study.result.experiment_id, study.result.study.study_name)
    again = json.loads(client.get_experiment(study.result.experiment_id).tags[tag])
    assert again["createdAt"] == envelope["createdAt"]  # one view, updated: not a new one
    assert again["updatedAt"] > envelope["updatedAt"] and again["state"] == envelope["state"]
    state = json.loads(envelope["state"])
    assert state["runsExpanded"] == {study.result.parent_run_id: True}
    assert state["orderByKey"] == "metrics.`dev_acer`" and state["orderByAsc"] is True


def test_rest_api_lists_one_run_per_trial_with_the_sweeps_metrics(study):
    runs = trial_runs(study)
    trials = study.result.study.get_trials()
    assert len(runs) == len(trials) == TRIALS
    by_number = {
        int({t["key"]: t["value"] for t in run["data"]["tags"]}["optuna.trial_number"]): run
        for run in runs
    }
    assert sorted(by_number) == [trial.number for trial in trials]
    for trial in trials:
        run = by_number[trial.number]
        names = {m["key"] for m in run["data"]["metrics"]}
        assert set(dashboard.METRICS) | {"test_apcer", "test_bpcer", "dev_eer"} <= names
        assert metric(run, "dev_acer") == pytest.approx(trial.value)
        assert run_name(run) == f"{trial.number}-{trial.user_attrs['head']}"


def test_printed_runs_view_shows_every_trial_best_first_with_its_columns(study, browser):
    quiet_mlflow_ui(browser, study.ui_url)
    runs = trial_runs(study)
    browser.open(on_test_server(printed_url(study.lines, "runs,"), study.ui_url))
    headers = ["head", "output", *dashboard.METRICS]
    text = browser.wait_for(*(run_name(run) for run in runs), *headers, "Compare heads")
    assert "Error loading shared view state" not in text
    # sorted by dev ACER: the names come in that order, each trial a row of its own
    dev_acer = {run_name(run): metric(run, "dev_acer") for run in runs}
    shown = sorted(dev_acer, key=text.index)
    assert [dev_acer[name] for name in shown] == sorted(dev_acer.values())
    lines = text.splitlines()
    for header in headers:  # column headers, each a cell of its own
        assert header in lines, header


def test_printed_chart_view_plots_acer_against_parameters(study, browser):
    """The charts' legends named the parent and pruned runs, which have no point, beside the
    plotted trials' colours (probe Z): the charts' view lists the complete trials only."""
    client = MlflowClient()
    tags = {"vggface_heads.role": "trial", "optuna.study_name": STUDY}
    pruned = client.create_run(study.result.experiment_id, tags=tags, run_name="9-pruned")
    client.log_metric(pruned.info.run_id, "params_total", 134_000_000)
    client.set_terminated(pruned.info.run_id, "KILLED")
    try:
        quiet_mlflow_ui(browser, study.ui_url)
        browser.open(on_test_server(printed_url(study.lines, "charts"), study.ui_url))
        text = browser.wait_for("Comparing heads", "params_total", "learning_rate", "dropout")
        assert re.search(r"Comparing heads\s*\(3\)", text), text[:2000]
        for axis in ("dev_acer", "test_acer", "head", "output"):
            assert axis in text.splitlines(), axis
        # two scatter plots, one point per trial each
        points = "document.querySelectorAll('.scatterlayer path.point').length"
        deadline = time.monotonic() + PAGE_SECONDS
        while browser.evaluate(points) < 2 * TRIALS and time.monotonic() < deadline:
            time.sleep(0.25)
        assert browser.evaluate(points) == 2 * TRIALS
        text = browser.evaluate("document.body.innerText")
        assert f"{TRIALS} matching runs" in text and "9-pruned" not in text, text[:3000]
        assert "study " not in text.split("params_total vs. dev_acer")[1], text[:3000]
    finally:
        client.delete_run(pruned.info.run_id)  # the module's other tests count the trials


def test_family_view_lists_each_familys_best_trial_with_its_own_figures(study, browser):
    """The view grouped the trials by family, each group's row showing every column's minimum
    over the family: a test ACER no trial chosen on dev had. It lists the family's best trial,
    the lowest dev ACER (the study has one family, dense), and only it."""
    runs = trial_runs(study)
    tags = [{tag["key"]: tag["value"] for tag in run["data"].get("tags", [])} for run in runs]
    marked = [run for run, tag in zip(runs, tags, strict=True) if tag.get(FAMILY_BEST) == "true"]
    assert len(marked) == 1 and len(runs) == TRIALS
    assert metric(marked[0], "dev_acer") == min(metric(run, "dev_acer") for run in runs)
    quiet_mlflow_ui(browser, study.ui_url)
    url = dashboard.runs_url(study.result.experiment_id, dashboard.FAMILY_KEY)
    browser.open(on_test_server(url, study.ui_url))
    text = browser.wait_for(dashboard.FAMILY_VIEW, run_name(marked[0]))
    others = [run_name(run) for run in runs if run is not marked[0]]
    assert not [name for name in others if name in text], text[:2000]
    assert "(min)" not in text  # no group row of minima


def test_report_link_opens_the_sweeps_report(study, browser):
    quiet_mlflow_ui(browser, study.ui_url)
    result = study.result
    url = dashboard.report_url(result.experiment_id, result.parent_run_id)
    browser.open(on_test_server(url, study.ui_url))
    browser.wait_for("report.html", "Path:", "Artifacts")
    # the report, in a sandboxed frame: its own page, not an error page (a frame was enough)
    shown = (  # what the frame shows: its srcdoc, else what its src serves
        "(async () => { const f = document.querySelector('iframe'); if (!f) return '';"
        " if (f.srcdoc) return f.srcdoc; if (!f.src) return 'no src: ' + f.outerHTML;"
        " return await (await fetch(f.src)).text(); })()"
    )
    deadline = time.monotonic() + PAGE_SECONDS
    while STUDY not in (page := browser.evaluate(shown) or "") and time.monotonic() < deadline:
        time.sleep(0.25)
    assert STUDY in page and "dev ACER" in page, page[:2000]


def test_printed_compare_page_shows_the_finished_trials(study, browser):
    quiet_mlflow_ui(browser, study.ui_url)
    runs = trial_runs(study)
    browser.open(on_test_server(printed_url(study.lines, "compare"), study.ui_url))
    browser.wait_for(
        f"Comparing {len(runs)} Runs", "Parallel Coordinates Plot", *(run_name(r) for r in runs)
    )


def test_optuna_dashboard_lists_the_study(study, browser):
    with urllib.request.urlopen(study.dashboard_url + "/api/studies", timeout=30) as answer:
        summaries = json.load(answer)["study_summaries"]
    assert [summary["study_name"] for summary in summaries] == [STUDY]
    browser.open(study.dashboard_url + "/dashboard")
    browser.wait_for(STUDY, "MINIMIZE")


def test_links_follow_a_tracking_server():
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri("http://127.0.0.1:5999/")
    try:
        assert dashboard.ui_address() == ("http://127.0.0.1:5999", None)
        assert dashboard.runs_url("7", charts=True) == (
            "http://127.0.0.1:5999/#/experiments/7/runs?viewStateShareKey=compare-heads"
            "&workflowType=machine_learning&compareRunsMode=CHART"
        )
        assert dashboard.compare_url("7", ["a1", "b2"]) == (
            "http://127.0.0.1:5999/#/compare-runs?runs=[%22a1%22,%22b2%22]&experiments=[%227%22]"
            "&workflowType=machine_learning"
        )
        with pytest.raises(ValueError, match="view key 'a b'"):
            dashboard.runs_url("7", "a b")
    finally:
        mlflow.set_tracking_uri(previous)
