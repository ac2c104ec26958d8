"""CUT's antialiased networks (model.antialias, upsample "antialias") and `gennorm import cut`.

The blur layers are checked against their definition written out pixel by pixel (float64) and
by gradcheck; the networks against a from-scratch transcription of CUT's ResnetGenerator and
NLayerDiscriminator (taesungp/contrastive-unpaired-translation, models/networks.py, antialiased
as by default: its layer list, its `filt` buffers, its forward(layers, encode_only)); the
importer on checkpoints saved from that transcription, as CUT saves them (net.state_dict()).
"""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from safetensors import safe_open

import gennorm
from gennorm.cli import main
from gennorm.config import ConfigError, config_from_file, load_config, to_dict
from gennorm.errors import CheckpointError
from gennorm.layers import BlurDownsample, BlurUpsample
from gennorm.layers.registry import NORMS
from gennorm.networks import build_discriminator, build_generator, load_network_state
from gennorm.networks.checkpoint import read_safetensors
from gennorm.networks.factory import build_discriminator_from, build_generator_from
from gennorm.networks.receptive import receptive_field

# ---- 1. the blur layers against their definition -------------------------------------------------

DOWN = torch.tensor([[1., 2., 1.], [2., 4., 2.], [1., 2., 1.]], dtype=torch.float64) / 16


