"""The metric networks' weight files: which file each metric needs, where it is looked for,
and whether the file on disk is the official one. Nothing here downloads implicitly.

Why a registry: torchmetrics and torch-fidelity fetch weights on first use, so offline they die
with a bare URLError deep inside a constructor. We check presence first and construct the
networks from local files, so a missing file is one `MissingWeightsError` naming it and the
folder to put it in.

Where a file is looked for, in order: `--weights-dir` (the `weights_dir` argument), the
`GENNORM_WEIGHTS` environment variable, then the torch hub cache
(`torch.hub.get_dir()/checkpoints`, i.e. `~/.cache/torch/hub/checkpoints` unless `TORCH_HOME`
is set). The LPIPS linear heads ship inside the torchmetrics wheel
(`torchmetrics/functional/image/lpips_models/{alex,vgg,squeeze}.pth`, byte-identical to
richzhang/PerceptualSimilarity `lpips/weights/v0.1/*.pth`), so they are found there.

Checksums: torchvision and torch-fidelity embed the first 8 hex digits of the file's sha256 in
its name (the torch hub convention); the full sha256 and byte sizes below are the published
values for the official files (cross-checked against those prefixes). A file is "verified" when
its size and full sha256 match.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch.hub

from gennorm.errors import ConfigError, GennormError, MissingWeightsError


@dataclass(frozen=True)
class WeightFile:
    key: str            # short name: "inception", "alexnet", ...
    filename: str       # exact file name looked for
    url: str            # official download URL ("" for files that ship in a package)
    size: int           # bytes
    sha256: str         # full sha256 of the official file
    used_by: tuple[str, ...]  # metric names that need it
    bundled: str = ""   # "torchmetrics" when the file ships inside that package


WEIGHT_FILES: dict[str, WeightFile] = {w.key: w for w in (
    WeightFile("inception", "weights-inception-2015-12-05-6726825d.pth",
               "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
               "weights-inception-2015-12-05-6726825d.pth",
               95_628_359, "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2", ("fid", "kid")),
    WeightFile("alexnet", "alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
               244_408_911, "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02", ("lpips",)),
    WeightFile("vgg16", "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
               553_433_881, "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0", ("lpips-vgg",)),
    WeightFile("squeezenet1_1", "squeezenet1_1-b8a52dc0.pth",
               "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
               4_958_839, "b8a52dc049b60e4b6ab68ad0df457362afab8b6304b2febdc1650a5dab4d7e7b", ("lpips-squeeze",)),
    WeightFile("lpips_alex", "alex.pth", "", 6_009,
               "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0", ("lpips",), "torchmetrics"),
    WeightFile("lpips_vgg", "vgg.pth", "", 7_289,
               "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868", ("lpips-vgg",), "torchmetrics"),
    WeightFile("lpips_squeeze", "squeeze.pth", "", 10_811,
               "4a5350f23600cb79923ce65bb07cbf57dca461329894153e05a1346bd531cf76", ("lpips-squeeze",), "torchmetrics"),
)}


def files_for(metric: str) -> list[WeightFile]:
    """The weight files `metric` needs ([] for psnr/ssim)."""
    return [w for w in WEIGHT_FILES.values() if metric in w.used_by]


def search_dirs(weights_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for downloadable weights, first match wins (see module doc)."""
    dirs: list[Path] = []
    if weights_dir:
        dirs.append(Path(weights_dir).expanduser())
    env = os.environ.get("GENNORM_WEIGHTS")
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(Path(torch.hub.get_dir()) / "checkpoints")
    return list(dict.fromkeys(dirs))  # de-duplicated, order kept


def _bundled_dir(package: str) -> Path:
    if package == "torchmetrics":
        import torchmetrics.functional.image.lpips as tm_lpips  # lazy: absent on the GPU image

        return Path(tm_lpips.__file__).parent / "lpips_models"
    raise ValueError(f"unknown bundling package {package!r}")


def locate(w: WeightFile, weights_dir: str | os.PathLike | None = None) -> Path | None:
    """Path of the first existing copy of `w`, or None."""
    dirs = [_bundled_dir(w.bundled)] if w.bundled else search_dirs(weights_dir)
    for d in dirs:
        path = d / w.filename
        if path.is_file():
            return path
    return None


_HASHES: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, per process


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (memoised per process on path, size and mtime)."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def is_official(w: WeightFile, path: str | os.PathLike) -> bool:
    """True when the file's size and full sha256 are the official ones."""
    return os.path.getsize(path) == w.size and sha256_of(path) == w.sha256


