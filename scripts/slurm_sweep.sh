#!/usr/bin/env bash
# Many workers on one study as a Slurm job array (README, "Many machines").
#
#   sbatch --array=1-8 scripts/slurm_sweep.sh                  # 8 workers, one study
#
# (run from the repository: each task's log is sweep-<job>_<task>.out there; Slurm opens it
# before the script runs, so it names no folder that may not be there)
#   STUDY=oulu-p1 TRIALS=200 sbatch --array=1-16%4 scripts/slurm_sweep.sh
#
# Every array task is one worker of the same study: they share its PostgreSQL database, the
# mlflow server and the feature cache (a folder every node sees). Workers started together are
# safe; --trials is the study's total, so the array can be larger or smaller than needed, and a
# task that is killed (preemption, time limit) has its trial retried by the others.
#
# Sizing (README, "Sizing"; bench/RESULTS.md, "Scale"), for an array of N tasks running at once:
#   mlflow server --workers max(4, N/4), on as many cores (8: 4, 16: 4, 32: 8, 64: 16);
#   the study's PostgreSQL: max_connections >= 3 N + 20 (100 up to 16 tasks, 200 for 32, 300
#   for 64), plus 15 per server worker when MLflow's database is in the same cluster.
# The first task checks max_connections and warns when it is short (refused connections are
# the first thing that breaks: at 64 workers with the stock 100 for the study's database alone,
# from about 32 with MLflow's in the same cluster).
#SBATCH --job-name=vggface-sweep
#SBATCH --output=sweep-%A_%a.out
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=04:00:00
##SBATCH --gres=gpu:1              # uncomment on GPU partitions
set -euo pipefail

: "${DATA:?set DATA to the dataset root (README, Your data)}"
: "${STORAGE:=postgresql://vggface@dbhost/optuna}"         # Optuna RDB storage, one per study set
: "${TRACKING_URI:=http://mlflowhost:5000}"                # the mlflow server
: "${CACHE_DIR:=$HOME/.cache/vggface-heads}"               # shared by all nodes (flock must work)
: "${WEIGHTS:=$CACHE_DIR/vgg_face.weights.h5}"
: "${STUDY:=pad-$(basename "$DATA")}"
: "${TRIALS:=100}"
: "${HEADS:=*}"

cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-4}"
# Every task passes the same --seed (the trials' training seeds): the sweep seeds the k-th
# worker's sampler with --seed + k itself, so workers do not propose the same points. A --seed
# per task collided (task 2 joining first and task 1 second both sampled with seed 2) and trained
# each trial with its task's seed.

# Tasks at once: the array's %limit if any, else its size.
RUNNING="${SLURM_ARRAY_TASK_COUNT:-1}"
if [[ -n "${SLURM_ARRAY_JOB_ID:-}" ]] \
    && [[ "$(scontrol show job "$SLURM_ARRAY_JOB_ID" 2>/dev/null)" =~ ArrayTaskThrottle=([1-9][0-9]*) ]]; then
    RUNNING="${BASH_REMATCH[1]}"
fi
if [[ "${SLURM_ARRAY_TASK_ID:-0}" == "${SLURM_ARRAY_TASK_MIN:-0}" && "$STORAGE" == postgresql* ]]; then
    python - "$STORAGE" "$RUNNING" <<'EOF' || true
import sys

import sqlalchemy

url, workers = sys.argv[1], int(sys.argv[2])
need = 3 * workers + 20  # README, "Sizing": ~3 connections a worker, and room for the rest
ASKED = """SELECT current_setting('max_connections')::int,
    current_setting('superuser_reserved_connections')::int
    + coalesce(current_setting('reserved_connections', true), '0')::int,
    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') - 1"""
try:
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as connection:
        most, reserved, used = connection.execute(sqlalchemy.text(ASKED)).one()
except Exception as err:  # the sweep itself says what is wrong with the database, if anything
    sys.exit(f"could not read max_connections: {str(err).splitlines()[0]}")
have = most - reserved  # a worker is no superuser: the reserved slots refuse it (probe)
if have < need:  # those in use said, not counted: they may be this array's tasks (review)
    print(
        f"warning: the study's PostgreSQL allows {have} connections to workers "
        f"(max_connections {most}, {reserved} reserved), {used} in use now (an mlflow server "
        f"on this cluster holds up to 15 per server worker); {workers} workers need about "
        f"{need} (README, Sizing): raise max_connections or run fewer tasks at once",
        file=sys.stderr,
    )
EOF
fi

exec python experiments/sweep.py \
    --data "$DATA" --weights "$WEIGHTS" --cache-dir "$CACHE_DIR" \
    --study "$STUDY" --trials "$TRIALS" --heads "$HEADS" \
    --storage "$STORAGE" --tracking-uri "$TRACKING_URI" --no-progress "$@"
