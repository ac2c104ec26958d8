#!/usr/bin/env bash
# Trains, evaluates and exports the scenes model zoo (CPU is fine: ~5 min a model on 2 cores).
#   bash models/train_zoo.sh [NORM ...]        (default: instance pono-ms nc kn)
# Every number in models/scenes-*/card.md comes from this script.
set -euo pipefail
cd "$(dirname "$0")/.."
GENNORM=${GENNORM:-.venv/bin/gennorm}
norms=("$@"); [ ${#norms[@]} -gt 0 ] || norms=(instance pono-ms nc kn)
[ -d data/scenes/paired ] || $GENNORM data scenes data/scenes            # 128 px, 400 scenes, seed 0
for norm in "${norms[@]}"; do
  run=runs/zoo/scenes-$norm
  [ -d "$run/checkpoints" ] || $GENNORM train models/scenes-train.yaml model.g_norm=$norm out=$run train.progress=false
  $GENNORM eval --run "$run" --json "$run/eval.json" --device cpu --quiet   # the full 60-image test split
  rm -rf "models/scenes-$norm"
  $GENNORM export "$run" "models/scenes-$norm" --metrics-json "$run/eval.json"
done
