#!/usr/bin/env bash
# Trains, evaluates and exports the CUT scenes models (labels -> photo, trained on the unpaired
# halves, scored against the true photos of the paired test split). They are the CUT runs of the
# study `unpaired-methods` (gennorm/study/presets/unpaired-methods.yaml: the CycleGAN zoo's recipe,
# 64 px crops of the 128 px scenes, ResNet-6 ngf 16, 400 steps of batch 2), so the zoo models and
# the study's CUT rows are the same runs; the study reuses finished runs and resumes cut-off ones.
#   bash models/train_zoo_cut.sh [NORM ...]      (default: instance nc)
set -euo pipefail
cd "$(dirname "$0")/.."
GENNORM=${GENNORM:-.venv/bin/gennorm}
export OMP_NUM_THREADS=${THREADS:-1}
norms=("$@"); [ ${#norms[@]} -gt 0 ] || norms=(instance nc)
list=$(IFS=,; echo "${norms[*]}")
$GENNORM study unpaired-methods tasks=cut norms="$list" --no-progress --report studies/unpaired-methods/cut-zoo.md
for norm in "${norms[@]}"; do
  run=studies/unpaired-methods/runs/cut/g-${norm}_d-instance_bs2_seed0
  rm -rf "$run/eval"
  $GENNORM translate "$run" studies/unpaired-methods/data/scenes/paired/test "$run/eval/test_fake" --aligned --device cpu
  $GENNORM eval "$run/eval/test_fake/targets" "$run/eval/test_fake" --json "$run/eval/metrics.json" --device cpu --quiet
  rm -rf "models/scenes-cut-$norm"
  $GENNORM export "$run" "models/scenes-cut-$norm" --metrics-json "$run/eval/metrics.json"
done
