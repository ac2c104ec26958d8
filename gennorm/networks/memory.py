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
(gennorm/train/pix2pix.py, cyclegan.py, cut.py):

    pix2pix   D backward: G(A) + D(cat(A, B)) + D(cat(A, G(A)).detach())    [G's graph still alive]
              G backward: G(A) + D(cat(A, G(A))) with D frozen (input gradient only)
    cyclegan  G backward: G_A(A), G_B(G_A(A)), G_B(B), G_A(G_B(B)), identity G_A(B), G_B(A), and
                          D_A(G_A(A)), D_B(G_B(B)) frozen
              D backward: D_A on real B and a pooled fake, D_B on real A and a pooled fake
    cut       D backward: G(cat(A, B)) (G(A) without nce_idt) + D(B) + D(G(A).detach())
              G backward: G(cat(A, B)), D(G(A)) frozen, per NCE term (A -> G(A); B -> G(B) with
                          nce_idt) the queries G.encode(G(A)) -> F -> PatchNCE, and the keys
                          G.encode(A) -> F of the last term: k is detached inside PatchNCE, so each
                          term's key graph is freed when the term returns, but the last one is
                          alive at the phase's peak (the end of the last term's forward)

CUT's F (PatchSampleF) is one 2-layer MLP of netf_nc channels per encoder tap, sized from the
taps' channels; PatchNCE's own saved tensors ([B, P, P] logits per tap) are traced with the loss
function passed in (gennorm.train.cut.patch_nce: networks do not import train). FastCUT's flip
changes no saved bytes (torch.flip saves nothing; its copies are not kept for backward).

