#!/usr/bin/env bash
# tools/gpu_check.sh: the one prepared GPU run (issues 14 and 15), for an H200 where Python 3.12 and
# torch 2.11 (CUDA 13) are preinstalled, nvcc is present, nothing can be pip-installed and gradio and
# torch-fidelity are absent. Run from anywhere in the tree; it uses the tree itself (PYTHONPATH=root).
#
#   tools/gpu_check.sh [OUTDIR]             # on the GPU machine; OUTDIR defaults to $OUT, else /tmp/gpu_check_out
#   tools/gpu_check.sh --dry-run [OUTDIR]   # on a CPU: same steps at tiny sizes (CI: it parses, its Python imports)
#
# Steps, each timed and time-boxed (timeout), a failed step logged and the run going on; the whole
# run stops starting steps when its budget (GPU_CHECK_BUDGET seconds, default 400: under 7 minutes) is
# spent:
#   environment    nvidia-smi, torch / CUDA / cuDNN versions, nvcc, compute-sanitizer, the tree's commit
#   build          python -m gennorm.ops build --arch 9.0 (timed; cache in $GENNORM_CACHE; up to 200 s: its three
#                  .cu files took ~4 min each on 2 busy CPU cores here, in parallel on the H200's 16)
#   ops_status     python -m gennorm.ops status
#   tests          pytest -m cuda (gradio / playwright test files ignored); plain smoke run if no pytest
#   cuda_smoke     tools/cuda_smoke.py: each op once against the float64 CPU reference, NCConv2d cuda vs torch
#   memcheck       compute-sanitizer --tool memcheck on tools/cuda_smoke.py --ops-only (where it exists)
#   bench_layers_fp32 / _bf16   gennorm bench layers at the ResNet-9 shapes, batch 1 and 8, kernels' GB/s
#   bench_train    gennorm bench train: CycleGAN ResNet-9 256 px, instance vs nc, bf16 (then pix2pix)
#   bench_generator  gennorm bench generator: ResNet-9 256 px fwd+bwd, instance vs nc, bf16 (printed only)
#   profile        gennorm bench profile: per-kernel table of one NC (and IN) residual block, 256x64x64, batch 1
#   bench_layers_compiled       NC's torch path under torch.compile against Conv+IN (last: compiles are slow)
#   report         gennorm bench report: the Markdown tables of the layer benches (printed only)
# Files in OUTDIR (at most 8, flat: what the device tool brings back): gpu_check.log, summary.json,
# bench_layers_fp32.json, bench_layers_bf16.json, bench_layers_compiled.json, bench_train.json, profile.json.
# Afterwards, here: gennorm bench report <files_at>/bench_layers_*.json --merge docs/bench_layers_cuda.json
# (the README tables), and <files_at>/bench_train.json -> docs/bench_train_cuda.json.
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DRY=0
DEST=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    -h|--help) sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu_check: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) DEST=$1 ;;
  esac
  shift
done
DEST=${DEST:-${OUT:-${TMPDIR:-/tmp}/gpu_check_out}}
mkdir -p "$DEST" || exit 2
DEST=$(cd "$DEST" && pwd)
LOG=$DEST/gpu_check.log
: >"$LOG"
cd "$ROOT" || exit 2

if [ -z "${PYTHON:-}" ]; then
  if [ "$DRY" = 1 ] && [ -x "$ROOT/.venv/bin/python" ]; then PYTHON=$ROOT/.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export GENNORM_CACHE=${GENNORM_CACHE:-/tmp/gennorm-cache}  # the build's cache: not in OUTDIR (8 files at most)
if [ "$DRY" = 1 ]; then
  export PYTHONPATH="$ROOT/tools/dry_run_site:$PYTHONPATH"  # gradio / torch-fidelity unimportable, as on the GPU
  export GENNORM_BLOCK_MODULES=${GENNORM_BLOCK_MODULES:-gradio,gradio_client,torch_fidelity}
  export CUDA_VISIBLE_DEVICES=""  # the CPU even where a GPU is visible
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # tiny sizes: one thread, no spinning on a busy CI machine
  BUDGET=${GPU_CHECK_BUDGET:-300}  # ~25 s on a quiet 2-core CPU; room for a loaded CI machine
