"""Write docs/memory.md: the memory planner's estimates (gennorm.networks.memory) for the classic
configurations, beside the activation bytes a real CPU forward saves where it was measured.

    .venv/bin/python tools/memory_table.py                # estimates + batch-1 CPU measurements
    .venv/bin/python tools/memory_table.py --no-measure   # estimates only (about a minute)

Rows: every norm of the registry as the generator's norm (the discriminator keeps the presets'
instance norm); columns: batch 1 and 4, fp32 and bf16, at 256 x 256. CUT's measured column is
its real training step on the CPU (gennorm.train.memory_probe: the bytes saved for backward at
the step's peak), the others' the planner's own passes run on real tensors.
"""
from __future__ import annotations

import argparse
import functools
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gennorm.config import load_config  # noqa: E402
from gennorm.layers import NORMS  # noqa: E402
from gennorm.networks.memory import plan_memory  # noqa: E402
from gennorm.train.cut import CUTTask, patch_nce  # noqa: E402
from gennorm.train.memory_probe import measure_cut_step  # noqa: E402

CONFIGS = [("pix2pix", "unet_256", True), ("pix2pix", "resnet_9blocks", True), ("cyclegan", "resnet_9blocks", False),
           ("cut", "resnet_9blocks", True)]
# (preset, G, measured): CycleGAN's twelve real 256 px forwards per cell are too slow and large for a 2-core CPU
COLUMNS = [(1, "none"), (1, "bf16"), (4, "none"), (4, "bf16")]
# the cut presets' CUT keys (gennorm/presets/cut.yaml): PatchNCE with 256 patches per tap, netF 256 channels
CUT = {"cut": dict(nce_idt=True, num_patches=256, netf_nc=256)}


def plan(preset: str, arch: str, norm: str, batch: int, amp: str, fake: bool = True):
    task, cut = ("cut", {**CUT[preset], "nce_loss": functools.partial(patch_nce, temperature=0.07)}) \
        if preset in CUT else (preset, {})
    return plan_memory(task, arch, norm, size=256, batch=batch, amp=amp, d_norm="instance", fake=fake, **cut)


def measure_cut(preset: str, arch: str, norm: str, batch: int, amp: str) -> int:
    """The saved bytes at the peak of one real CUT training step on the CPU (its larger phase)."""
    cfg = load_config(f"{preset}-instance", [f"model.g_arch={arch}", f"model.g_norm={norm}", "model.d_norm=instance",
                                             "data.crop_size=256", f"train.batch_size={batch}", f"train.amp={amp}",
                                             "train.device=cpu", "train.progress=false"])
    torch.manual_seed(0)
    task = CUTTask(cfg, torch.device("cpu"))
    data = {k: torch.rand(batch, 3, 256, 256) * 2 - 1 for k in "AB"}
    peaks = measure_cut_step(task, data)
    return max(peaks["D backward"], peaks["G backward"])


