"""The standard pix2pix / CycleGAN / CUT datasets in one command: `gennorm data fetch NAME [ROOT]`.

REGISTRY is the one list (name -> url, kind, layout, approximate size, source); `--list` prints it.
A fetch never leaves a half-made dataset:

    ROOT/NAME.EXT.partial      the download so far; a rerun continues it with an HTTP Range request
    ROOT/.NAME.partial-PID-x   the extraction, checked for its layout, then renamed to ROOT/NAME
    ROOT/NAME/SOURCE.json      url, sha256 and bytes of the archive, date of the fetch

The URLs are those of the projects' own scripts (pytorch-CycleGAN-and-pix2pix's
datasets/download_{pix2pix,cyclegan}_dataset.sh, CUT's datasets/download_cut_dataset.sh).
`mirror` (or GENNORM_DATA_MIRROR) replaces scheme and host, keeping the path: a mirror holds
/pix2pix/datasets/facades.tar.gz, /cyclegan/datasets/horse2zebra.zip, ... Extraction refuses
absolute paths, `..`, links and device files, so an archive writes only inside its folder.
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import gzip
import hashlib
import os
import shutil
import stat
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gennorm.atomic import atomic_write_json, writer_tag
from gennorm.data.images import is_image_file
from gennorm.errors import DataError

MIRROR_ENV = "GENNORM_DATA_MIRROR"
PIX2PIX = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{}.tar.gz"
CYCLEGAN = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{}.zip"
CUT = "https://people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets/{}.zip"  # CUT's script
PAIRED_LAYOUT = "train/ val/ (test/): A|B side by side (mode 'aligned')"
UNPAIRED_LAYOUT = "trainA/ trainB/ testA/ testB/ (mode 'unaligned')"
CITYSCAPES = ("Cityscapes cannot be redistributed: download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip "
              "from https://www.cityscapes-dataset.com, build the {layout} layout with "
              "pytorch-CycleGAN-and-pix2pix's datasets/prepare_cityscapes_dataset.py, pack it as .tar.gz or .zip "
              "and pass it with --archive FILE")
CHUNK = 1 << 16


@dataclass(frozen=True)
class Dataset:
    name: str
    url: str | None     # None: no public archive (cityscapes), only --archive
    kind: str           # "paired" | "unpaired" | "test images"
    size: str           # approximate archive size
    source: str         # where the images come from, and their terms
    archive_name: str   # the archive's file name on the host

    @property
    def layout(self) -> str:
        return {"paired": PAIRED_LAYOUT, "unpaired": UNPAIRED_LAYOUT}.get(self.kind, "a folder of images")


def _pix2pix(name, size, source, url=True):
    return Dataset(name, PIX2PIX.format(name) if url else None, "paired", size, source, f"{name}.tar.gz")


def _cyclegan(name, size, source, key=None, url=True, kind="unpaired", base=CYCLEGAN):
    return Dataset(key or name, base.format(name) if url else None, kind, size, source, f"{name}.zip")


RESEARCH = "research use; check the original images' terms"
REGISTRY: dict[str, Dataset] = {d.name: d for d in [
    _pix2pix("facades", "29 MB", "CMP Facades (Tylecek & Sara), pix2pix; " + RESEARCH),
    _pix2pix("cityscapes", "99 MB", "Cityscapes (Cordts et al.): its licence forbids redistribution, "
                                    "prepare by hand", url=False),
    _pix2pix("maps", "239 MB", "Google Maps / aerial photos scraped by pix2pix; " + RESEARCH),
    _pix2pix("edges2shoes", "2.0 GB", "UT Zappos50K (Yu & Grauman) + HED edges, pix2pix; " + RESEARCH),
    _pix2pix("edges2handbags", "8.6 GB", "Amazon handbags of iGAN (Zhu et al.) + HED edges; " + RESEARCH),
    _pix2pix("night2day", "1.9 GB", "Transient Attributes (Laffont et al.), pix2pix; " + RESEARCH),
    _cyclegan("apple2orange", "75 MB", "ImageNet, CycleGAN; " + RESEARCH),
    _cyclegan("summer2winter_yosemite", "126 MB", "Flickr, CycleGAN; " + RESEARCH),
    _cyclegan("horse2zebra", "111 MB", "ImageNet, CycleGAN; " + RESEARCH),
    _cyclegan("monet2photo", "291 MB", "WikiArt + Flickr, CycleGAN; " + RESEARCH),
    _cyclegan("cezanne2photo", "267 MB", "WikiArt + Flickr, CycleGAN; " + RESEARCH),
    _cyclegan("ukiyoe2photo", "279 MB", "WikiArt + Flickr, CycleGAN; " + RESEARCH),
    _cyclegan("vangogh2photo", "292 MB", "WikiArt + Flickr, CycleGAN; " + RESEARCH),
    _cyclegan("maps", "1.4 GB", "Google Maps / aerial photos, CycleGAN's unpaired split; " + RESEARCH,
              key="maps_unpaired"),
    _cyclegan("cityscapes", "n/a", "Cityscapes (Cordts et al.): its licence forbids redistribution, prepare by "
                                   "hand", key="cityscapes_unpaired", url=False),
    _cyclegan("facades", "34 MB", "CMP Facades, CycleGAN's unpaired split; " + RESEARCH, key="facades_unpaired"),
    _cyclegan("iphone2dslr_flower", "324 MB", "Flickr, CycleGAN; " + RESEARCH),
    _cyclegan("ae_photos", "10 MB", "CycleGAN's photo test set (test images only); " + RESEARCH,
              kind="test images"),
    _cyclegan("grumpifycat", "20 MB", "CUT (Park et al.): cat photos and Grumpy Cat; " + RESEARCH, base=CUT),
]}


def registry_table() -> str:
    """`gennorm data fetch --list`: every dataset with kind, size, layout, source, URL."""
    width = max(map(len, REGISTRY))
    lines = [f"{'name':<{width}}  {'kind':<11}  {'size':>7}  layout / source / url"]
    for d in REGISTRY.values():
        lines.append(f"{d.name:<{width}}  {d.kind:<11}  {d.size:>7}  {d.layout}")
        lines.append(f"{'':<{width}}  {'':<11}  {'':>7}  {d.source}")
        lines.append(f"{'':<{width}}  {'':<11}  {'':>7}  {d.url or 'no download: ' + CITYSCAPES.split(':')[0]}")
    lines.append(f"sizes are approximate; --mirror URL or {MIRROR_ENV} replaces the host (same paths)")
    return "\n".join(lines)


def lookup(name: str) -> Dataset:
    if name not in REGISTRY:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(REGISTRY)} (gennorm data fetch --list)")
    return REGISTRY[name]


def mirrored(url: str, mirror: str | None) -> str:
    """`url` with scheme and host (and any path prefix of `mirror`) taken from `mirror`."""
    if not mirror:
        return url
    base = urllib.parse.urlsplit(mirror if "://" in mirror else "http://" + mirror)
    path = base.path.rstrip("/") + urllib.parse.urlsplit(url).path
    return urllib.parse.urlunsplit((base.scheme, base.netloc, path, "", ""))


def _by_hand(d: Dataset, root: Path, url: str) -> str:
    return f"download {url} by hand and run: gennorm data fetch {d.name} {root} --archive FILE"


# ----------------------------------------------------------------------------------------------
# download


def download(url: str, partial: Path, progress: bool = True, timeout: float = 60.0) -> None:
    """Bring `url` into `partial`, continuing what is there with `Range: bytes=N-`; raises
    OSError (urllib's errors included) when the transfer stops before its announced length."""
    from tqdm import tqdm

    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "gennorm", **({"Range": f"bytes={have}-"} if have else {})})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing after byte N: the partial file is the whole archive
            return
        raise
    with response:
        resumed = response.status == 206
        if not resumed:
            have = 0  # the server sent the whole file: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(partial, "ab" if resumed else "wb") as f, \
                tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=partial.name[:-len(".partial")],
                     disable=not progress, leave=False) as bar:
            while chunk := response.read(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))
            f.flush()
            os.fsync(f.fileno())
    got = partial.stat().st_size
    if total is not None and got < total:
        raise OSError(f"the connection closed at {got:,} of {total:,} bytes")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# safe extraction