else
  BUDGET=${GPU_CHECK_BUDGET:-400}  # + at most 10 s of kill grace: under 7 minutes
fi
START=$(date +%s)
STEPS=$(mktemp "${TMPDIR:-/tmp}/gpu_check_steps.XXXXXX")  # not in DEST: a cut-short run leaves no 9th file there
GENNORM=("$PYTHON" -m gennorm.cli)

say() { echo "[gpu_check $(date -u +%H:%M:%S) +$(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }

record() {  # record NAME STATUS RC SECONDS LIMIT NOTE; summary.json is rewritten after every step
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" >>"$STEPS"
  write_summary
}

write_summary() {  # the steps so far as JSON (a run cut short still leaves its summary)
  {
    printf '{\n  "dry_run": %s,\n  "budget_s": %s,\n  "total_s": %s,\n  "date": "%s",\n  "steps": [\n' \
      "$([ "$DRY" = 1 ] && echo true || echo false)" "$BUDGET" "$(( $(date +%s) - START ))" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    awk -F'\t' 'BEGIN { n = 0 } {
        gsub(/"/, "\\\"", $6)
        printf "%s    {\"name\": \"%s\", \"status\": \"%s\", \"rc\": %s, \"seconds\": %s, \"limit_s\": %s, \"note\": \"%s\"}",
          (n++ ? ",\n" : ""), $1, $2, ($3 == "" ? "null" : $3), $4, $5, $6 }
      END { printf "\n" }' "$STEPS"
    printf '  ]\n}\n'
  } >"$DEST/summary.json.tmp" && mv -f "$DEST/summary.json.tmp" "$DEST/summary.json"
}

skip() {  # skip NAME WHY
  say "== $1: skipped ($2)"
  record "$1" skipped "" 0 0 "$2"
}

# step NAME LIMIT RESERVE CMD...: run CMD under `timeout`, at most LIMIT seconds and never into the
# RESERVE seconds kept for the steps after it (about the sum of their typical times on an H200: a slow
# build shortens the tests, not the benches); output to the terminal and the log.
step() {
  local name=$1 limit=$2 reserve=$3
  shift 3
  [ "$DRY" = 1 ] && reserve=0  # the reserves below are written for the GPU run's 400 s
  local left=$(( BUDGET - ($(date +%s) - START) - reserve ))
  if [ "$left" -lt 10 ]; then
    say "== $name: not started (the run's ${BUDGET}s budget is spent)"
    record "$name" "not started" "" 0 0 "budget spent"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  say "== $name (time box ${limit}s): $*"
  local t0 t1 rc status
  t0=$(date +%s.%N)
  timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  t1=$(date +%s.%N)
  local secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  case $rc in
    0) status=ok ;;
    124|137) status=timeout ;;
    *) status=failed ;;
  esac
  say "== $name: $status (rc $rc) in ${secs}s"
  record "$name" "$status" "$rc" "$secs" "$limit" ""
  return 0
}

say "gpu_check $([ "$DRY" = 1 ] && echo "dry run (CPU, tiny sizes)" || echo "GPU run") -> $DEST, budget ${BUDGET}s, python $PYTHON"