def literal_down(x: torch.Tensor) -> torch.Tensor:
    """out[i, j] = sum_ab DOWN[a, b] x[r(2i + a - 1), r(2j + b - 1)], r reflecting at the border
    (r(-1) = 1, r(H) = H - 2), for i < ceil(H/2): one pixel at a time."""
    N, C, H, W = x.shape
    r = lambda k, n: -k if k < 0 else (2 * (n - 1) - k if k > n - 1 else k)  # noqa: E731
    out = torch.zeros(N, C, (H + 1) // 2, (W + 1) // 2, dtype=torch.float64)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            for a in range(3):
                for b in range(3):
                    out[:, :, i, j] += DOWN[a, b] * x[:, :, r(2 * i + a - 1, H), r(2 * j + b - 1, W)].double()
    return out


def literal_up(x: torch.Tensor) -> torch.Tensor:
    """Per axis, output 2i is 3/4 x[i] + 1/4 x[i - 1] and 2i + 1 is 3/4 x[i] + 1/4 x[i + 1], indices
    clamped to the image (replicate): the [1,3,3,1]/4 filter transposed with stride 2, rows then columns."""
    def axis(t: torch.Tensor, dim: int) -> torch.Tensor:
        n = t.shape[dim]
        parts = []
        for i in range(n):
            here = t.select(dim, i)
            parts += [0.75 * here + 0.25 * t.select(dim, max(i - 1, 0)),
                      0.75 * here + 0.25 * t.select(dim, min(i + 1, n - 1))]
        return torch.stack(parts, dim)
    return axis(axis(x.double(), 2), 3)


def conv_up(x: torch.Tensor) -> torch.Tensor:
    """CUT's Upsample written with the explicit filter: replicate-pad 1, depthwise transposed conv of
    [1,3,3,1]^T [1,3,3,1] / 16 (stride 2, padding 2), crop one pixel on every side."""
    row = torch.tensor([1., 3., 3., 1.], dtype=torch.float64)
    filt = (row[:, None] * row[None, :] / 16).expand(x.shape[1], 1, 4, 4)
    up = F.conv_transpose2d(F.pad(x.double(), (1, 1, 1, 1), mode="replicate"), filt, stride=2, padding=2,
                            groups=x.shape[1])
    return up[:, :, 1:-1, 1:-1]


@pytest.mark.parametrize("size", [(8, 8), (7, 5), (2, 3), (6, 11)])
def test_blur_layers_are_their_definition(size):
    x = torch.randn(2, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    down, up = BlurDownsample(3), BlurUpsample(3)
    torch.testing.assert_close(down(x), literal_down(x), rtol=0, atol=1e-14)
    torch.testing.assert_close(up(x), literal_up(x), rtol=0, atol=1e-14)
    torch.testing.assert_close(up(x), conv_up(x), rtol=0, atol=1e-14)
    H, W = size
    assert down(x).shape == (2, 3, (H + 1) // 2, (W + 1) // 2) and up(x).shape == (2, 3, 2 * H, 2 * W)
    # the filters are CUT's buffers: [C, 1, k, k], saved with the weights, float32 (exact binary fractions)
    assert down.filt.shape == (3, 1, 3, 3) and up.filt.shape == (3, 1, 4, 4)
    assert set(down.state_dict()) == {"filt"} and down.filt.dtype == torch.float32
    assert torch.equal(down.filt[1, 0].double(), DOWN) and float(up.filt[0].sum()) == 4.0
    # float32 and bf16 inputs use the buffer in their own dtype
    assert down(x.float()).dtype == torch.float32 and up(x.bfloat16()).dtype == torch.bfloat16


def test_blur_layers_gradcheck():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(BlurDownsample(2), (x,))
    assert torch.autograd.gradcheck(BlurUpsample(2), (x,))
    assert torch.autograd.gradgradcheck(BlurDownsample(2), (x,))


# ---- 2. CUT's networks, transcribed --------------------------------------------------------------


def _binomial(taps: list[float]) -> torch.Tensor:
    row = torch.tensor(taps)
    filt = row[:, None] * row[None, :]
    return filt / filt.sum()


class CutDownsample(nn.Module):
    """CUT's Downsample(channels) (pad_type reflect, filt_size 3, stride 2)."""

    def __init__(self, channels):
        super().__init__()
        self.register_buffer("filt", _binomial([1., 2., 1.])[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x):
        return F.conv2d(nn.ReflectionPad2d(1)(x), self.filt, stride=2, groups=x.shape[1])


class CutUpsample(nn.Module):
    """CUT's Upsample(channels) (pad_type repl, filt_size 4, stride 2: the filter x stride^2)."""

    def __init__(self, channels):
        super().__init__()
        self.register_buffer("filt", (_binomial([1., 3., 3., 1.]) * 4)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x):
        out = F.conv_transpose2d(nn.ReplicationPad2d(1)(x), self.filt, stride=2, padding=2, groups=x.shape[1])
        return out[:, :, 1:, 1:][:, :, :-1, :-1]  # filt_size even: one more row/column off the end


class CutResnetBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim))

    def forward(self, x):
        return x + self.conv_block(x)


class CutResnetGenerator(nn.Module):
    """CUT's ResnetGenerator with instance norm (use_bias True), reflect padding, no dropout."""

    def __init__(self, input_nc, output_nc, ngf, n_blocks, no_antialias=False, no_antialias_up=False):
        super().__init__()
        norm = nn.InstanceNorm2d
        model = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, padding=0, bias=True), norm(ngf), nn.ReLU(True)]
        for i in range(2):
            mult = 2 ** i
            if no_antialias:
                model += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=True),
                          norm(ngf * mult * 2), nn.ReLU(True)]
            else:
                model += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=1, padding=1, bias=True),
                          norm(ngf * mult * 2), nn.ReLU(True), CutDownsample(ngf * mult * 2)]
        model += [CutResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            if no_antialias_up:
                model += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1,
                                             bias=True), norm(ngf * mult // 2), nn.ReLU(True)]
            else:
                model += [CutUpsample(ngf * mult), nn.Conv2d(ngf * mult, ngf * mult // 2, 3, stride=1, padding=1,
                                                             bias=True), norm(ngf * mult // 2), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x, layers=(), encode_only=False):
        """CUT's forward: with `layers`, the outputs of those indices of self.model (encode_only:
        stop after the last one)."""
        if not layers:
            return self.model(x)
        feats = []
        for layer_id, layer in enumerate(self.model):
            x = layer(x)
            if layer_id in layers:
                feats.append(x)
            if layer_id == layers[-1] and encode_only:
                return feats
        return x, feats


class CutNLayerDiscriminator(nn.Module):
    """CUT's NLayerDiscriminator with instance norm, antialiased (no --no_antialias)."""

    def __init__(self, input_nc, ndf, n_layers=3):
        super().__init__()
        seq = [nn.Conv2d(input_nc, ndf, 4, stride=1, padding=1), nn.LeakyReLU(0.2, True), CutDownsample(ndf)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)
            seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=True), nn.InstanceNorm2d(ndf * mult),
                    nn.LeakyReLU(0.2, True), CutDownsample(ndf * mult)]
        prev, mult = mult, min(2 ** n_layers, 8)
        seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=True), nn.InstanceNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, True), nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x)


