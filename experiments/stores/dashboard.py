"""Links that open MLflow's UI on the comparison of heads, in a fresh browser and without clicks.

MLflow 3 opens an experiment on a collapsed parent run, with no metric columns. The runs view
also reads a *shared view state*: with ``?viewStateShareKey=<key>`` in its URL it loads the
experiment tag ``mlflow.sharedViewState.<key>`` and applies it. :func:`share_view_state` writes
one that lists every trial, best dev ACER first, with the columns and charts that compare heads;
:func:`closing_lines` is what the sweep prints at its end.

The tag holds the UI's internal format, read from MLflow 3.17's bundle
(``mlflow/server/js/build/static/js``). ``tests/test_dashboard.py`` renders it in headless
Chromium and fails when a new MLflow changes it. What is relied on:

- The value: the envelope the UI's views menu saves, ``{"name", "createdAt", "updatedAt"
  (ms), "state": "<state as JSON text>"}``; the view is then listed by name in that menu. (Plain
  state JSON is read too.)
- From the state, the loader keeps the search facets ``orderByKey``, ``orderByAsc`` (and
  ``searchFilter``, ``startTime``, ``lifecycleFilter``, ``datasetsFilter``,
  ``modelVersionFilter``) and the UI keys ``selectedColumns``, ``columnOrder``,
  ``columnWidths``, ``runsHiddenMode``, ``compareRunCharts``, ``compareRunSections``,
  ``isAccordionReordered`` (and a few more); it drops ``runsExpanded``, ``runsPinned``,
  ``runsHidden``, ``runsVisibilityMap`` and ``autoRefreshEnabled``.
- The table nests child runs under their parent only when it is sorted by start time and not
  filtered. Sorted by ``metrics.`dev_acer```, every trial is a row of its own, best first, and the
  parents (which have no dev ACER) come last: that is what shows the trials in 3.17.
  ``runsExpanded`` (every parent of the study) is still written, for a UI that keeps it.
- Column keys ``attributes.`Run Name```, ``params.`head```, ``metrics.`dev_acer```; the grid's
  column ids, for ``columnOrder`` and ``columnWidths``, are the same keys plus
  ``runDateAndNestInfo`` (Created) and ``duration``.
- Chart cards ``{uuid, type, metricSectionId, isGenerated, deleted, runsCountToCompare}``:
  ``SCATTER`` with ``xaxis``/``yaxis`` = ``{key, type: "METRIC", dataAccessKey}``, ``PARALLEL``
  with ``selectedParams``, ``selectedMetrics`` and ``showAllRuns``. Sections ``{uuid, name,
  display (open), isReordered, deleted, isGenerated, columns, cardHeight}``. The UI adds a bar
  chart for each other metric to the section named "Model metrics", which starts folded here.
- ``runsHiddenMode: "SHOW_ALL"``: the charts plot every run, not the first ten.
- ``searchFilter``: MLflow's search syntax, as typed in the search box; the "Best of each head
  family" view finds the trial runs tagged ``vggface_heads.family_best``, the "Complete trials"
  view (the charts' link) the FINISHED trial runs: a scatter's legend names runs it has no point
  of (the parent, pruned trials) where they are listed. (A ``groupBy`` by
  family was used before: its group rows showed each column's minimum over the family, test
  figures included, which a test-chosen figure would be.)
- In the URL, ``workflowType=machine_learning`` selects the sidebar's "Model training" side
  (a fresh browser starts on "GenAI"), and ``compareRunsMode=CHART`` opens the chart view.
- The compare page is ``#/compare-runs?runs=<JSON list>&experiments=<JSON list>``, as the UI
  builds it; the browser percent-encodes the quotes, and so is it written here. A run's
  artifact: ``#/experiments/<id>/runs/<run id>/artifacts/<path>``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
import urllib.parse

import mlflow
from mlflow.tracking import MlflowClient

from experiments.stores import tracking
from experiments.stores.said import hide_passwords

SHARED_VIEW_TAG = "mlflow.sharedViewState."  # + key: the experiment tag the runs view reads
DEFAULT_KEY = "compare-heads"
VIEW_NAME = "Compare heads"  # as the views menu lists it, and is labelled while it is open
FAMILY_KEY, FAMILY_VIEW = "best-per-family", "Best of each head family"  # grouped by family
# the charts: complete trials only (MLflow's legends named the parent and pruned runs, unplotted)
CHARTS_KEY, CHARTS_VIEW = "complete-trials", "Complete trials"
TELEMETRY = "MLFLOW_DISABLE_TELEMETRY"  # experiments/__init__.py sets it "true" unless given
LOCAL_HOST, LOCAL_PORT = "127.0.0.1", 5000  # `mlflow ui`'s defaults: loopback only

PARAMS = ("head", "output")
METRICS = ("params_total", "params_head", "dev_acer", "test_acer", "test_hter")
SORT_BY = "dev_acer"  # chosen on dev, never on test
PARALLEL = (("head", "output", "dropout", "learning_rate"), ("dev_acer", "test_acer"))
_SECTION = "vggface-heads-comparison"
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _column(kind: str, name: str) -> str:
    return f"{kind}.`{name}`"


def _scatter(uuid: str, x: str, y: str) -> dict:
    axis = [{"key": key, "type": "METRIC", "dataAccessKey": key} for key in (x, y)]
    return {**_card(uuid, "SCATTER"), "xaxis": axis[0], "yaxis": axis[1]}


def _card(uuid: str, kind: str) -> dict:
    return {
        "uuid": uuid,
        "type": kind,
        "metricSectionId": _SECTION,
        "isGenerated": False,
        "deleted": False,
        "runsCountToCompare": 100,
    }


def _section(uuid: str, name: str, display: bool, columns: int = 3) -> dict:
    return {
        "uuid": uuid,
        "name": name,
        "display": display,
        "isReordered": False,
        "deleted": False,
        "isGenerated": not display,
        "columns": columns,
        "cardHeight": 360,
    }


def view_state(parent_run_ids: list[str], search: str | None = None) -> dict:
    """The runs view's state: every trial listed, best dev ACER first, and the charts.

    ``search`` (MLflow's filter, e.g. on a tag): only the runs it finds, each with its own
    figures.
    """
    columns = [
        _column("attributes", "Run Name"),
        *(_column("params", name) for name in PARAMS),
        *(_column("metrics", name) for name in METRICS),
    ]
    widths = {columns[0]: 150, "runDateAndNestInfo": 120, "duration": 75}
    widths |= {column: 95 for column in columns[1:]} | {_column("metrics", SORT_BY): 105}
    selected_params, selected_metrics = PARALLEL
    charts = [
        _scatter("vggface-heads-dev-acer", "params_total", "dev_acer"),
        _scatter("vggface-heads-test-acer", "params_total", "test_acer"),
    ]
    parallel = _card("vggface-heads-parallel", "PARALLEL")
    parallel |= {"selectedParams": list(selected_params), "showAllRuns": True}
    charts.append(parallel | {"selectedMetrics": list(selected_metrics)})
    state = {
        "orderByKey": _column("metrics", SORT_BY),
        "orderByAsc": True,
        "selectedColumns": columns,
        "columnOrder": [columns[0], "runDateAndNestInfo", "duration", *columns[1:]],
        "columnWidths": widths,
        "runsExpanded": dict.fromkeys(parent_run_ids, True),
        "runsHiddenMode": "SHOW_ALL",
        "isAccordionReordered": True,  # keep the sections in this order
        "compareRunCharts": charts,
        "compareRunSections": [
            _section(_SECTION, "Comparing heads", display=True, columns=2),
            _section("vggface-heads-model-metrics", "Model metrics", display=False),
            _section("vggface-heads-system-metrics", "System metrics", display=False),
        ],
    }
    if search is not None:
        state["searchFilter"] = search
    return state


def share_view_state(
    experiment_id: str,
    study_name: str,
    key: str = DEFAULT_KEY,
    name: str = VIEW_NAME,
    search: str | None = None,
) -> str:
    """Write the view state as experiment tag ``mlflow.sharedViewState.<key>``; return ``key``.

    Every parent run of the study (every worker's, every invocation's) is in it. Rewriting it
    keeps its creation time, so the views menu shows one view ``name``, updated; a view that
    already says the same is left as it is (a rerun of a finished study writes nothing).
    """
    _check_key(key)
    client = MlflowClient()
    parents = tracking.study_parents(experiment_id, study_name)
    now = int(time.time() * 1000)
    tag = SHARED_VIEW_TAG + key
    state = json.dumps(view_state(parents, search))
    created = now
    previous = client.get_experiment(experiment_id).tags.get(tag)
    if previous:
        try:
            old = json.loads(previous)
            created = int(old["createdAt"])
        except (ValueError, KeyError, TypeError):
            pass  # not our envelope: replaced
        else:
            if old.get("name") == name and old.get("state") == state:
                return key
    envelope = {"name": name, "createdAt": created, "updatedAt": now, "state": state}
    client.set_experiment_tag(experiment_id, tag, json.dumps(envelope))
    return key


def _check_key(key: str) -> None:
    if not _KEY.match(key):
        raise ValueError(f"view key {key!r}: use 1 to 64 letters, digits, '_' and '-'")


def ui_address() -> tuple[str, str | None]:
    """The UI's base URL and, for a local store, the command that starts it on loopback (with
    MLflow's telemetry off, as this project's commands have it, unless the user turned it on)."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/"), None
    command = f"mlflow ui --backend-store-uri {shlex.quote(uri)}"
    command += f" --host {LOCAL_HOST} --port {LOCAL_PORT}"
    if os.environ.get(TELEMETRY, "true").lower() not in ("false", "0"):  # off, as here
        command = f"{TELEMETRY}=true {command}"  # a pasted `mlflow ui` asked MLflow's (probe Y)
    return f"http://{LOCAL_HOST}:{LOCAL_PORT}", command


