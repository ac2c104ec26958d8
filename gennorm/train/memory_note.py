"""The memory estimate `gennorm train` prints before it starts on a GPU (gennorm.networks.memory).

One line: the estimated peak of a training step of this config (state + activations saved for
backward) beside the GPU's memory, and a hint when it does not fit. An estimate that cannot be
made (a task the planner does not cover, an unexpected error) prints nothing: it never stops a run.
"""
from __future__ import annotations

import torch

from gennorm.networks.memory import TASKS, mib, plan_for_config
from gennorm.train.cut import patch_nce


def memory_note(cfg, device: torch.device) -> str | None:
    """'memory: ...' for a cuda `device`, else None."""
    t = cfg.train
    if device.type != "cuda" or t.task not in TASKS:
        return None
    try:
        plan = plan_for_config(cfg.model, t.task, cfg.data.crop_size, t.batch_size, amp=t.amp, ema=t.ema > 0,
                               identity=t.lambda_identity > 0, train_cfg=t, nce_loss=patch_nce)
        total = torch.cuda.get_device_properties(device).total_memory
    except Exception:
        return None
    m = cfg.model  # the nets summary options that reproduce this plan
    arch_opts = (" --antialias" if m.antialias else "") + (f" --upsample {m.upsample}" if m.upsample else "")
    cut = ""
    if t.task == "cut":
        cut = (f" --num-patches {t.num_patches} --netf-nc {t.netf_nc}" + ("" if t.nce_idt else " --no-nce-idt")
               + (f" --nce-layers {t.nce_layers}" if t.nce_layers else "")
               + (" --nce-batch-negatives" if t.nce_batch_negatives else ""))
    note = (f"memory: a training step needs about {mib(plan.total)} (state {mib(plan.state_bytes)} + activations "
            f"{mib(plan.activations)}, `gennorm nets summary {cfg.model.g_arch} --norm {cfg.model.g_norm} --size "
            f"{cfg.data.crop_size} --batch {t.batch_size} --task {t.task} --amp {t.amp}{arch_opts}{cut}` for the "
            f"detail) plus the CUDA context; the GPU has {mib(total)}")
    if plan.total > 0.9 * total:
        note += "; it may not fit: lower train.batch_size or data.crop_size, or set train.amp=bf16"
    return note
