"""The FID/KID protocols against the reference packages' own code, on the same images.

clean  = clean-fid's mode "clean" (cleanfid.resize.build_resizer + ResizeDataset + InceptionV3W)
legacy = pytorch-fid (its ImagePathDataset, InceptionV3(resize_input, normalize_input), its FID)
gennorm = torchmetrics' antialias=True path (checked in test_metrics.py)

Preprocessing is compared on the network input; end to end, each reference package computes FID
(and clean-fid KID) from the same folders with a locally made weight file of the real
architecture (tests/metric_weights.py: random values, nothing downloaded): pytorch-fid reads it
from its torch hub cache path, clean-fid through a TorchScript of it saved where its
InceptionV3W loads from.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gennorm.errors import ConfigError
from gennorm.metrics import evaluate_folders, evaluate_tensors, inception
from gennorm.metrics.protocols import PROTOCOLS

from metric_weights import INCEPTION, write_random_metric_weights

cleanfid = pytest.importorskip("cleanfid")
pytorch_fid = pytest.importorskip("pytorch_fid")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("GENNORM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("GENNORM_WEIGHTS", raising=False)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    return write_random_metric_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """Two folders of 10 textured 48x64 RGB PNGs (not 299: the resize matters), different colours."""
    root = tmp_path_factory.mktemp("fid_images")
    for name, seed, shift in (("real", 0, 0), ("fake", 1, 40)):
        g = np.random.default_rng(seed)
        (root / name).mkdir()
        for i in range(10):
            base = g.uniform(shift, 255 - shift, (6, 8, 3)).astype(np.uint8)
            img = np.asarray(Image.fromarray(base).resize((64, 48), Image.BICUBIC), dtype=np.float64)
            img = np.clip(img + g.normal(0, 25, img.shape), 0, 255).astype(np.uint8)  # high frequencies too
            Image.fromarray(img).save(root / name / f"{i:04d}.png")
    return root / "real", root / "fake"


def _images(seed: int, shapes) -> list[np.ndarray]:
    g = np.random.default_rng(seed)
    return [g.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]


SHAPES = [(48, 64), (299, 299), (17, 5), (400, 320)]  # down, same, up (odd), down


# ---------------------------------------------------------------- preprocessing, image by image

def test_clean_preprocessing_is_clean_fid_resize_bit_for_bit():
    from cleanfid.resize import build_resizer
    from torchvision.transforms import ToTensor

    resize = build_resizer("clean")
    for img in _images(0, SHAPES):
        theirs = ToTensor()(resize(img))  # float32 [3, 299, 299] in [0, 255], as clean-fid's ResizeDataset
        ours = inception.preprocess([torch.from_numpy(img).permute(2, 0, 1)], "clean")[0]
        assert torch.equal(ours, (theirs - 128) / 128)  # InceptionV3W's normalization


def test_clean_quantizes_float_inputs_to_8_bits_first():
    img = torch.from_numpy(_images(1, [(20, 30)])[0]).permute(2, 0, 1)
    jittered = img.float() + torch.empty(img.shape).uniform_(-0.45, 0.45, generator=torch.Generator().manual_seed(0))
    assert torch.equal(inception.preprocess([jittered], "clean"), inception.preprocess([img], "clean"))
    assert not torch.equal(inception.preprocess([jittered], "legacy"), inception.preprocess([img], "legacy"))
    # out of [0, 255] (a generator's output rescaled): clamped to the 8-bit range, never wrapped around
    beyond = img.float().clone()
    beyond[:, :4], beyond[:, -4:] = -0.6, 255.6
    clipped = img.clone()
    clipped[:, :4], clipped[:, -4:] = 0, 255
    assert torch.equal(inception.preprocess([beyond], "clean"), inception.preprocess([clipped], "clean"))


def test_legacy_preprocessing_is_pytorch_fid_network_input(tmp_path, weights_dir):
    """pytorch-fid's own reading (ImagePathDataset + ToTensor) and InceptionV3.forward's resize and
    normalization, captured at the input of its first block."""
    import torchvision.transforms as TF
    from pytorch_fid.fid_score import ImagePathDataset
    from pytorch_fid.inception import InceptionV3

    net = _pytorch_fid_inception(weights_dir, tmp_path)
    seen = []
    net.blocks[0].register_forward_pre_hook(lambda mod, args: seen.append(args[0].clone()))
    for i, img in enumerate(_images(2, SHAPES)):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        x = ImagePathDataset([tmp_path / f"{i}.png"], transforms=TF.ToTensor())[0]
        with torch.no_grad():
            net(x[None])
        ours = inception.preprocess([torch.from_numpy(img).permute(2, 0, 1)], "legacy")
        torch.testing.assert_close(ours, seen[-1], rtol=0, atol=2e-7)  # x/255 vs ToTensor's division
    assert isinstance(net, InceptionV3)


def test_the_three_protocols_give_different_network_inputs():
    up, down = ([torch.from_numpy(i).permute(2, 0, 1)] for i in _images(3, [(48, 64), (400, 320)]))
    a, b, c = (inception.preprocess(down, p) for p in ("clean", "legacy", "gennorm"))
    assert (a - b).abs().max() > 0.05 and (a - c).abs().max() > 0.05 and (b - c).abs().max() > 0.05
    # upsampling: bilinear with or without antialias is the same; only the normalizations differ
    b, c = (inception.preprocess(up, p) for p in ("legacy", "gennorm"))
    torch.testing.assert_close((b + 1) * 127.5, c * 128 + 128, rtol=0, atol=1e-3)  # on [0, 255]


def test_unknown_protocol_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError, match="unknown FID protocol 'tf'; choose from clean, legacy, gennorm"):
        inception.preprocess([torch.zeros(3, 8, 8, dtype=torch.uint8)], "tf")
    with pytest.raises(ConfigError, match="unknown FID protocol"):
        evaluate_tensors(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8), ("psnr",), protocol="Clean")


# ---------------------------------------------------------------- end to end against the packages

def _pytorch_fid_inception(weights_dir: Path, tmp_path: Path):
    """pytorch-fid's InceptionV3 loading our local file from its own hub cache path (no download:
    torch.hub finds the file; pytorch-fid's weight file and torch-fidelity's are the same file)."""
    from pytorch_fid.inception import FID_WEIGHTS_URL, InceptionV3

    hub = Path(torch.hub.get_dir()) / "checkpoints"
    hub.mkdir(parents=True, exist_ok=True)
    (hub / FID_WEIGHTS_URL.rsplit("/", 1)[1]).write_bytes((weights_dir / INCEPTION).read_bytes())
    return InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()


def _clean_fid_model(weights_dir: Path, folder: Path):
    """clean-fid's InceptionV3W on a TorchScript of the real architecture with our local weights,
    saved as the inception-2015-12-05.pt that InceptionV3W loads (it calls `.layers` on it)."""
    from cleanfid.inception_torchscript import InceptionV3W

    net = inception.load_inception(weights_dir / INCEPTION)

    class Layers(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):  # [N, 3, 299, 299] in [-1, 1] -> [N, 2048]
            for name in inception.LAYERS:
                x = getattr(self.net, name)(x)
            return torch.flatten(x, 1)

    class Base(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = Layers()

        def forward(self, x):
            return self.layers(x)

    folder.mkdir(parents=True, exist_ok=True)
    traced = torch.jit.trace(Base().eval(), torch.zeros(1, 3, 299, 299), check_trace=False)
    traced.save(str(folder / "inception-2015-12-05.pt"))
    return InceptionV3W(str(folder), download=False).eval()


def _ours(folders, weights_dir, protocol, metrics=("fid",)):
    with warnings.catch_warnings():  # few images: the FID bias and KID subset-size warnings
        warnings.simplefilter("ignore")
        return evaluate_folders(*folders, metrics=metrics, weights_dir=weights_dir, verify_weights=False,
                                protocol=protocol, use_cache=False, progress=False)


def test_legacy_fid_equals_pytorch_fid_end_to_end(folders, weights_dir, tmp_path):
    from pytorch_fid.fid_score import calculate_fid_given_paths

    _pytorch_fid_inception(weights_dir, tmp_path)  # puts the file where pytorch-fid looks
    theirs = calculate_fid_given_paths([str(p) for p in folders], batch_size=10, device="cpu", dims=2048,
                                       num_workers=0)
    ours = _ours(folders, weights_dir, "legacy")
    assert ours["protocol"]["name"] == "legacy" and ours["protocol"]["inception"] == PROTOCOLS["legacy"]
    # scipy's sqrtm of the rank-9 product (10 images, 2048-d) against our exact nuclear norm
    assert ours["metrics"]["fid"] == pytest.approx(theirs, rel=1e-3)


def test_clean_fid_and_kid_equal_clean_fid_end_to_end(folders, weights_dir, tmp_path):
    from cleanfid import fid

    model = _clean_fid_model(weights_dir, tmp_path / "cleanfid")
    feats = [fid.get_folder_features(str(p), model, num_workers=0, batch_size=10, device=torch.device("cpu"),
                                     mode="clean", verbose=False) for p in folders]
    theirs_fid = fid.compare_folders(*[str(p) for p in folders], feat_model=model, mode="clean", num_workers=0,
                                     batch_size=10, device=torch.device("cpu"), verbose=False)
    # subsets as large as the sets: every subset is a permutation of all images, so the draws agree
    theirs_kid = fid.kernel_distance(feats[0], feats[1], num_subsets=3, max_subset_size=10)
    ours = _ours(folders, weights_dir, "clean", ("fid", "kid"))
    assert ours["protocol"]["name"] == "clean"
    assert ours["metrics"]["fid"] == pytest.approx(theirs_fid, rel=1e-3)
    assert ours["metrics"]["kid"] == pytest.approx(theirs_kid, rel=1e-4)
    assert ours["metrics"]["kid_subset_size"] == 10 and ours["metrics"]["kid_subsets"] == 100


def test_fid_depends_on_the_protocol_and_the_cache_keeps_them_apart(folders, weights_dir, monkeypatch, tmp_path):
    kw = dict(metrics=("fid",), weights_dir=weights_dir, verify_weights=False, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fids = {p: evaluate_folders(*folders, protocol=p, **kw) for p in PROTOCOLS}
        again = evaluate_folders(*folders, protocol="legacy", **kw)
    values = [r["metrics"]["fid"] for r in fids.values()]
    assert min(abs(a - b) for i, a in enumerate(values) for b in values[i + 1:]) > 1e-4 * max(values)
    assert [r["cache"]["real_features"] for r in fids.values()] == ["miss"] * 3  # one cache entry per protocol
    assert again["cache"]["real_features"] == "hit" and again["metrics"]["fid"] == fids["legacy"]["metrics"]["fid"]


def test_eval_cli_records_the_protocol_in_table_and_json(folders, weights_dir, tmp_path, capsys):
    import json

    from gennorm.cli import main

    out = tmp_path / "m.json"
    code = main(["eval", *map(str, folders), "--metrics", "fid", "--protocol", "legacy", "--weights-dir",
                 str(weights_dir), "--no-verify-weights", "--json", str(out), "--quiet"])
    assert code == 0
    text = capsys.readouterr().out
    assert "FID/KID protocol: legacy (pytorch-fid" in text
    assert json.loads(out.read_text())["protocol"]["name"] == "legacy"
    with pytest.raises(SystemExit) as stop:  # argparse's one-line usage error, exit status 2
        main(["eval", *map(str, folders), "--protocol", "tf"])
    assert stop.value.code == 2 and "invalid choice: 'tf'" in capsys.readouterr().err
