#!/usr/bin/env bash
# Issue 17's GPU check, one prepared run (about 9 minutes on one H200 with 16 cores):
# simulate a gabor and a subunit cohort (4 mice x 500 neurons x 20 min each, one process per
# mouse), then train on natural movies only, all at once on the one GPU; score every
# out-of-distribution family and in-silico tuning against each generator's truth.
# Variants: the cpu preset with each retina front end (none, contrast, whiten,
# whiten_contrast) in float32, and the paper preset with whitening in bfloat16 autocast.
# IMAGES=folder: photographs for the subunit cohort's natural movies.
#   OUT=/some/folder bash benchmarks/gpu_check.sh [TRAIN_MINUTES]
# Writes $OUT/summary.csv, $OUT/all.json and $OUT/log.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 MKL_NUM_THREADS=2
OUT=${OUT:-bench_runs/gpu_check}
MINUTES=${1:-4}
# SCALE=smoke: a 1-minute run of the same pipeline on a CPU (2 mice x 40 neurons, 20 steps)
if [ "${SCALE:-full}" = smoke ]; then SIZE="--mice 2 --neurons 40 --sim-minutes 1 --steps 20"
else SIZE="--mice 4 --neurons 500 --sim-minutes 20 --steps 3000"; fi
WORK=${WORK:-/tmp/cortexfm_gpu}
mkdir -p "$OUT" "$WORK"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
# shellcheck disable=SC2086
python3 benchmarks/ood_generalisation.py --simulate --jobs "${JOBS:-10}" --threads 1 $SIZE \
    --cohort gabor="$WORK/gabor" --cohort subunit="$WORK/subunit" ${IMAGES:+--images "$IMAGES"} \
    --variant base=train.amp=false \
    --variant contrast=model.core.front_end=contrast,train.amp=false \
    --variant whiten=model.core.front_end=whiten,train.amp=false \
    --variant whiten_contrast=model.core.front_end=whiten_contrast,train.amp=false \
    --variant paper_whiten=preset=paper,model.core.front_end=whiten \
    --minutes "$MINUTES" --out "$WORK/runs" 2>&1 \
    | grep --line-buffered -v -E "statistics|it/s\]" | tee "$OUT/log.txt"
cp "$WORK/runs/summary.csv" "$WORK/runs/all.json" "$OUT/"
