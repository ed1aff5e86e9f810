"""The sweep and everything around it: rooms with one job each (ARCHITECTURE.md).

Nothing here phones home: MLflow's usage telemetry is off in every process that imports this
package before MLflow starts it (sweeps, workers, predict, the tests), unless the user turns it
on with ``MLFLOW_DISABLE_TELEMETRY=false``.
"""

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
