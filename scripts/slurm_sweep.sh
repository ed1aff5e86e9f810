#!/usr/bin/env bash
# Many workers on one study as a Slurm job array (README, "Many machines").
#
#   sbatch --array=1-8 scripts/slurm_sweep.sh                  # 8 workers, one study
#   STUDY=oulu-p1 TRIALS=200 sbatch --array=1-16%4 scripts/slurm_sweep.sh
#
# Every array task is one worker of the same study: they share its PostgreSQL database, the
# mlflow server and the feature cache (a folder every node sees). Workers started together are
# safe; --trials is the study's total, so the array can be larger or smaller than needed, and a
# task that is killed (preemption, time limit) has its trial retried by the others.
#SBATCH --job-name=vggface-sweep
#SBATCH --output=logs/sweep-%A_%a.out
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
mkdir -p logs
export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-4}"
# Each task seeds its sampler differently, or parallel TPE workers would propose the same points.
SEED=$(( ${SLURM_ARRAY_TASK_ID:-0} ))

exec python experiments/sweep.py \
    --data "$DATA" --weights "$WEIGHTS" --cache-dir "$CACHE_DIR" \
    --study "$STUDY" --trials "$TRIALS" --heads "$HEADS" --seed "$SEED" \
    --storage "$STORAGE" --tracking-uri "$TRACKING_URI" "$@"