def runs_url(experiment_id: str, key: str = DEFAULT_KEY, charts: bool = False) -> str:
    """The experiment's runs view in the shared view state ``key`` (``charts``: its chart view)."""
    _check_key(key)
    base, _ = ui_address()
    query = {"viewStateShareKey": key, "workflowType": "machine_learning"}
    if charts:
        query["compareRunsMode"] = "CHART"
    return f"{base}/#/experiments/{experiment_id}/runs?{urllib.parse.urlencode(query)}"


def compare_url(experiment_id: str, run_ids: list[str]) -> str:
    """MLflow's compare page for ``run_ids``: parallel coordinates, scatter, box, contour."""
    base, _ = ui_address()
    runs = _json_list(run_ids)
    experiments = _json_list([experiment_id])  # the sidebar's "Model training" side too
    return (
        f"{base}/#/compare-runs?runs={runs}&experiments={experiments}&workflowType=machine_learning"
    )


def _json_list(values: list[str]) -> str:
    return urllib.parse.quote(json.dumps(list(values), separators=(",", ":")), safe="[],")


def finished_trial_runs(experiment_id: str, study_name: str) -> list[str]:
    """Run ids of the study's FINISHED trial runs, best dev ACER first."""
    runs = tracking.study_runs(experiment_id, study_name)
    if runs.empty:
        return []
    runs = runs[runs["status"] == "FINISHED"]
    if f"metrics.{SORT_BY}" in runs:
        runs = runs.sort_values(f"metrics.{SORT_BY}", kind="stable", na_position="last")
    return list(runs["run_id"])