The peak is the larger phase plus the state. Not counted: the CUDA context (0.3 to 0.5 GB),
cuDNN / cuBLAS workspaces, the allocator's fragmentation and cache, the data loader's batches,
transient buffers of a single op (backward's grad_input of one layer at a time).
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from gennorm.networks.factory import build_discriminator, build_generator
from gennorm.networks.patch_sample import PatchSampleF

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
TASKS = ("pix2pix", "cyclegan", "cut")


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


class _NCEPass(nn.Module):
    """One side of a PatchNCE term as one forward, for saved_bytes: x -> G.encode(x) at the taps ->
    the first P positions of each tap (P = min(num_patches, H_l W_l); which ones does not change the
    bytes) -> F, [B, P, netf_nc] per tap. queries (nce_loss given): then the loss against keys of the
    same shapes (new storages: CUT's keys come from the other side's forward), summed."""

    def __init__(self, G: nn.Module, F: PatchSampleF, taps: tuple[str, ...], num_patches: int, nce_loss=None):
        super().__init__()
        self.G, self.F, self.taps, self.num_patches, self.nce_loss = G, F, taps, num_patches, nce_loss

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        feats = self.G.encode(x, self.taps)  # [B, C_l, H_l, W_l] per tap
        ids = [torch.arange(min(self.num_patches, f.shape[2] * f.shape[3])) for f in feats]
        out = self.F(feats, ids)  # [B, P_l, netf_nc] per tap
        if self.nce_loss is None:
            return out
        return sum(self.nce_loss(q, torch.zeros_like(q)).mean() for q in out)


def _tap_channels(G: nn.Module, taps: tuple[str, ...]) -> list[int]:
    """The channels of each encoder tap, from a forward on fake tensors (F's MLPs are sized by them);
    in eval mode: a training-mode forward would store fake running statistics (ConvNorm's running_V)."""
    size = max(G.size_multiple, 32)  # the ResNet's reflect pads need >= 2x2 at H/4
    was = G.training
    G.eval()
    try:
        with _fake_mode(True), torch.no_grad():
            return [f.shape[1] for f in G.encode(torch.zeros(1, G.input_nc, size, size), taps)]
    finally:
        G.train(was)


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
                ema: bool = False, identity: bool = True, fake: bool = True, antialias: bool = False,
                nce_idt: bool = True, nce_layers: str | None = None, num_patches: int = 256, netf_nc: int = 256,
                nce_loss=None) -> MemoryPlan:
    """The estimated memory of one training step of `task` (see the module docstring). cut: nce_idt,
    nce_layers (None: the generator's nce_taps), num_patches, netf_nc are train's keys of that name;
    nce_loss(q, k) -> [B, P] losses is the PatchNCE loss (gennorm.train.cut.patch_nce, its options
    bound), None for a run without NCE (lambda_nce 0)."""
    if task not in TASKS:
        raise ValueError(f"memory plans cover the tasks {', '.join(TASKS)}, not {task!r}")
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {', '.join(AMP_DTYPES)}, got {amp!r}")
    if task == "cut" and input_nc != output_nc:  # G's encoder reads G(A) too
        raise ValueError(f"a cut plan needs output_nc == input_nc, got {output_nc} and {input_nc}")
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
    elif task == "cyclegan":
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
    else:
        G = gen(input_nc, output_nc)
        taps = tuple(t.strip() for t in nce_layers.split(",") if t.strip()) if nce_layers else tuple(G.nce_taps)
        F = PatchSampleF(netf_nc)
        F.create(_tap_channels(G, taps))  # CUT creates it on the first batch: the same shapes
        nets = {"G": G, "D": build_discriminator(d_arch, output_nc, ndf, n_layers, d_norm, antialias=antialias), "F": F}
        generators = ("G",)
        # nce_idt: G runs once on cat(A, B) [2B, in, H, W] (even at lambda_nce 0); fake_B, idt_B are its halves
        g_all = trace(G, (2 * batch, input_nc, size, size) if nce_idt else img_a)
        g_name = "G(cat(A, B))" if nce_idt else "G(A)"
        d = trace(nets["D"], img_b)
        g_phase = [(g_name, g_all), ("D(G(A)), D frozen", trace(nets["D"], img_b, input_grad=True, frozen=True))]
        if nce_loss is not None:
            queries = trace(_NCEPass(G, F, taps, num_patches, nce_loss), img_b, input_grad=True)
            keys = trace(_NCEPass(G, F, taps, num_patches), img_a)
            g_phase.append(("NCE: G.encode(G(A)) -> F -> PatchNCE", queries))
            if nce_idt:
                g_phase.append(("NCE_Y: G.encode(G(B)) -> F -> PatchNCE", queries))
            # the last term's keys: freed when the term returns, alive at the end of the forward
            g_phase.append((f"NCE{'_Y' if nce_idt else ''} keys: G.encode({'B' if nce_idt else 'A'}) -> F, last term",
                            keys))
        phases = {"G backward": g_phase, "D backward": [(g_name, g_all), ("D(B)", d), ("D(G(A).detach())", d)]}
    labels = {"G": g_arch, "G_A": g_arch, "G_B": g_arch, "F": f"mlp_sample {netf_nc}"}
    return MemoryPlan(task, size, batch, amp, {n: sum(p.numel() for p in m.parameters()) for n, m in nets.items()},
                      _state(nets, generators, ema), phases,
                      {n: labels[n] if n == "F" else f"{labels.get(n, d_arch)} ({g_norm if n in labels else d_norm})"
                       for n in nets})


def plan_for_config(model_cfg, task: str, size: int, batch: int, amp: str = "none", ema: bool = False,
                    identity: bool = True, train_cfg=None, nce_loss=None) -> MemoryPlan:
    """plan_memory for a run config's `model` section (gennorm.config.ModelConfig, duck-typed); cut:
    its `train` section's nce_idt, nce_layers, num_patches, netf_nc, lambda_nce, nce_t,
    nce_batch_negatives, and nce_loss = gennorm.train.cut.patch_nce (q, k, temperature, batch_negatives)."""
    m, cut = model_cfg, {}
    if task == "cut":
        t = train_cfg
        if t is None or nce_loss is None:
            raise ValueError("a cut memory plan needs the run's train config and the PatchNCE loss function")
        bound = functools.partial(nce_loss, temperature=t.nce_t, batch_negatives=t.nce_batch_negatives)
        cut = dict(nce_idt=t.nce_idt, nce_layers=t.nce_layers, num_patches=t.num_patches, netf_nc=t.netf_nc,
                   nce_loss=bound if t.lambda_nce > 0 else None)
    return plan_memory(task, m.g_arch, m.g_norm, size=size, batch=batch, amp=amp, d_arch=m.d_arch, d_norm=m.d_norm,
                       ngf=m.ngf, ndf=m.ndf, n_layers=m.n_layers, input_nc=m.input_nc, output_nc=m.output_nc,
                       upsample=m.upsample, use_dropout=m.use_dropout, ema=ema, identity=identity,
                       antialias=m.antialias, **cut)
