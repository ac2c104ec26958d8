#!/usr/bin/env bash
# Trains, evaluates and exports the scenes model zoo (v2: 128 px, 4000 steps; on 2 CPU cores
# ~15-25 min a model at 1 thread, so two models can train side by side).
#   bash models/train_zoo.sh [MODEL ...]   (default: instance pono-ms nc kn nc-convnorm-d)
# MODEL is a generator norm, or NORM-convnorm-d for that norm with a ConvNorm discriminator.
# An interrupted run resumes where its last checkpoint left it. Every number in
# models/scenes-*/card.md comes from this script; THREADS=N sets torch's threads (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
GENNORM=${GENNORM:-.venv/bin/gennorm}
export OMP_NUM_THREADS=${THREADS:-1}
models=("$@"); [ ${#models[@]} -gt 0 ] || models=(instance pono-ms nc kn nc-convnorm-d)
[ -d data/scenes/paired ] || $GENNORM data scenes data/scenes            # 128 px, 400 scenes, seed 0
for model in "${models[@]}"; do
  run=runs/zoo/scenes-$model
  args=(model.g_norm="${model%-convnorm-d}")
  [ "$model" = "${model%-convnorm-d}" ] || args+=(model.d_norm=convnorm)
  if [ -f "$run/config.yaml" ]; then
    $GENNORM train --resume "$run" train.progress=false       # finishes an interrupted run; no-op when done
  else
    $GENNORM train models/scenes-train.yaml "${args[@]}" out="$run" train.progress=false
  fi
  $GENNORM eval --run "$run" --protocol clean --json "$run/eval.json" --device cpu --quiet   # the 60-image test split
  rm -rf "models/scenes-$model"
  $GENNORM export "$run" "models/scenes-$model" --metrics-json "$run/eval.json"
done