def report_url(experiment_id: str, run_id: str, path: str = "report.html") -> str:
    """A run's artifact ``path`` in the UI's artifact viewer (HTML is rendered there)."""
    base, _ = ui_address()
    artifact = urllib.parse.quote(path)
    return (
        f"{base}/#/experiments/{experiment_id}/runs/{run_id}/artifacts/{artifact}"
        "?workflowType=machine_learning"
    )


def closing_lines(experiment_id: str, study_name: str, share: bool = True) -> list[str]:
    """Share the views (unless ``share`` is False: the store is only read), then the lines the
    sweep ends with: how to start the UI (a local store), the runs view, the compare page of the
    finished trials, how to nest or group."""
    key = DEFAULT_KEY
    if share:
        share_view_state(experiment_id, study_name, key)
        best = f"tags.`{tracking.FAMILY_BEST_TAG}` = 'true'"  # each its own figures, not a min
        share_view_state(experiment_id, study_name, FAMILY_KEY, FAMILY_VIEW, search=best)
        complete = f"tags.`{tracking.ROLE_TAG}` = 'trial' and attributes.status = 'FINISHED'"
        share_view_state(experiment_id, study_name, CHARTS_KEY, CHARTS_VIEW, search=complete)
    _, command = ui_address()
    lines = []
    if command:
        command = hide_passwords(command)  # the user puts theirs back
        lines.append(f"MLflow UI: `{command}` (loopback only; README, 'Comparing heads')")
    lines.append(f"runs, best dev ACER first: {runs_url(experiment_id, key)}")
    lines.append(
        "  charts (dev/test ACER vs params_total, parallel coordinates): "
        + runs_url(experiment_id, CHARTS_KEY, charts=True)
    )
    finished = finished_trial_runs(experiment_id, study_name)
    if finished:
        lines.append(
            f"compare the {len(finished)} complete trial{'s' * (len(finished) != 1)}: "
            + compare_url(experiment_id, finished)
        )
    lines.append(
        f"  the view sorts by dev_acer, so every trial is a row; its menu '{VIEW_NAME}' (top "
        f"right) > '{FAMILY_VIEW}' lists each family's best trial, chosen on dev; sort by Created "
        "to nest the trials under their sweep's run (+)"
    )
    return lines
