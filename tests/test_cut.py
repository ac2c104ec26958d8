"""CUT / FastCUT: PatchNCE against the paper's equation and against CUT's PatchNCELoss; the
generators' encoder taps; the PatchSampleF head; a CUT step against CUTModel's losses; runs.

The CUT transcriptions below are written from the paper and the semantics of
taesungp/contrastive-unpaired-translation (models/patchnce.py, models/cut_model.py,
models/networks.py PatchSampleF), in the layout that code uses (features [B*P, D]).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from gennorm.train.cut import patch_nce


def _unit(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=dtype)
    return x / x.norm(dim=-1, keepdim=True)


def literal_patch_nce(q, k, tau, batch_negatives=False, masked_term=False):
    """The paper's eq. (2), literally, one patch at a time (float64): for query v = q_bi, positive
    v+ = k_bi, negatives v- = the other key patches of image b (of the batch with batch_negatives):
    -log( exp(v.v+/tau) / (exp(v.v+/tau) + sum_n exp(v.v-_n/tau)) ).
    masked_term: + exp(-10/tau) in the sum, the masked self-similarity CUT's logits keep."""
    B, P, _ = q.shape
    out = torch.zeros(B, P, dtype=torch.float64)
    for b in range(B):
        for i in range(P):
            v, pos = q[b, i].double(), k[b, i].double()
            negs = [k[c, j].double() for c in (range(B) if batch_negatives else [b]) for j in range(P)
                    if (c, j) != (b, i)]
            num = math.exp(float(v @ pos) / tau)
            den = num + sum(math.exp(float(v @ n) / tau) for n in negs) + masked_term * math.exp(-10.0 / tau)
            out[b, i] = -math.log(num / den)
    return out


def cut_patchnce_loss(feat_q, feat_k, nce_T, batch_size, all_negatives_from_minibatch):
    """CUT's PatchNCELoss.forward, transcribed: feat_q, feat_k [B*P, D] (batch-major rows)."""
    num_patches, dim = feat_q.shape
    feat_k = feat_k.detach()
    l_pos = torch.bmm(feat_q.view(num_patches, 1, -1), feat_k.view(num_patches, -1, 1)).view(num_patches, 1)
    batch_dim_for_bmm = 1 if all_negatives_from_minibatch else batch_size
    feat_q = feat_q.view(batch_dim_for_bmm, -1, dim)
    feat_k = feat_k.view(batch_dim_for_bmm, -1, dim)
    npatches = feat_q.size(1)
    l_neg_curbatch = torch.bmm(feat_q, feat_k.transpose(2, 1))
    diagonal = torch.eye(npatches, device=feat_q.device, dtype=torch.bool)[None, :, :]
    l_neg_curbatch.masked_fill_(diagonal, -10.0)
    l_neg = l_neg_curbatch.view(-1, npatches)
    out = torch.cat((l_pos, l_neg), dim=1) / nce_T
    return nn.CrossEntropyLoss(reduction="none")(out, torch.zeros(out.size(0), dtype=torch.long))