def _randomized(net: nn.Module, seed: int) -> nn.Module:
    """Every parameter redrawn (biases too: the import must carry each tensor to its place)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return net.eval()


def _layout(state: dict) -> list[tuple[str, tuple[int, ...]]]:
    return [(k.rpartition(".")[2], tuple(v.shape)) for k, v in state.items()]


def test_resnet9_and_patchgan_have_cuts_layout():
    """cut-classic's G and D: CUT's parameter counts and state dict, tensor for tensor (names aside)."""
    cfg = load_config("cut-classic")
    G, D = build_generator_from(cfg.model, 3, 3), build_discriminator_from(cfg.model, 3)
    cut_g, cut_d = CutResnetGenerator(3, 3, 64, 9), CutNLayerDiscriminator(3, 64)
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(G) == count(cut_g) == 11_378_179 and count(D) == count(cut_d) == 2_764_737
    assert _layout(G.state_dict()) == _layout(cut_g.state_dict())
    assert _layout(D.state_dict()) == _layout(cut_d.state_dict())
    for ours, theirs in ((G, cut_g), (D, cut_d)):  # the filters are CUT's, bit for bit
        pairs = [(v, w) for (k, v), w in zip(ours.state_dict().items(), theirs.state_dict().values())
                 if k.endswith(".filt")]
        assert pairs and all(torch.equal(v, w) for v, w in pairs)
    assert sum(isinstance(m, BlurDownsample) for m in G.modules()) == 2
    assert sum(isinstance(m, BlurUpsample) for m in G.modules()) == 2
    assert sum(isinstance(m, BlurDownsample) for m in D.modules()) == 3
    assert G.options["antialias"] and G.options["upsample"] == "antialias" and D.options["antialias"]


def _ours_from_cut(cut: nn.Module, ours: nn.Module) -> nn.Module:
    """CUT's state dict into ours by position (the layouts are equal): what the importer does."""
    ours.load_state_dict(dict(zip(ours.state_dict(), cut.state_dict().values())))
    return ours.eval()