# ---- 1. environment -----------------------------------------------------------------------------
env_report() {
  echo "host: $(uname -a)"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  if command -v git >/dev/null 2>&1 && git -C "$ROOT" rev-parse HEAD >/dev/null 2>&1; then
    echo "tree: $(git -C "$ROOT" rev-parse HEAD) ($(git -C "$ROOT" status --short | wc -l) paths differ from it)"
  else
    echo "tree: no git metadata (a copied working tree)"
  fi
  if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi; else echo "nvidia-smi: not found"; fi
  if command -v nvcc >/dev/null 2>&1; then nvcc --version | tail -2; else echo "nvcc: not found"; fi
  echo "compute-sanitizer: $(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || echo 'not on PATH')"
  "$PYTHON" - <<'EOF'
import importlib.util, platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}, GPU visible: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"device: {p.name}, sm_{p.major}{p.minor}, {p.multi_processor_count} SMs, {p.total_memory / 2**30:.1f} GiB, "
          f"L2 {getattr(p, 'L2_cache_size', 0) / 2**20:.0f} MiB")
def present(name):
    try:
        return importlib.util.find_spec(name) is not None
    except Exception:  # blocked (the dry run) or broken
        return False
for m in ("pytest", "triton", "gradio", "torch_fidelity", "tqdm", "yaml", "safetensors", "torchmetrics"):
    print(f"  {m:<15} {'present' if present(m) else 'ABSENT'}")
EOF
}
export -f env_report
export PYTHON ROOT
step environment 30 360 bash -c env_report

# ---- 2. build -----------------------------------------------------------------------------------
if [ "$DRY" = 1 ]; then
  skip build "dry run: no nvcc build on the CPU"
else
  step build 200 190 "$PYTHON" -m gennorm.ops build --arch 9.0
  if [ "$(tail -n 1 "$STEPS" | cut -f2)" != ok ]; then
    # The first CUDA dispatch would try the build again in every later process, each time eating its
    # time box: the steps after this one run on the PyTorch kernels instead (the rows say so).
    export GENNORM_EXTENSION=0
    say "build did not succeed: GENNORM_EXTENSION=0 for the remaining steps (no rebuild per process)"
  fi
fi
step ops_status 20 185 "$PYTHON" -m gennorm.ops status

# ---- 3. tests -----------------------------------------------------------------------------------
# test_demo needs gradio, test_browser playwright: both absent there, so they are left out of collection.
# pytest-xdist (on the H200 image) spreads the float64 CPU references over 8 of its 16 cores.
PARALLEL=()
if [ "$DRY" = 0 ] && "$PYTHON" -c "import xdist" >/dev/null 2>&1; then PARALLEL=(-n 8); fi
if "$PYTHON" -c "import pytest_timeout" >/dev/null 2>&1; then PARALLEL+=(--timeout 120); fi  # one hung test
if "$PYTHON" -c "import pytest" >/dev/null 2>&1; then
  step tests 90 150 "$PYTHON" -m pytest -m cuda tests --ignore=tests/test_demo.py --ignore=tests/test_browser.py \
    -p no:cacheprovider -q -ra --durations 10 "${PARALLEL[@]}"
else
  say "pytest is not installed: the plain smoke run below stands in for pytest -m cuda"
  record tests skipped "" 0 0 "pytest absent: cuda_smoke instead"
fi
if [ "$DRY" = 1 ]; then
  step cuda_smoke 30 140 "$PYTHON" tools/cuda_smoke.py --device cpu
else
  step cuda_smoke 30 140 "$PYTHON" tools/cuda_smoke.py --device cuda
fi

# ---- 4. memcheck ----------------------------------------------------------------------------------
SANITIZER=$(command -v compute-sanitizer || true)
for c in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
  [ -z "$SANITIZER" ] && [ -x "$c" ] && SANITIZER=$c
done
if [ "$DRY" = 1 ]; then
  skip memcheck "dry run: compute-sanitizer needs the GPU"
elif [ -z "$SANITIZER" ]; then
  skip memcheck "compute-sanitizer not found"
else
  step memcheck 60 110 "$SANITIZER" --tool memcheck --error-exitcode 9 --print-limit 20 \
    "$PYTHON" tools/cuda_smoke.py --device cuda --ops-only
fi

# ---- 5. layer bench, fp32 and bf16 -----------------------------------------------------------------
if [ "$DRY" = 1 ]; then
  LAYERS=(--quick --device cpu --repeats 1 --warmup 0 --no-compile)