def _safe_name(name: str) -> str:
    """`name` if it stays inside the extraction folder; ValueError otherwise."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise ValueError(f"the entry {name!r} would be written outside the dataset folder")
    return name


def extract(archive: Path, into: Path) -> None:
    """Unpack a .tar(.gz) or .zip into `into`; ValueError for an unsafe entry, tarfile/zipfile
    errors (or EOFError, OSError) for a corrupt archive."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                _safe_name(info.filename)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise ValueError(f"the entry {info.filename!r} is a link")
            bad = z.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"the entry {bad!r} fails its CRC check")
            z.extractall(into)
        return
    with open(archive, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    if gzipped:  # tarfile stops quietly at a zero block: check the whole stream's CRC and length first
        with gzip.open(archive, "rb") as g:
            while g.read(1 << 20):
                pass
    with tarfile.open(archive) as t:  # raises tarfile.ReadError for what is no tar
        members = t.getmembers()
        for m in members:
            _safe_name(m.name)
            if not (m.isfile() or m.isdir()):
                raise ValueError(f"the entry {m.name!r} is a link or device, not a file")
        t.extractall(into, members=members, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))


def dataset_folder(extracted: Path) -> Path:
    """The folder holding the data: the archive's one top folder (facades/...), or the root itself."""
    entries = [p for p in extracted.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return extracted


def _has_images(folder: Path) -> bool:
    return folder.is_dir() and any(is_image_file(p.name) for p in folder.rglob("*"))


def check_layout(d: Dataset, folder: Path) -> None:
    """DataError unless `folder` holds `d`'s layout with images in it."""
    if d.kind == "paired":
        need, splits = ["train"], [s for s in ("val", "test") if (folder / s).is_dir()]
        ok = _has_images(folder / "train") and splits
    elif d.kind == "unpaired":
        need = ["trainA", "trainB", "testA", "testB"]
        ok = all(_has_images(folder / s) for s in need)
    else:
        need, ok = ["images"], _has_images(folder)
    if not ok:
        found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise DataError(f"the archive for {d.name} does not hold {d.layout} (found: {', '.join(found) or 'nothing'})")


# ----------------------------------------------------------------------------------------------
# fetch


@contextlib.contextmanager
def _locked(path: Path, what: str):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(f"{what} is being fetched by another process; wait for it to finish") from None
        yield
    finally:
        os.close(fd)


def _install(d: Dataset, archive: Path, root: Path, url: str) -> Path:
    """Extract `archive` beside ROOT/NAME, check it, record SOURCE.json, rename into place."""
    target = root / d.name
    work = root / f".{d.name}.partial-{writer_tag()}-extract"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        try:
            extract(archive, work)
        except ValueError as err:
            raise DataError(f"{url}: unsafe archive, nothing extracted: {err}") from None
        except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
            raise _Corrupt(str(err) or type(err).__name__) from None
        folder = dataset_folder(work)
        try:
            check_layout(d, folder)
        except DataError as err:
            raise DataError(f"{url}: {err}; nothing was placed") from None
        atomic_write_json(folder / "SOURCE.json", {
            "name": d.name, "url": url, "sha256": sha256_of(archive), "bytes": archive.stat().st_size,
            "archive": archive.name, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "kind": d.kind, "layout": d.layout, "source": d.source})
        os.replace(folder, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


class _Corrupt(Exception):
    pass


def fetch(name: str, root="datasets", archive=None, mirror: str | None = None, progress: bool = True,
          keep_archive: bool = False) -> tuple[Path, bool]:
    """Download (or take `archive`), check and place dataset `name` at ROOT/NAME.
    Returns (folder, fetched): fetched False when ROOT/NAME was already there from a fetch."""
    d = lookup(name)
    root = Path(root)
    target = root / d.name
    if (target / "SOURCE.json").is_file():
        return target, False
    if target.exists():
        raise DataError(f"{target} exists and was not made by gennorm data fetch; move it away or choose another ROOT")
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    url = mirrored(d.url, mirror) if d.url else None
    if archive is None and url is None:
        raise DataError(f"{d.name}: " + CITYSCAPES.format(layout=d.layout))
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f".{d.name}.fetch.lock", str(target)):
        if archive is not None:
            archive = Path(archive)
            if not archive.is_file():
                raise DataError(f"--archive {archive}: no such file")
            source = archive.resolve().as_uri()
            try:
                return _install(d, archive, root, source), True
            except _Corrupt as err:
                raise DataError(f"--archive {archive}: not a readable .tar.gz or .zip ({err}); nothing was "
                                f"extracted") from None
        partial = root / f"{d.archive_name}.partial"
        try:
            download(url, partial, progress=progress)
        except urllib.error.HTTPError as err:
            raise DataError(f"{url}: HTTP {err.code} {err.reason}; {_by_hand(d, root, url)}") from None
        except (OSError, ValueError) as err:  # URLError, timeouts, resets, a short transfer
            reason = getattr(err, "reason", None) or err
            have = partial.stat().st_size if partial.exists() else 0
            again = f"rerun to continue from byte {have:,}" if have else "rerun to try again"
            raise DataError(f"{url}: download stopped ({reason}); {again}, or {_by_hand(d, root, url)}") from None
        try:
            placed = _install(d, partial, root, url)
        except _Corrupt as err:
            partial.unlink(missing_ok=True)
            raise DataError(f"{url}: the downloaded archive is corrupt ({err}) and was removed; rerun to download "
                            f"it again, or {_by_hand(d, root, url)}") from None
        except DataError:
            partial.unlink(missing_ok=True)
            raise
        if keep_archive:
            os.replace(partial, root / d.archive_name)
        else:
            partial.unlink()
        return placed, True
