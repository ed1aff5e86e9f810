"""Registered models of earlier versions still load and score as they did, and loading a model
imports neither Optuna nor plotly, nor prints TensorFlow's start-up lines.

``tests/fixtures/legacy_pyfunc_model`` was saved by the code of commit 60c4def, before
``experiments/`` was split into rooms (its ``pyfunc_model.py`` imports ``experiments.scoring``);
``legacy_pyfunc_model.expected.json`` holds what that code scored. It is loaded in a fresh
interpreter with MLflow's own loader, as a user would.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NATIVE_LOG = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} )")  # absl's lines
PROBE = """
import json, sys
import numpy as np
import mlflow
model = mlflow.pyfunc.load_model(sys.argv[1])
frames = np.random.default_rng(0).integers(0, 256, (14, 48, 40, 3), dtype=np.uint8)
scores = [float(s) for s in model.predict(frames)]
for again in (model, mlflow.pyfunc.load_model(sys.argv[1])):  # a second model, other batches
    again.predict(frames[:7])
loaded = [m for m in ("optuna", "plotly") if m in sys.modules]
print(json.dumps({"scores": scores, "loaded": loaded}))
"""


def test_a_model_registered_before_the_rooms_loads_and_scores_as_it_did() -> None:
    expected = json.loads((FIXTURES / "legacy_pyfunc_model.expected.json").read_text())
    assert "integers(0, 256, (14, 48, 40, 3)" in expected["frames"]  # the PROBE's frames
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(FIXTURES / "legacy_pyfunc_model")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(result["scores"], expected["scores"], rtol=1e-6)
    assert result["loaded"] == []  # loading a model imports neither Optuna nor plotly
    # nor prints TensorFlow's start-up lines (oneDNN, CUDA probes, cuInit), as predict.py doesn't
    native = [line for line in done.stderr.splitlines() if NATIVE_LOG.match(line)]
    assert native == [], done.stderr[-2000:]
    assert "retracing" not in done.stderr, done.stderr[-2000:]  # TF's hint, once two load (probe)