else
  LAYERS=(--device cuda --batch 1 8 --repeats 10 --warmup 2 --no-compile)
fi
step bench_layers_fp32 70 75 "${GENNORM[@]}" bench layers "${LAYERS[@]}" --dtype float32 --no-progress \
  --json "$DEST/bench_layers_fp32.json"
step bench_layers_bf16 70 45 "${GENNORM[@]}" bench layers "${LAYERS[@]}" --dtype bfloat16 --no-progress \
  --json "$DEST/bench_layers_bf16.json"

# ---- 6. training steps ----------------------------------------------------------------------------
if [ "$DRY" = 1 ]; then
  TRAIN=(--device cpu --quick --arch resnet_9blocks --size 32 --ngf 4 --steps 1 --warmup 0 --tasks cyclegan)
else
  TRAIN=(--device cuda --arch resnet_9blocks --size 256 --ngf 64 --steps 10 --warmup 3 --tasks cyclegan pix2pix)
fi
step bench_train 70 30 "${GENNORM[@]}" bench train "${TRAIN[@]}" --norms instance nc --amp bf16 \
  --json "$DEST/bench_train.json"

# ---- 6b. a whole generator's forward + backward, instance vs nc, same decoder (printed only) ------------
if [ "$DRY" = 1 ]; then
  GENERATOR=(--device cpu --arch resnet_9blocks --ngf 4 --size 32 --repeats 1 --warmup 0)
else
  GENERATOR=(--device cuda --arch resnet_9blocks --ngf 64 --size 256 --repeats 10 --warmup 2)
fi
step bench_generator 30 20 "${GENNORM[@]}" bench generator "${GENERATOR[@]}" --norms instance nc --dtype bfloat16

# ---- 7. per-kernel profile of one residual block ---------------------------------------------------
if [ "$DRY" = 1 ]; then
  PROFILE=(--device cpu --channels 8 --size 8 --steps 1 --warmup 1 --rows 8)
else
  PROFILE=(--device cuda --channels 256 --size 64 --batch 1 --steps 5 --warmup 3 --rows 25)
fi
step profile 40 10 "${GENNORM[@]}" bench profile "${PROFILE[@]}" --norms nc instance --dtype float32 bfloat16 \
  --json "$DEST/profile.json"

# ---- 8. NC torch path under torch.compile (whatever time is left) --------------------------------------
if [ "$DRY" = 1 ]; then
  COMPILED=(--quick --device cpu --repeats 1 --warmup 0 --layers res --no-compile)  # parses; compiling takes ~30 s here
else
  COMPILED=(--device cuda --batch 1 8 --repeats 10 --warmup 2)
fi
step bench_layers_compiled 120 5 "${GENNORM[@]}" bench layers "${COMPILED[@]}" --dtype float32 bfloat16 \
  --candidates "nc (torch, compiled)" "nc (cuda)" --no-kernels --modes fwdbwd --no-progress \
  --json "$DEST/bench_layers_compiled.json"

# ---- the tables (printed, no file): ratios to Conv+IN and kernels' % of copy bandwidth ------------------
REPORTS=()
for f in bench_layers_fp32 bench_layers_bf16 bench_layers_compiled; do
  [ -s "$DEST/$f.json" ] && REPORTS+=("$DEST/$f.json")
done
if [ ${#REPORTS[@]} -gt 0 ]; then
  step report 15 0 "${GENNORM[@]}" bench report "${REPORTS[@]}"
else
  skip report "no bench layers JSON was written"
fi

# ---- summary ----------------------------------------------------------------------------------------
write_summary
say "summary ($(( $(date +%s) - START ))s of ${BUDGET}s):"
awk -F'\t' '{ printf "  %-24s %-12s %8ss  %s\n", $1, $2, $4, $6 }' "$STEPS" | tee -a "$LOG"
rm -f "$STEPS"
ls -l "$DEST" | tee -a "$LOG"
exit 0
