#!/usr/bin/env bash
# Download, on a machine with a package index, the wheels that bench/gpu.sh installs on a lent GPU
# machine (Python 3.12, manylinux x86_64, no network; it already has JAX with CUDA, numpy, scipy,
# pandas, h5py, opencv and tqdm). They go to bench/wheels/ (git-ignored), at most 64 MiB in all.
#
#     bash bench/fetch_wheels.sh
set -euo pipefail
cd "$(dirname "$0")"
rm -rf wheels && mkdir wheels
pip download --quiet --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 --dest wheels \
    keras optuna mlflow-skinny matplotlib plotly
# what the GPU machine already has: keep its builds (JAX is built against its numpy)
rm -f wheels/{numpy,scipy,pandas,h5py,tqdm,opencv_python,opencv_python_headless}-*.whl
size=$(du -sm wheels | cut -f1)
echo "bench/wheels: $(ls wheels | wc -l) wheels, ${size} MiB"
if [ "$size" -gt 64 ]; then
    echo "error: more than 64 MiB: the device machine cannot carry them" >&2
    exit 1
fi