@pytest.mark.parametrize("no_antialias, no_antialias_up", [(False, False), (False, True), (True, False)])
def test_generator_is_cuts_forward_and_taps(no_antialias, no_antialias_up):
    cut = _randomized(CutResnetGenerator(3, 3, 8, 6, no_antialias, no_antialias_up), 0).double()
    ours = build_generator("resnet_6blocks", 3, 3, 8, "instance", antialias=not no_antialias,
                           upsample="transpose" if no_antialias_up else "antialias")
    ours = _ours_from_cut(cut, ours.double())
    x = torch.randn(2, 3, 32, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), cut(x), rtol=0, atol=1e-12)
        if not no_antialias:  # CUT's nce_layers 0,4,8,12,16 are the roles of nce_taps (its default layout)
            theirs = cut(x, [0, 4, 8, 12, 16], encode_only=True)
            mine = ours.encode(x, ours.nce_taps)
            assert [tuple(t.shape) for t in mine] == [(2, 3, 38, 30), (2, 16, 32, 24), (2, 32, 16, 12),
                                                      (2, 32, 8, 6), (2, 32, 8, 6)]
            for a, b in zip(mine, theirs):
                torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_discriminator_is_cuts():
    cut = _randomized(CutNLayerDiscriminator(3, 8), 1).double()
    ours = _ours_from_cut(cut, build_discriminator("basic", 3, 8, norm="instance", antialias=True).double())
    x = torch.randn(2, 3, 64, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = ours(x)
        torch.testing.assert_close(out, cut(x), rtol=0, atol=1e-12)
    plain = build_discriminator("basic", 3, 8, norm="instance")  # the same map size as the strided PatchGAN
    assert out.shape == plain(x.float()).shape == (2, 1, 6, 3)


@pytest.mark.parametrize("norm", list(NORMS))
def test_every_norm_antialiases_and_taps_what_forward_computes(norm):
    torch.manual_seed(0)
    net = build_generator("resnet_6blocks", 3, 3, ngf=4, norm=norm, antialias=True, upsample="antialias").eval()
    D = build_discriminator("basic", 3, 4, norm=norm, antialias=True).eval()
    x = torch.randn(2, 3, 16, 16)
    seen = {}
    conv = lambda layer: layer[0] if isinstance(layer, nn.Sequential) else layer  # noqa: E731
    modules = {"input": net.stem[0], "down1": conv(net.down[0][0]), "down2": conv(net.down[1][0]),
               **{f"block{k + 1}": b for k, b in enumerate(net.blocks)}}
    hooks = [m.register_forward_hook(lambda mod, i, out, name=name: seen.setdefault(name, out))
             for name, m in modules.items()]
    with torch.no_grad():
        y = net(x)
        for h in hooks:
            h.remove()
        feats = net.encode(x, net.taps)
        assert D(torch.randn(1, 3, 32, 32)).shape == (1, 1, 2, 2)  # 32 -> 16 -> 8 -> 4 -> 3 -> 2
    assert y.shape == x.shape and torch.isfinite(y).all()
    for name, feat in zip(net.taps, feats):
        assert torch.equal(feat, seen[name]), (norm, name)
    assert feats[1].shape == (2, 8, 16, 16) and feats[2].shape == (2, 16, 8, 8)  # before the blur


def test_receptive_field_counts_the_blurs():
    """The receptive field computed from the architecture is where the gradient of one output
    pixel reaches (NC: local statistics, so nothing else does)."""
    torch.manual_seed(0)
    net = build_generator("resnet_6blocks", 1, 1, ngf=2, norm="nc", antialias=True, upsample="antialias")
    size = 256  # wider than the receptive field
    x = torch.randn(1, 1, size, size, requires_grad=True)
    net(x)[0, 0, size // 2, size // 2].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()
    reach = int(rows.max() - rows.min()) + 1
    rf = receptive_field(net, 1, size)
    plain = receptive_field(build_generator("resnet_6blocks", 1, 1, ngf=2, norm="nc"), 1, size)
    assert (reach, rf, plain) == (135, 136, 121)  # an upper bound, one pixel over; the blurs count


# ---- 3. configs and model folders ------------------------------------------------------------------


def test_presets_and_defaults():
    for name in ("cut-classic", "fastcut-classic"):
        m = load_config(name).model
        assert (m.antialias, m.upsample) == (True, "antialias")
    for name in ("cut-instance", "fastcut-nc", "cyclegan-classic", "pix2pix-nc", "cut-kn"):
        assert load_config(name).model.antialias is False
    with pytest.raises(ConfigError, match="model.antialias.*unet_256"):
        load_config("cut-instance", ["model.g_arch=unet_256", "model.antialias=true"])
    with pytest.raises(ConfigError, match="model.antialias.*expected bool"):
        load_config("cut-instance", ["model.antialias=3"])
    with pytest.raises(ConfigError, match="unknown upsample 'blur'.*resize, transpose, antialias"):
        build_generator_from(load_config("cut-instance", ["model.upsample=blur"]).model, 3, 3)


def test_a_folder_without_the_key_is_not_antialiased(tmp_path):
    data = to_dict(load_config("cut-instance"))
    del data["model"]["antialias"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    assert config_from_file(path).model.antialias is False


def test_saved_options_name_antialias():
    torch.manual_seed(0)
    aa = build_generator("resnet_6blocks", ngf=4, antialias=True)
    plain = build_generator("resnet_6blocks", ngf=4)
    assert aa.options["antialias"] is True and plain.options["antialias"] is False
    with pytest.raises(CheckpointError, match="antialias=True.*antialias=False"):
        load_network_state(plain, aa.state_dict(), aa.options)
    old = {k: v for k, v in plain.options.items() if k != "antialias"}  # a file older than the key
    load_network_state(build_generator("resnet_6blocks", ngf=4), plain.state_dict(), old)
    with pytest.raises(CheckpointError, match="missing key"):
        load_network_state(build_generator("resnet_6blocks", ngf=4, antialias=True), plain.state_dict(), old)


# ---- 4. gennorm import cut ----------------------------------------------------------------------------


def _cut_checkpoint(path, seed=0, **flags):
    net = _randomized(CutResnetGenerator(3, 3, 8, 6, **flags), seed)
    torch.save(net.state_dict(), path)
    return net


@pytest.mark.parametrize("flags", [{}, {"no_antialias_up": True}, {"no_antialias": True}])
def test_import_cut_gives_cuts_outputs(tmp_path, capsys, flags):
    net = _cut_checkpoint(tmp_path / "latest_net_G.pth", **flags)
    out = tmp_path / "model"
    assert main(["import", "cut", str(tmp_path / "latest_net_G.pth"), str(out)]) == 0
    said = capsys.readouterr().err
    antialias, upsample = not flags.get("no_antialias"), "transpose" if flags.get("no_antialias_up") else "antialias"
    assert f"antialias {antialias}, upsample {upsample}" in said and "resnet_6blocks" in said
    cfg = config_from_file(out / "config.yaml")
    assert (cfg.model.antialias, cfg.model.upsample, cfg.train.task) == (antialias, upsample, "cut")
    with safe_open(str(out / "generator.safetensors"), "pt") as f:
        assert json.loads(f.metadata()["options"])["antialias"] is antialias
    assert "contrastive-unpaired-translation" in (out / "card.md").read_text()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.no_grad():
        want = net(x)
    torch.testing.assert_close(gennorm.load(out)(x), want, rtol=0, atol=1e-5)


def test_import_cut_with_its_discriminator(tmp_path):
    folder = tmp_path / "checkpoints" / "h2z_cut"  # CUT's checkpoints/NAME: latest_net_G.pth, latest_net_D.pth
    folder.mkdir(parents=True)
    _cut_checkpoint(folder / "latest_net_G.pth")
    d = _randomized(CutNLayerDiscriminator(3, 8), 4)
    torch.save(d.state_dict(), folder / "latest_net_D.pth")
    out = tmp_path / "model"
    assert main(["import", "cut", str(folder), str(out), "--netD", "basic"]) == 0
    cfg = config_from_file(out / "config.yaml")
    ours = build_discriminator_from(cfg.model, 3)
    load_network_state(ours, read_safetensors(out / "discriminator.safetensors")[0])
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), d(x), rtol=0, atol=1e-5)


def _one_line_error(capsys, *args) -> str:
    assert main(["import", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_import_errors_are_one_line(tmp_path, capsys):
    path = tmp_path / "latest_net_G.pth"
    _cut_checkpoint(path)
    err = _one_line_error(capsys, "junyanz", str(path), str(tmp_path / "a"))
    assert "blur-pooling buffers" in err and "gennorm import cut" in err and str(path) in err
    state = torch.load(path, weights_only=True)
    state["model.7.filt"] = state["model.7.filt"] * 2  # not CUT's filter
    torch.save(state, tmp_path / "bad.pth")
    err = _one_line_error(capsys, "cut", str(tmp_path / "bad.pth"), str(tmp_path / "b"))
    assert "model.7.filt" in err and "not the fixed binomial blur filter" in err
    state = torch.load(path, weights_only=True)
    state["model.13.filt"] = state["model.7.filt"]  # inside the residual blocks
    torch.save(state, tmp_path / "odd.pth")
    err = _one_line_error(capsys, "cut", str(tmp_path / "odd.pth"), str(tmp_path / "c"))
    assert "model.13.filt: a blur filter where CUT's ResnetGenerator has none" in err
    err = _one_line_error(capsys, "cut", str(path), str(tmp_path / "d"), "--ngf", "16")
    assert "does not fit" in err
    torch.save(_randomized(CutNLayerDiscriminator(3, 8), 4).state_dict(), tmp_path / "D.pth")
    plain = tmp_path / "plain"
    plain.mkdir()
    torch.save(_randomized(CutResnetGenerator(3, 3, 8, 6, True, True), 0).state_dict(), plain / "latest_net_G.pth")
    err = _one_line_error(capsys, "cut", str(plain), str(tmp_path / "e"), "--checkpoint_D", str(tmp_path / "D.pth"))
    assert "model.antialias is one key for G and D" in err
    for name in "abcde":
        assert not (tmp_path / name).exists()


def test_cut_classic_trains_a_step():
    """cut-classic (antialiased G and D) through CUTTask: PatchNCE on the full-resolution down1 tap."""
    from gennorm.train.cut import CUTTask

    cfg = load_config("cut-classic", ["model.ngf=4", "model.ndf=4", "model.g_arch=resnet_6blocks", "data.load_size=36",
                                      "data.crop_size=32", "train.device=cpu", "train.progress=false",
                                      "train.num_patches=16", "train.netf_nc=16"])
    torch.manual_seed(0)
    task = CUTTask(cfg, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    batch = {k: torch.rand(1, 3, 32, 32, generator=g) * 2 - 1 for k in "AB"}
    losses = task.train_step(batch, 1)
    assert {"G_GAN", "NCE", "NCE_Y", "D_real", "D_fake"} <= set(losses)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert task.nets["G"].options["antialias"] and task.nets["D"].options["antialias"]


def test_nets_summary_shows_the_blurs(capsys):
    assert main(["nets", "summary", "resnet_6blocks", "--antialias", "--upsample", "antialias", "--size", "32",
                 "--ngf", "4"]) == 0
    out = capsys.readouterr().out
    assert "upsample=antialias" in out and "antialias=True" in out and "BlurDownsample" in out and "BlurUpsample" in out
    assert main(["nets", "summary", "basic", "--antialias", "--ndf", "4", "--size", "64", "--no-memory"]) == 0
    assert capsys.readouterr().out.count("BlurDownsample") == 3
