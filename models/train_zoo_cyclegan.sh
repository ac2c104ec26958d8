#!/usr/bin/env bash
# Trains, evaluates and exports the unpaired (CycleGAN) scenes models; G_A (labels -> photo) is
# exported and evaluated against the true photos of the paired test split (the scenes task has
# ground truth even though training never saw a pair).
#   bash models/train_zoo_cyclegan.sh [NORM ...]      (default: instance pono-ms nc)
set -euo pipefail
cd "$(dirname "$0")/.."
GENNORM=${GENNORM:-.venv/bin/gennorm}
norms=("$@"); [ ${#norms[@]} -gt 0 ] || norms=(instance pono-ms nc)
[ -d data/scenes/paired ] || $GENNORM data scenes data/scenes            # 128 px, 400 scenes, seed 0
for norm in "${norms[@]}"; do
  run=runs/zoo/scenes-cyclegan-$norm
  [ -d "$run/checkpoints" ] || $GENNORM train models/scenes-cyclegan-train.yaml model.g_norm=$norm out=$run train.progress=false
  rm -rf "$run/eval"
  $GENNORM translate "$run" data/scenes/paired/test "$run/eval/test_fake" --aligned --device cpu
  $GENNORM eval "$run/eval/test_fake/targets" "$run/eval/test_fake" --json "$run/eval.json" --device cpu --quiet
  rm -rf "models/scenes-cyclegan-$norm"
  $GENNORM export "$run" "models/scenes-cyclegan-$norm" --metrics-json "$run/eval.json"
done