def _where_to_put(w: WeightFile, weights_dir) -> str:
    if w.bundled:
        return f"it ships with the {w.bundled} package (reinstall it: pip install --force-reinstall {w.bundled})"
    dirs = search_dirs(weights_dir)
    return (f"put it in {dirs[0]} (looked in: {', '.join(map(str, dirs))}); "
            f"download it from {w.url} or run `gennorm weights fetch`")


def require(metric: str, weights_dir=None, verify: bool = True) -> dict[str, dict]:
    """Check every file `metric` needs; return {key: {"file", "sha256", "verified"}}.

    Raises `MissingWeightsError` naming the file and where to put it when one is missing, or
    (with `verify`) when a present file is not the official one.
    """
    used: dict[str, dict] = {}
    for w in files_for(metric):
        path = locate(w, weights_dir)
        if path is None:
            raise MissingWeightsError(f"{metric} needs the weight file {w.filename}, which is not on disk; "
                                      + _where_to_put(w, weights_dir))
        official = is_official(w, path)
        if verify and not official:
            raise MissingWeightsError(
                f"{path} is not the official {w.filename} (expected {w.size} bytes, sha256 {w.sha256}); "
                f"delete it and run `gennorm weights fetch`, or pass --no-verify-weights to use it anyway")
        used[w.key] = {"file": str(path), "sha256": sha256_of(path), "verified": official}
    return used


def status(weights_dir=None, verify: bool = True) -> list[dict]:
    """One row per weight file: name, size, sha256, used_by, path (or None), present, verified."""
    rows = []
    for w in WEIGHT_FILES.values():
        path = locate(w, weights_dir)
        rows.append({
            "key": w.key, "file": w.filename, "size": w.size, "sha256": w.sha256, "url": w.url,
            "used_by": list(w.used_by), "bundled": w.bundled or None,
            "path": str(path) if path else None, "present": path is not None,
            "verified": (is_official(w, path) if (path and verify) else None),
            "looked_in": [str(_bundled_dir(w.bundled))] if w.bundled else [str(d) for d in search_dirs(weights_dir)],
        })
    return rows


def status_table(rows: list[dict], weights_dir=None) -> str:
    """`gennorm weights status`'s text: where it searched, one line per file, what to do about missing ones."""
    lines = [f"searched: {', '.join(map(str, search_dirs(weights_dir)))}"]
    for r in rows:
        state = "missing" if not r["present"] else (
            "present" if r["verified"] is None else ("verified" if r["verified"] else "CHECKSUM MISMATCH"))
        lines.append(f"{state:<17} {r['file']:<44} {r['size'] / 1e6:8.2f} MB  for {','.join(r['used_by']):<14} "
                     f"sha256 {r['sha256'][:16]}...  {r['path'] or ''}")
    missing = [r for r in rows if not r["present"]]
    if missing:
        lines.append(f"{len(missing)} missing: run `gennorm weights fetch` when online, or copy the files into "
                     f"{search_dirs(weights_dir)[0]} (psnr and ssim need none)")
    return "\n".join(lines)


def parse_keys(only: str | None) -> set[str] | None:
    """--only's comma list of weight file keys (None: all); `ConfigError` for a key fetch cannot get."""
    if not only:
        return None
    keys = {k.strip() for k in only.split(",") if k.strip()}
    unknown = keys - {k for k, w in WEIGHT_FILES.items() if not w.bundled}
    if unknown:
        raise ConfigError(f"--only: unknown weight file key(s) {', '.join(sorted(unknown))}")
    return keys


def fetch(keys=None, weights_dir=None, progress=print) -> list[Path]:
    """Download missing (or non-official) files to the first search folder, verifying sha256.

    Raises `GennormError` (exit 2) when offline or when a download does not match its checksum.
    """
    target = search_dirs(weights_dir)[0]
    done = []
    for w in WEIGHT_FILES.values():
        if w.bundled or (keys and w.key not in keys):
            continue
        path = locate(w, weights_dir)
        if path is not None and is_official(w, path):
            progress(f"ok       {w.filename}  ({path})")
            continue
        progress(f"fetching {w.filename}  ({w.size / 1e6:.1f} MB) -> {target}")
        done.append(_download(w, target))
    return done


def _download(w: WeightFile, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{w.filename}.", dir=target)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(w.url, timeout=30) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if h.hexdigest() != w.sha256:
            raise GennormError(f"downloaded {w.filename} from {w.url} but its sha256 is {h.hexdigest()}, "
                               f"expected {w.sha256}; not installed")
        os.replace(tmp, target / w.filename)
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise GennormError(f"cannot download {w.filename} from {w.url} ({getattr(err, 'reason', err)}); "
                           f"offline? copy the file into {target} by hand") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target / w.filename
