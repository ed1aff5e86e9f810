#!/usr/bin/env bash
# The GPU benchmark for a lent GPU machine: Python 3.12 with JAX (CUDA), numpy, scipy, pandas,
# h5py, opencv and tqdm, no TensorFlow and no network. Installs only the wheels that
# bench/fetch_wheels.sh downloaded into bench/wheels/ (carry that folder), then runs
# bench/gpu.py under KERAS_BACKEND=jax. Must finish in under 8 minutes, installs included.
#
#     bash bench/fetch_wheels.sh          # here, with a package index
#     bash bench/gpu.sh                   # there (device tool: carry ["bench/wheels"])
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
python -m pip install --quiet --no-index --find-links bench/wheels \
    keras optuna mlflow-skinny matplotlib plotly
echo "installed in $((SECONDS - start)) s"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
export KERAS_BACKEND=jax PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false
python bench/gpu.py "$@"
echo "total $((SECONDS - start)) s"
