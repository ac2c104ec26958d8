"""How much memory a training step takes, without allocating it: `gennorm nets summary` (and the
note `gennorm train` prints on a GPU).

    plan = plan_memory("pix2pix", "resnet_9blocks", "instance", size=256, batch=4, amp="bf16")
    print(plan.table())            # parameters, gradients, Adam moments, EMA, activations, peak

State that lives through the step: parameters and buffers (fp32), their gradients (fp32, kept
between steps), Adam's two moments, the EMA copies of the generators. Activations: the tensors
autograd saves for backward, summed over their storages (torch.autograd.graph.saved_tensors_hooks,
each storage counted once; parameters' own storages excluded: they are counted above) while every
forward pass of the step runs on fake tensors (FakeTensorMode: shapes and dtypes, no data), under
CPU autocast for amp=bf16/fp16 (CUDA's autocast lists differ in a few ops). The step's phases
(gennorm/train/pix2pix.py, cyclegan.py):

    pix2pix   D backward: G(A) + D(cat(A, B)) + D(cat(A, G(A)).detach())    [G's graph still alive]
              G backward: G(A) + D(cat(A, G(A))) with D frozen (input gradient only)
    cyclegan  G backward: G_A(A), G_B(G_A(A)), G_B(B), G_A(G_B(B)), identity G_A(B), G_B(A), and
                          D_A(G_A(A)), D_B(G_B(B)) frozen
              D backward: D_A on real B and a pooled fake, D_B on real A and a pooled fake

The peak is the larger phase plus the state. Not counted: the CUDA context (0.3 to 0.5 GB),
cuDNN / cuBLAS workspaces, the allocator's fragmentation and cache, the data loader's batches,
transient buffers of a single op (backward's grad_input of one layer at a time).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from gennorm.networks.factory import build_discriminator, build_generator

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
TASKS = ("pix2pix", "cyclegan")


def _fake_mode(fake: bool):
    if not fake:
        return contextlib.nullcontext(None)
    from torch._subclasses.fake_tensor import FakeTensorMode

    return FakeTensorMode(allow_non_fake_inputs=True)


def saved_bytes(net: nn.Module, shape: tuple[int, ...], *, amp: str = "none", input_grad: bool = False,
                frozen: bool = False, fake: bool = True) -> int:
    """Bytes of the tensors autograd saves for backward in one forward of `net` on a [shape] input
    (parameters' storages excluded; each storage once). frozen: the net's parameters need no
    gradient (a D in the generator's step); input_grad: the input needs one (its output feeds
    backward). fake=False runs the real forward on the CPU (the check of the fake trace)."""
    dtype = AMP_DTYPES[amp]
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage._cdata] = storage.nbytes()
        return t

    with _fake_mode(fake) as mode:
        # fake: new fake tensors of the same shapes (mode.from_tensor would keep the real ones referenced)
        params = {name: (torch.empty(p.shape, dtype=p.dtype) if mode is not None else p.detach())
                  .requires_grad_(not frozen) for name, p in net.named_parameters()}
        buffers = {name: torch.empty(b.shape, dtype=b.dtype) if mode is not None else b
                   for name, b in net.named_buffers()}
        x = torch.zeros(shape, requires_grad=input_grad)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            torch.func.functional_call(net, {**params, **buffers}, (x,))
        own = {p.untyped_storage()._cdata for p in params.values()}
    return sum(n for key, n in seen.items() if key not in own)


@dataclass
class MemoryPlan:
    task: str
    size: int
    batch: int
    amp: str
    params: dict[str, int]                        # net name -> parameter count
    state: list[tuple[str, int]]                  # (what, bytes) kept through the step
    phases: dict[str, list[tuple[str, int]]]      # phase -> (forward pass, saved bytes)
    nets: dict[str, str] = field(default_factory=dict)  # net name -> "arch (norm)"

    @property
    def state_bytes(self) -> int:
        return sum(n for _, n in self.state)

    def phase_bytes(self, phase: str) -> int:
        return sum(n for _, n in self.phases[phase])

    @property
    def peak_phase(self) -> str:
        return max(self.phases, key=self.phase_bytes)

    @property
    def activations(self) -> int:
        return self.phase_bytes(self.peak_phase)

    @property
    def total(self) -> int:
        return self.state_bytes + self.activations

    def table(self) -> str:
        nets = ", ".join(f"{n} {a} {self.params[n] / 1e6:.2f}M" for n, a in self.nets.items())
        lines = [f"training-step memory, estimated ({self.task}, batch {self.batch}, {self.size}x{self.size}, "
                 f"amp {self.amp}): {nets}"]
        lines += [f"  {what:<44} {mib(n):>10}" for what, n in self.state]
        for phase, passes in self.phases.items():
            mark = "  <- peak" if phase == self.peak_phase else ""
            lines.append(f"  activations saved for backward, {phase}: {mib(self.phase_bytes(phase))}{mark}")
            lines += [f"    {what:<42} {mib(n):>10}" for what, n in passes]
        lines.append(f"  {'peak (state + ' + self.peak_phase + ')':<44} {mib(self.total):>10}")
        lines.append("  not counted: CUDA context (~0.3-0.5 GB), cuDNN workspaces, allocator cache and fragmentation")
        return "\n".join(lines)


def mib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _state(nets: dict[str, nn.Module], generators: tuple[str, ...], ema: bool) -> list[tuple[str, int]]:
    param = sum(p.numel() * 4 for n in nets.values() for p in n.parameters())  # fp32 master weights
    buffers = sum(b.numel() * b.element_size() for n in nets.values() for b in n.buffers())
    ema_bytes = sum(p.numel() * 4 for g in generators for p in nets[g].parameters()) if ema else 0
    return [("parameters" + (" + buffers" if buffers else ""), param + buffers), ("gradients", param),
            ("Adam moments (2 per parameter)", 2 * param), ("EMA of the generators" + ("" if ema else " (off)"),
                                                            ema_bytes)]


def plan_memory(task: str, g_arch: str, g_norm: str, *, size: int = 256, batch: int = 1, amp: str = "none",
                d_arch: str = "basic", d_norm: str | None = None, ngf: int = 64, ndf: int = 64, n_layers: int = 3,
                input_nc: int = 3, output_nc: int = 3, upsample: str | None = None, use_dropout: bool = False,
                ema: bool = False, identity: bool = True, fake: bool = True, antialias: bool = False) -> MemoryPlan:
    """The estimated memory of one training step of `task` (see the module docstring)."""
    if task not in TASKS:
        raise ValueError(f"memory plans cover the tasks {', '.join(TASKS)}, not {task!r}")
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {', '.join(AMP_DTYPES)}, got {amp!r}")
    d_norm = d_norm or g_norm
    img_a, img_b = (batch, input_nc, size, size), (batch, output_nc, size, size)

    def gen(i, o):
        return build_generator(g_arch, i, o, ngf, g_norm, use_dropout=use_dropout, upsample=upsample,
                               antialias=antialias)

    def trace(net, shape, **kw):
        return saved_bytes(net, shape, amp=amp, fake=fake, **kw)

    if task == "pix2pix":
        nets = {"G": gen(input_nc, output_nc), "D": build_discriminator(d_arch, input_nc + output_nc, ndf, n_layers,
                                                                           d_norm, antialias=antialias)}
        generators = ("G",)
        pair = (batch, input_nc + output_nc, size, size)
        g = trace(nets["G"], img_a)
        d = trace(nets["D"], pair)
        phases = {"D backward": [("G(A)", g), ("D(cat(A, B))", d), ("D(cat(A, G(A)))", d)],
                  "G backward": [("G(A)", g), ("D(cat(A, G(A))), D frozen", trace(nets["D"], pair, input_grad=True,
                                                                                 frozen=True))]}
    else:
        nets = {"G_A": gen(input_nc, output_nc), "G_B": gen(output_nc, input_nc),
                "D_A": build_discriminator(d_arch, output_nc, ndf, n_layers, d_norm, antialias=antialias),
                "D_B": build_discriminator(d_arch, input_nc, ndf, n_layers, d_norm, antialias=antialias)}
        generators = ("G_A", "G_B")
        g_phase = [("G_A(A)", trace(nets["G_A"], img_a)), ("G_B(G_A(A))", trace(nets["G_B"], img_b, input_grad=True)),
                   ("G_B(B)", trace(nets["G_B"], img_b)), ("G_A(G_B(B))", trace(nets["G_A"], img_a, input_grad=True))]
        if identity and input_nc == output_nc:
            g_phase += [("G_A(B) (identity)", trace(nets["G_A"], img_b)), ("G_B(A) (identity)", trace(nets["G_B"], img_a))]
        g_phase += [("D_A(G_A(A)), D frozen", trace(nets["D_A"], img_b, input_grad=True, frozen=True)),
                    ("D_B(G_B(B)), D frozen", trace(nets["D_B"], img_a, input_grad=True, frozen=True))]
        d_a, d_b = trace(nets["D_A"], img_b), trace(nets["D_B"], img_a)
        phases = {"G backward": g_phase,
                  "D backward": [("D_A(B)", d_a), ("D_A(fake B)", d_a), ("D_B(A)", d_b), ("D_B(fake A)", d_b)]}
    labels = {"G": g_arch, "G_A": g_arch, "G_B": g_arch}
    return MemoryPlan(task, size, batch, amp, {n: sum(p.numel() for p in m.parameters()) for n, m in nets.items()},
                      _state(nets, generators, ema), phases,
                      {n: f"{labels.get(n, d_arch)} ({g_norm if n in labels else d_norm})" for n in nets})


def plan_for_config(model_cfg, task: str, size: int, batch: int, amp: str = "none", ema: bool = False,
                    identity: bool = True) -> MemoryPlan:
    """plan_memory for a run config's `model` section (gennorm.config.ModelConfig, duck-typed)."""
    m = model_cfg
    return plan_memory(task, m.g_arch, m.g_norm, size=size, batch=batch, amp=amp, d_arch=m.d_arch, d_norm=m.d_norm,
                       ngf=m.ngf, ndf=m.ndf, n_layers=m.n_layers, input_nc=m.input_nc, output_nc=m.output_nc,
                       upsample=m.upsample, use_dropout=m.use_dropout, ema=ema, identity=identity,
                       antialias=m.antialias)