INTRO = """# How much memory does training take?

`gennorm nets summary ARCH --norm N --size S --batch B --task pix2pix|cyclegan|cut [--amp bf16] [--ema]`
prints the estimate for any configuration, and `gennorm train` prints it before it starts on a GPU.
It adds the state that lives through a training step (fp32 parameters and buffers, their
gradients, Adam's two moments, EMA copies when `train.ema > 0`) to the activations autograd saves
for backward in the step's larger phase (pix2pix: G(A) and D twice while D's backward runs;
CycleGAN: four generator passes, two identity passes and two frozen D passes while the generators'
backward runs; CUT: see below). The activations are traced on fake tensors (no memory allocated,
any size on a laptop), counting each saved storage once (gennorm/networks/memory.py).

CUT and FastCUT (`--task cut`, FastCUT: `--no-nce-idt`; `--num-patches`, `--netf-nc`, `--nce-layers`,
`--nce-batch-negatives` are train's keys of those names, by default the cut presets'; CUT's own
networks: `--antialias --upsample antialias`): the state adds
the PatchNCE heads F (one 2-layer MLP of netf_nc channels per encoder tap, 0.56M parameters on a
ResNet-9 with 256 channels) with their gradients and Adam moments. The larger phase is the
generator's: G on cat(A, B) (CUT runs A and B through G as one batch; FastCUT A only), D on G(A)
frozen, and per NCE term (A -> G(A), and B -> G(B) with nce_idt) the generator's encoder re-run
on the translation up to its deepest tap (block 5 of 9), the sampled patches through F, and the
PatchNCE logits ([B, P, P] per tap, [1, BP, BP] with nce_batch_negatives). The keys' encoder
pass (on A, or B) is freed when its term returns (PatchNCE detaches the keys), so only the last
term's is alive at the peak, the end of the forward. FastCUT's flip saves nothing extra. CUT at
256 x 256, batch 1, fp32 peaks at about 60% of CycleGAN (instance norm: 1.43 against 2.46 GiB).

Not counted: the CUDA context (0.3 to 0.5 GB), cuDNN / cuBLAS workspaces, the caching
allocator's reserve and fragmentation, transient buffers inside one op. Expect
`torch.cuda.max_memory_allocated` a little above the estimate and `nvidia-smi` 0.5 to 1.5 GB above
it. bf16 runs the forward under autocast (traced with CPU autocast, whose op lists differ from
CUDA's in a few ops); the weights, gradients and Adam state stay fp32. Autocast also keeps the bf16
copy of each weight it casts for backward, so bf16 can take more than fp32 at batch 1 with a large
generator (U-Net-256: 54M parameters).

Checks: tests/test_memory.py compares the fake trace with the bytes a real CPU forward saves
(equal for every norm, fp32 and bf16, within 0.4% for group norm under bf16); the measured column
below is that real CPU forward at 256 x 256 and batch 1. CUT's plan is checked against its real
training step (CUTTask.train_step; gennorm/train/memory_probe.py tracks every tensor autograd
saves and sums the live ones, each storage once, at every save): tests/test_memory.py at small
sizes (CUT, FastCUT, batch negatives; each phase within 2%), and CUT's measured column below at
256 x 256, batch 1, fp32. Under bf16 the plan is a little high for CUT (2.8% with instance norm,
measured once): autocast casts each weight once per autocast region, so the encoder passes of
CUT's loss share one bf16 copy of each weight, which the plan counts once per pass (three at the
peak). Not checked here (no GPU on this machine): the estimate against
`torch.cuda.max_memory_allocated`. CycleGAN's table is estimated only (its passes are the same
networks' forwards, checked at small sizes in the tests). FastCUT (one G pass, one NCE term) is
`--no-nce-idt`; its table is not generated here.

Generated by `.venv/bin/python tools/memory_table.py` (torch {version}, {machine},
{seconds:.0f} s).

"""


def gib(n: int) -> str:
    return f"{n / 2**30:.2f}"


def table(task: str, arch: str, measure: bool) -> list[str]:
    head = "| G norm | state | " + " | ".join(f"batch {b} {'fp32' if a == 'none' else a}" for b, a in COLUMNS) + " |"
    measured = ("the saved bytes at the peak of a real CPU training step" if task == "cut"
                else "a real CPU forward's saved bytes")
    lines = [f"### {task}, G {arch}, D basic (instance), 256 x 256", "",
             "Peak GiB = state + activations of the larger phase. Activations in brackets: estimated / measured "
             f"({measured})" if measure else "Peak GiB = state + activations of the larger phase.",
             "", head, "|" + " --- |" * (2 + len(COLUMNS))]
    for norm in NORMS:
        cells, state = [], None
        for batch, amp in COLUMNS:
            estimate = plan(task, arch, norm, batch, amp)
            state = estimate.state_bytes
            cell = f"{gib(estimate.total)} ({gib(estimate.activations)}"
            if measure and batch == 1 and (task not in CUT or amp == "none"):  # a CUT step: ~30 s per cell
                real = measure_cut(task, arch, norm, batch, amp) if task in CUT else \
                    plan(task, arch, norm, batch, amp, fake=False).activations
                cell += f" / {gib(real)}"
            cells.append(cell + ")")
        lines.append(f"| {norm} | {gib(state)} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-measure", action="store_true", help="estimates only, no real CPU forward")
    parser.add_argument("--out", default=str(ROOT / "docs" / "memory.md"))
    args = parser.parse_args()
    start = time.time()
    body = []
    for task, arch, measured in CONFIGS:
        body += table(task, arch, measured and not args.no_measure)
    intro = INTRO.format(version=torch.__version__, machine=platform.machine(), seconds=time.time() - start)
    Path(args.out).write_text(intro + "\n".join(body))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