# ---- 1. patch_nce ------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_negatives", [False, True])
@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_patch_nce_is_the_papers_equation(batch_negatives, tau):
    """At CUT's tau 0.07 the masked diagonal's exp(-10 / tau) ~ 1e-62 vanishes in float64 and the
    loss is the paper's equation; at tau 0.5 (exp(-20) ~ 2e-9) it shows, and is that term exactly."""
    q, k = _unit(2, 7, 5, seed=1), _unit(2, 7, 5, seed=2)
    k = 0.6 * q + 0.4 * k  # positives more similar than chance
    k = k / k.norm(dim=-1, keepdim=True)
    got = patch_nce(q, k, tau, batch_negatives)
    assert got.shape == (2, 7) and got.dtype == torch.float64
    torch.testing.assert_close(got, literal_patch_nce(q, k, tau, batch_negatives, masked_term=True),
                               rtol=1e-12, atol=1e-12)
    paper = literal_patch_nce(q, k, tau, batch_negatives)
    if tau < 0.1:
        torch.testing.assert_close(got, paper, rtol=1e-12, atol=1e-12)
    else:
        assert not torch.allclose(got, paper, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("batch_negatives", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_patch_nce_is_cuts_patchnce_loss(batch_negatives, dtype):
    B, P, D = 3, 16, 8
    q, k = _unit(B, P, D, seed=3, dtype=dtype), _unit(B, P, D, seed=4, dtype=dtype)
    got = patch_nce(q, k, 0.07, batch_negatives)
    want = cut_patchnce_loss(q.reshape(B * P, D), k.reshape(B * P, D), 0.07, B, batch_negatives).reshape(B, P)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)


def test_patch_nce_detaches_the_keys_and_checks_shapes():
    q = _unit(1, 4, 3, seed=5).requires_grad_()
    k = _unit(1, 4, 3, seed=6).requires_grad_()
    patch_nce(q, k).sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all() and k.grad is None
    with pytest.raises(ValueError, match=r"\[B, P, D\]"):
        patch_nce(q[0], k[0])
    with pytest.raises(ValueError, match=r"\[B, P, D\]"):
        patch_nce(q, k[:, :3])


# ---- 2. encoder taps ---------------------------------------------------------------------------


def _tap_modules_resnet(net):
    """role -> the module whose forward output is that tap, per the ResNet's docstring."""
    conv = lambda layer: layer[0] if isinstance(layer, nn.Sequential) else layer  # noqa: E731
    out = {"input": net.stem[0], "down1": conv(net.down[0][0]), "down2": conv(net.down[1][0])}
    out.update({f"block{k + 1}": b for k, b in enumerate(net.blocks)})
    return out


def _tap_modules_unet(net):
    conv = lambda layer: layer[0] if isinstance(layer, nn.Sequential) else layer  # noqa: E731
    out = {"level0": net.down[0]}
    out.update({f"level{i}": conv(d[1]) for i, d in enumerate(net.down) if i > 0})
    return out


def _hooked(net, modules, x):
    seen = {}
    handles = [m.register_forward_hook(lambda mod, inp, out, name=name: seen.setdefault(name, out))
               for name, m in modules.items()]
    try:
        net(x)
    finally:
        for h in handles:
            h.remove()
    return seen


@pytest.mark.parametrize("arch", ["resnet_6blocks", "unet_128"])
def test_encoder_taps_are_the_forward_passs_features_for_every_norm(arch):
    from gennorm.layers.registry import NORMS
    from gennorm.networks import build_generator

    size = 16 if arch.startswith("resnet") else 128  # unet_128 halves 7 times
    for norm in NORMS:
        torch.manual_seed(0)
        net = build_generator(arch, 3, 3, ngf=4, norm=norm).eval()
        x = torch.randn(2, 3, size, size)
        modules = _tap_modules_resnet(net) if arch.startswith("resnet") else _tap_modules_unet(net)
        with torch.no_grad():
            seen = _hooked(net, modules, x)
            feats = net.encode(x, net.taps)
        if arch.startswith("unet"):
            seen["input"] = x
        assert len(feats) == len(net.taps)
        for name, feat in zip(net.taps, feats):
            assert torch.equal(feat, seen[name]), (norm, name)
        with torch.no_grad():  # any order, a subset; stops early (the last block is not needed)
            sub = net.encode(x, list(reversed(net.nce_taps)))
        assert [f.shape for f in sub] == [seen[t].shape for t in reversed(net.nce_taps)]


def test_nce_taps_are_cuts_layers():
    from gennorm.networks import build_generator

    net = build_generator("resnet_9blocks", 3, 3, ngf=4)
    assert net.nce_taps == ("input", "down1", "down2", "block1", "block5")
    shapes = [tuple(f.shape) for f in net.encode(torch.zeros(1, 3, 16, 16), net.nce_taps)]
    assert shapes == [(1, 3, 22, 22), (1, 8, 8, 8), (1, 16, 4, 4), (1, 16, 4, 4), (1, 16, 4, 4)]
    assert build_generator("unet_128", 3, 3, ngf=4).nce_taps == ("input", "level0", "level1", "level2", "level3")
    with pytest.raises(ValueError, match="unknown encoder tap 'block10'.*known taps: input, down1"):
        net.encode(torch.zeros(1, 3, 16, 16), ["block10"])


# ---- 3. the PatchSampleF head ------------------------------------------------------------------


def cut_patch_sample(mlps, feats, patch_ids, safe_norm=False):
    """CUT's PatchSampleF.forward (use_mlp, given patch ids), transcribed: [B*P, nc] per tap.
    safe_norm: |y| by torch.linalg.vector_norm (the same value; gradient 0 instead of NaN at y = 0,
    as gennorm's head: an embedding whose ReLUs are all off, which tiny widths do meet)."""
    out = []
    for feat_id, feat in enumerate(feats):
        feat_reshape = feat.permute(0, 2, 3, 1).flatten(1, 2)
        x_sample = feat_reshape[:, patch_ids[feat_id], :].flatten(0, 1)
        x_sample = mlps[feat_id](x_sample)
        norm = x_sample.pow(2).sum(1, keepdim=True).pow(1.0 / 2)  # Normalize(2)
        if safe_norm:
            norm = torch.linalg.vector_norm(x_sample, dim=1, keepdim=True)
        out.append(x_sample.div(norm + 1e-7))
    return out


def test_patch_sample_f_is_cuts_head():
    from gennorm.networks.patch_sample import PatchSampleF, sample_patch_ids

    torch.manual_seed(0)
    feats = [torch.randn(2, 3, 10, 10), torch.randn(2, 8, 5, 5), torch.randn(2, 16, 2, 3)]
    netF = PatchSampleF(nc=32)
    assert not netF.created and list(netF.parameters()) == []
    ids = sample_patch_ids(feats, 16, torch.Generator().manual_seed(1))
    assert [len(i) for i in ids] == [16, 16, 6] and all(len(set(i.tolist())) == len(i) for i in ids)
    assert all(torch.equal(a, b) for a, b in zip(ids, sample_patch_ids(feats, 16, torch.Generator().manual_seed(1))))
    out = netF(feats, ids)  # the first call creates the MLPs from the feature shapes
    assert netF.options["channels"] == [3, 8, 16]
    assert [tuple(o.shape) for o in out] == [(2, 16, 32), (2, 16, 32), (2, 6, 32)]
    want = cut_patch_sample(netF.mlps, feats, ids)
    for o, w in zip(out, want):
        torch.testing.assert_close(o.reshape(-1, 32), w, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(o.norm(dim=-1), torch.ones(o.shape[:2]), rtol=0, atol=1e-4)  # the 1e-7
    weights = torch.cat([m.weight.flatten() for m in netF.modules() if isinstance(m, nn.Linear)])
    biases = torch.cat([m.bias for m in netF.modules() if isinstance(m, nn.Linear)])
    assert abs(weights.std().item() - 0.02) < 0.002 and abs(weights.mean().item()) < 0.002  # N(0, 0.02)
    assert torch.count_nonzero(biases) == 0
    with pytest.raises(ValueError, match="3 MLPs, got 2 feature maps"):
        netF(feats[:2], ids[:2])
    zero = torch.zeros(2, 3, 10, 10, requires_grad=True)  # y = 0 (zero input, zero biases): a finite gradient
    small = PatchSampleF(nc=4)
    out = small([zero], [ids[0]])[0]
    assert torch.equal(out, torch.zeros_like(out))
    out.sum().backward()
    assert torch.isfinite(zero.grad).all() and all(torch.isfinite(p.grad).all() for p in small.parameters())


# ---- 4. the CUT step against CUTModel's losses ---------------------------------------------------

TINY = ["model.ngf=4", "model.ndf=4", "model.g_arch=resnet_6blocks", "data.load_size=36", "data.crop_size=32",
        "train.device=cpu", "train.progress=false", "train.num_samples=2", "train.log_every=1",
        "train.num_patches=16", "train.netf_nc=64"]


class CUTTranscription:
    """CUTModel's forward, compute_D_loss, compute_G_loss and calculate_NCE_loss, written from
    models/cut_model.py: netG(x, nce_layers, encode_only=True) is G.encode(x, taps) (the taps
    are tested against the forward pass above), netF is cut_patch_sample, PatchNCELoss is
    cut_patchnce_loss, GANLoss('lsgan') is MSE against 1 / 0. np.random draws (the flip coin,
    the patch permutations) come from `gen` in the same order CUT makes them."""

    def __init__(self, netG, netD, netF, taps, opt, gen):
        self.netG, self.netD, self.netF, self.taps, self.opt, self.gen = netG, netD, netF, taps, opt, gen

    def gan(self, pred, real):
        return nn.functional.mse_loss(pred, torch.ones_like(pred) if real else torch.zeros_like(pred))

    def forward(self, real_A, real_B):
        o = self.opt
        self.real_A, self.real_B = real_A, real_B
        self.real = torch.cat((real_A, real_B), dim=0) if o.nce_idt else real_A
        self.flipped_for_equivariance = False
        if o.flip_equivariance:
            self.flipped_for_equivariance = torch.rand((), generator=self.gen).item() < 0.5
            if self.flipped_for_equivariance:
                self.real = torch.flip(self.real, [3])
        self.fake = self.netG(self.real)
        self.fake_B = self.fake[:real_A.size(0)]
        if o.nce_idt:
            self.idt_B = self.fake[real_A.size(0):]

    def compute_D_loss(self):
        self.loss_D_fake = self.gan(self.netD(self.fake_B.detach()), False).mean()
        self.loss_D_real = self.gan(self.netD(self.real_B), True).mean()
        return (self.loss_D_fake + self.loss_D_real) * 0.5

    def compute_G_loss(self):
        o = self.opt
        self.loss_G_GAN = self.gan(self.netD(self.fake_B), True).mean() * o.lambda_gan
        self.loss_NCE = self.calculate_NCE_loss(self.real_A, self.fake_B)
        if o.nce_idt:
            self.loss_NCE_Y = self.calculate_NCE_loss(self.real_B, self.idt_B)
            both = (self.loss_NCE + self.loss_NCE_Y) * 0.5
        else:
            both = self.loss_NCE
        return self.loss_G_GAN + both

    def calculate_NCE_loss(self, src, tgt):
        o = self.opt
        feat_q = self.netG.encode(tgt, self.taps)
        if o.flip_equivariance and self.flipped_for_equivariance:
            feat_q = [torch.flip(fq, [3]) for fq in feat_q]
        feat_k = self.netG.encode(src, self.taps)
        sample_ids = [torch.randperm(f.shape[2] * f.shape[3], generator=self.gen)[:o.num_patches] for f in feat_k]
        feat_k_pool = cut_patch_sample(self.netF.mlps, feat_k, sample_ids, safe_norm=True)
        feat_q_pool = cut_patch_sample(self.netF.mlps, feat_q, sample_ids, safe_norm=True)
        total = 0.0
        for f_q, f_k in zip(feat_q_pool, feat_k_pool):
            total += (cut_patchnce_loss(f_q, f_k, o.nce_t, src.shape[0], o.nce_batch_negatives) * o.lambda_nce).mean()
        return total / len(self.taps)

    def optimize_parameters(self, real_A, real_B, optimizers):
        """CUTModel.optimize_parameters: D's step, then one backward for G and F's steps."""
        opt_G, opt_D, opt_F = optimizers
        self.forward(real_A, real_B)
        for p in self.netD.parameters():
            p.requires_grad_(True)
        opt_D.zero_grad()
        loss_D = self.compute_D_loss()
        loss_D.backward()
        opt_D.step()
        for p in self.netD.parameters():
            p.requires_grad_(False)
        opt_G.zero_grad()
        opt_F.zero_grad()
        loss_G = self.compute_G_loss()
        loss_G.backward()
        opt_G.step()
        opt_F.step()
        for p in self.netD.parameters():
            p.requires_grad_(True)
        out = {"G_GAN": self.loss_G_GAN, "NCE": self.loss_NCE, "D_real": self.loss_D_real, "D_fake": self.loss_D_fake}
        if self.opt.nce_idt:
            out["NCE_Y"] = self.loss_NCE_Y
        return {k: float(v.detach()) for k, v in out.items()}


@pytest.mark.parametrize("preset, extra", [
    ("cut-nc", []),
    ("fastcut-instance", ["train.nce_batch_negatives=true", "train.batch_size=2"]),
    pytest.param("fastcut-kn", ["train.lambda_gan=0.5"], marks=pytest.mark.slow),  # KN's dropout statistics
])
def test_cut_step_is_cutmodels(preset, extra):
    import copy

    from gennorm.config import load_config
    from gennorm.train.cut import CUTTask

    cfg = load_config(preset, TINY + extra)
    torch.manual_seed(0)
    task = CUTTask(cfg, torch.device("cpu"))
    nets = {k: copy.deepcopy(v) for k, v in task.nets.items()}
    t = cfg.train
    adam = lambda net: torch.optim.Adam(net.parameters(), lr=t.lr, betas=(t.beta1, t.beta2))  # noqa: E731
    optimizers = (adam(nets["G"]), adam(nets["D"]), adam(nets["F"]))
    gen = torch.Generator()
    ref = CUTTranscription(nets["G"], nets["D"], nets["F"], task.taps, t, gen)
    g = torch.Generator().manual_seed(3)
    flips = set()
    for step in range(1, 5):  # several steps: both sides of FastCUT's coin, the updated D used by G's loss
        batch = {"A": torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, "B": torch.rand(2, 3, 32, 32, generator=g) * 2 - 1}
        gen.set_state(task.cut_gen.get_state())
        rng = torch.get_rng_state()  # KN's dropout statistics draw from the global generator
        got = task.train_step(batch, step)
        torch.set_rng_state(rng)
        want = ref.optimize_parameters(batch["A"], batch["B"], optimizers)
        flips.add(ref.flipped_for_equivariance)
        assert set(got) == set(want)
        for key in want:
            assert abs(got[key] - want[key]) <= 1e-5 * max(1.0, abs(want[key])), (step, key, got[key], want[key])
        # (the weights are compared through the next steps' losses: Adam's first steps make the
        # ~1e-9 gradients of the biases before an instance norm differ by up to 2 lr, harmlessly)
    if t.flip_equivariance:
        assert flips == {False, True}
    assert task.optims["F"].param_groups[0]["lr"] == task.lr()  # the schedule runs for F too


# ---- 5. runs: train, translate, export -----------------------------------------------------------


def test_tasks_are_the_configs():
    from gennorm.config import ONE_GENERATOR_TASKS, TASKS
    from gennorm.train.loop import TASKS as CLASSES

    assert tuple(CLASSES) == TASKS and set(ONE_GENERATOR_TASKS) <= set(TASKS)
    assert all(CLASSES[t].GENERATORS == ("G",) for t in ONE_GENERATOR_TASKS)


def test_nce_layers_errors_name_the_key():
    from gennorm.config import load_config
    from gennorm.errors import ConfigError
    from gennorm.train.cut import CUTTask

    with pytest.raises(ConfigError, match=r"train.nce_layers.*known taps: input, down1, down2, block1"):
        CUTTask(load_config("cut-nc", TINY + ["train.nce_layers=input,block12"]), torch.device("cpu"))
    with pytest.raises(ConfigError, match="train.nce_t"):
        load_config("cut-nc", ["train.nce_t=0"])
    with pytest.raises(ConfigError, match="model.output_nc.*must equal model.input_nc"):
        load_config("cut-nc", ["model.output_nc=1", "train.nce_idt=false"])
    task = CUTTask(load_config("cut-nc", TINY + ["model.g_arch=unet_128", "train.nce_layers=input, level1"]),
                   torch.device("cpu"))
    assert task.taps == ("input", "level1") and task.nets["F"].options["channels"] == [3, 8]


@pytest.mark.slow
def test_cut_end_to_end(scenes, tmp_path):
    from gennorm.cli import main

    run = tmp_path / "cut"
    assert main(["train", "cut-nc", f"out={run}", f"data.root={scenes / 'unpaired'}", "train.max_steps=2",
                 "train.checkpoint_every=2", "train.sample_every=2", "train.ema=0.9", *TINY]) == 0
    state = torch.load(run / "checkpoints" / "step_00000002.pt", weights_only=True)
    assert set(state["task"]["nets"]) == {"G", "D", "F"} and set(state["task"]["optims"]) == {"G", "D", "F"}
    assert set(state["task"]["ema"]) == {"G"} and "cut_gen" in state["local"][0]["task"]
    import json

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2] and {"G_GAN", "NCE", "NCE_Y", "D_real", "D_fake"} <= set(records[0])
    out = tmp_path / "translated"
    assert main(["translate", str(run), str(scenes / "unpaired" / "testA"), str(out)]) == 0
    assert len(list(out.glob("*.png"))) == len(list((scenes / "unpaired" / "testA").iterdir()))
    assert main(["translate", str(run), str(scenes / "unpaired" / "testB"), str(tmp_path / "b"),
                 "--direction", "BtoA"]) == 2  # one generator: AtoB only
    model = tmp_path / "models" / "cut"
    assert main(["export", str(run), str(model)]) == 0
    card = (model / "card.md").read_text()
    assert "PatchNCE" in card and "lambda_nce 1.0" in card
    out2 = tmp_path / "from_model"
    assert main(["translate", str(model), str(scenes / "unpaired" / "testA"), str(out2)]) == 0
    from PIL import Image

    for p in sorted(out.glob("*.png")):  # the exported EMA generator translates as the run does
        assert Image.open(p).tobytes() == Image.open(out2 / p.name).tobytes()
