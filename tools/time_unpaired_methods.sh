#!/usr/bin/env bash
# Seconds per training step of CycleGAN, CUT and FastCUT at the study unpaired-methods recipe (64 px
# crops, ResNet-6 ngf 16, batch 2), 1 thread, interleaved over 2 rounds so load drift hits all three;
# run `gennorm study unpaired-methods` first (its data). Prints one line per run; outputs under /tmp/m.
cd "$(dirname "$0")/.."
mkdir -p /tmp/m
export OMP_NUM_THREADS=1
R="model.g_arch=resnet_6blocks model.ngf=16 model.ndf=16 data.load_size=128 data.crop_size=64 data.preprocess=crop train.batch_size=2 train.lr=0.0005 data.root=studies/unpaired-methods/data/scenes/unpaired train.max_steps=40 train.log_every=5 train.checkpoint_every=100000 train.sample_every=100000 train.progress=false"
for round in 1 2; do
  for norm in instance nc; do
    for method in cyclegan cut fastcut; do
      out=/tmp/m/meth-$method-$norm-$round; rm -rf $out
      .venv/bin/gennorm train $method-instance model.g_norm=$norm model.d_norm=instance $R out=$out > $out.log 2>&1
      .venv/bin/python - "$out" $method $norm $round <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl") if l.startswith("{")]
t = [r["step_time"] for r in rows[1:]]
print(*sys.argv[2:], "median s/step %.3f" % statistics.median(t), flush=True)
PY
    done
  done
done
