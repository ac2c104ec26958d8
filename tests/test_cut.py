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


def cut_patch_sample(mlps, feats, patch_ids):
    """CUT's PatchSampleF.forward (use_mlp, given patch ids), transcribed: [B*P, nc] per tap."""
    out = []
    for feat_id, feat in enumerate(feats):
        feat_reshape = feat.permute(0, 2, 3, 1).flatten(1, 2)
        x_sample = feat_reshape[:, patch_ids[feat_id], :].flatten(0, 1)
        x_sample = mlps[feat_id](x_sample)
        norm = x_sample.pow(2).sum(1, keepdim=True).pow(1.0 / 2)  # Normalize(2)
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
        torch.testing.assert_close(o.reshape(-1, 32), w, rtol=0, atol=0)
        torch.testing.assert_close(o.norm(dim=-1), torch.ones(o.shape[:2]), rtol=0, atol=1e-4)  # the 1e-7
    weights = torch.cat([m.weight.flatten() for m in netF.modules() if isinstance(m, nn.Linear)])
    biases = torch.cat([m.bias for m in netF.modules() if isinstance(m, nn.Linear)])
    assert abs(weights.std().item() - 0.02) < 0.002 and abs(weights.mean().item()) < 0.002  # N(0, 0.02)
    assert torch.count_nonzero(biases) == 0
    with pytest.raises(ValueError, match="3 MLPs, got 2 feature maps"):
        netF(feats[:2], ids[:2])
